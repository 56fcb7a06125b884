"""Registered workloads: their inbound addresses, what configuration each has acked, and change wake-ups.

Kept in memory: after a control-plane restart sidecars register again (a workload the control plane does
not know gets ``409 register first`` on its config long-poll). An admin may override a workload's
address (to put a fault proxy on a hop); the override wins over what the workload itself registers.

Long-polls wait on :meth:`Registry.wait_until`: every change swaps in a fresh ``asyncio.Event`` and sets
the old one, so waiters wake on the change itself, never by polling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Callable


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

    @property
    def address(self) -> str | None:
        return self.override_address or self.own_address

    @property
    def has_sidecar(self) -> bool:
        """Only workloads that registered themselves are expected to ack configuration."""
        return self.own_address is not None


class Registry:
    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._changed = asyncio.Event()
        self._closing = False

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
        self.notify()
        return before != (ep.service, ep.namespace, ep.version, ep.instance, ep.address)

    def deregister(self, workload: str) -> bool:
        removed = self._endpoints.pop(workload, None) is not None
        self.notify()
        return removed

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
        return self._endpoints.get(workload)

    def endpoints(self) -> dict[str, dict]:
        """What sidecars route to: registered workloads that have an address."""
        return {w: {"service": e.service, "version": e.version, "instance": e.instance, "address": e.address}
                for w, e in sorted(self._endpoints.items()) if e.address}

    def workloads_status(self) -> dict[str, dict]:
        return {w: {"generation": e.acked_generation, "version": e.acked_version, "address": e.address,
                    "acked_at": e.acked_at, "service": e.service}
                for w, e in sorted(self._endpoints.items())}

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
