"""Registered workloads: their inbound addresses, what configuration each has acked, and change wake-ups.

After a control-plane restart sidecars register again (a workload that has not registered with this life
of the control plane gets ``409 register first`` on its config long-poll and its ack). The endpoint table
itself is also kept on disk (``endpoints.json`` in the state directory, written at every registration
and deregistration): a restarted control plane starts from the endpoints it had, *remembered* until
their sidecars register again, and pushes them to every caller meanwhile. Without that, the first
sidecars to register again would be handed an endpoint set missing everyone not yet back, and their
callers would fail requests a control-plane outage must not cost. An admin may override a workload's
address (to put a fault proxy on a hop); the override wins over what the workload itself registers.

Long-polls wait on :meth:`Registry.wait_until`: every change swaps in a fresh ``asyncio.Event`` and sets
the old one, so waiters wake on the change itself, never by polling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from meshproxy.controlplane.store import write_json_atomically

log = logging.getLogger(__name__)


@dataclass
class Endpoint:
    workload: str
    service: str
    namespace: str
    version: str
    instance: int
    own_address: str | None = None       # what the workload registered
    override_address: str | None = None  # what an admin put in its place
    acked_generation: int | None = None
    acked_version: int | None = None
    acked_at: str | None = None
    remembered: bool = False  # known from an earlier life of the control plane, not registered in this one

    @property
    def address(self) -> str | None:
        return self.override_address or self.own_address

    @property
    def has_sidecar(self) -> bool:
        """Only workloads that registered themselves are expected to ack configuration."""
        return self.own_address is not None


_DURABLE = ("service", "namespace", "version", "instance", "own_address", "override_address")


class Registry:
    def __init__(self, path: Path | None = None) -> None:
        """``path``: where the endpoint table is kept across restarts (None: memory only)."""
        self._endpoints: dict[str, Endpoint] = {}
        self._changed = asyncio.Event()
        self._closing = False
        self._path = path
        if path is not None and path.exists():
            try:
                for workload, fields in json.loads(path.read_text()).items():
                    self._endpoints[workload] = Endpoint(workload, **{k: fields[k] for k in _DURABLE},
                                                         remembered=True)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged file: start empty
                log.warning("ignoring the endpoint table in %s: %s", path, exc)
                self._endpoints.clear()

    # -- changes ---------------------------------------------------------------------------------
    def register(self, workload: str, service: str, namespace: str, version: str, instance: int,
                 address: str, *, by_admin: bool) -> bool:
        """Record an address; True if the endpoint set changed (a new generation is due)."""
        ep = self._endpoints.get(workload)
        before = None if ep is None else (ep.service, ep.namespace, ep.version, ep.instance, ep.address)
        if ep is None:
            ep = self._endpoints[workload] = Endpoint(workload, service, namespace, version, instance)
        ep.service, ep.namespace, ep.version, ep.instance = service, namespace, version, instance
        if by_admin:
            ep.override_address = address
        else:
            ep.own_address = address
        ep.remembered = False
        self._save()
        self.notify()
        return before != (ep.service, ep.namespace, ep.version, ep.instance, ep.address)

    def deregister(self, workload: str) -> bool:
        removed = self._endpoints.pop(workload, None) is not None
        self._save()
        self.notify()
        return removed

    def _save(self) -> None:
        if self._path is not None:
            write_json_atomically(self._path, {w: {k: getattr(e, k) for k in _DURABLE}
                                               for w, e in sorted(self._endpoints.items())})

    def ack(self, workload: str, generation: int, version: int) -> None:
        ep = self._endpoints[workload]
        ep.acked_generation, ep.acked_version = generation, version
        ep.acked_at = dt.datetime.now(dt.timezone.utc).isoformat()
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """Wake every waiter for good (shutdown must not wait out long-polls)."""
        self._closing = True
        self.notify()

    # -- views -----------------------------------------------------------------------------------
    def get(self, workload: str) -> Endpoint | None:
        """The workload registered with this life of the control plane (a remembered one is not)."""
        ep = self._endpoints.get(workload)
        return None if ep is None or ep.remembered else ep

    def endpoints(self) -> dict[str, dict]:
        """What sidecars route to: registered workloads that have an address."""
        return {w: {"service": e.service, "version": e.version, "instance": e.instance, "address": e.address}
                for w, e in sorted(self._endpoints.items()) if e.address}

    def workloads_status(self) -> dict[str, dict]:
        """Registered workloads (remembered ones only once registered again: until then they are
        pushed to callers but not counted as back)."""
        return {w: {"generation": e.acked_generation, "version": e.acked_version, "address": e.address,
                    "acked_at": e.acked_at, "service": e.service}
                for w, e in sorted(self._endpoints.items()) if not e.remembered}

    def lagging(self, generation: int) -> list[str]:
        """Workloads with a sidecar that have not acked ``generation`` (or later)."""
        return sorted(w for w, e in self._endpoints.items()
                      if e.has_sidecar and (e.acked_generation is None or e.acked_generation < generation))

    # -- waiting ---------------------------------------------------------------------------------
    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds, at most ``timeout`` seconds; returns its last value."""
        deadline = time.monotonic() + max(0.0, timeout)
        while not condition() and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        return condition()
