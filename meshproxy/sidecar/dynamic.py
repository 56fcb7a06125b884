"""Dynamic mode: the sidecar's conversation with the control plane.

1. ``enroll``: a fresh P-256 key and CSR, ``POST /v1/sign`` with the one-time join token -> SVID.
2. ``fetch_initial``: the current configuration (``GET /v1/config`` without waiting).
3. ``register``: ``POST /v1/endpoints`` with the inbound address (after the listeners are up).
4. ``watch``: long-poll ``/v1/config?after=G&wait=30`` forever, apply and ``POST /v1/ack`` each new
   generation. The control plane being down changes nothing: the last configuration keeps serving and
   the poll retries with backoff (0.2 s doubling to 5 s). A 409 (it restarted and forgot us) re-registers.
   (Defect ``config_dropped_without_controlplane``: a failed poll throws the configuration away;
   defect ``config_watch_stops_after_outage``: a failed poll ends the watch for good.)
5. ``renew`` (called by ``certs.Rotator`` at half-life): a new key, signed with the current SVID.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable

from meshproxy.ca import key_pem, new_key_and_csr
from meshproxy.cpclient import AsyncControlPlaneClient, ControlPlaneUnavailable, RegisterFirst
from meshproxy.defects import NONE, Defects
from meshproxy.sidecar.bootstrap import Bootstrap
from meshproxy.sidecar.certs import CertificateStore, Svid
from meshproxy.sidecar.config import ConfigStore

log = logging.getLogger(__name__)

LONG_POLL_S = 30.0
JOIN_RETRY_S = 300.0  # a starting sidecar waits this long for the control plane (a join token's lifetime)


class ControlPlaneSession:
    def __init__(self, boot: Bootstrap, certs: CertificateStore, config: ConfigStore, defects: Defects = NONE):
        self._boot = boot
        self._certs = certs
        self._config = config
        # defect "slow_config_apply": every pushed generation is applied (and acked) this many seconds late
        self._apply_delay_s = float(defects.param("slow_config_apply") or 0) if defects.active("slow_config_apply") else 0.0
        # defect "config_dropped_without_controlplane": a failed config watch throws the configuration away
        self._drop_when_away = defects.active("config_dropped_without_controlplane")
        # defect "config_watch_stops_after_outage": a failed config watch is never tried again
        self._stop_when_away = defects.active("config_watch_stops_after_outage")
        self.client = AsyncControlPlaneClient(boot.controlplane, boot.bundle)
        self._previous_identity = False  # enrolling with the SVID a previous life left (no join token)

    async def _sign(self, join_token: str | None) -> Svid:
        key, csr = new_key_and_csr(self._boot.spiffe_id)
        answer = await self.client.sign(csr, join_token=join_token)
        chain = answer["certificate"] + "".join(answer.get("chain") or [])
        svid = Svid.from_pem(chain.encode(), key_pem(key), answer["bundle"].encode())
        if svid.spiffe_id != self._boot.spiffe_id:
            raise ValueError(f"control plane issued {svid.spiffe_id}, expected {self._boot.spiffe_id}")
        self.client.set_client_identity(svid.chain_pem, svid.key_pem)
        return svid

    async def enroll(self) -> None:
        if self._boot.join_token is None and self._certs.svid is None and not self._previous_identity:
            work = Path(self._boot.work_dir)  # a restart without a token: the SVID of the previous life
            self.client.set_client_identity((work / "svid.pem").read_bytes(), (work / "svid-key.pem").read_bytes())
            self._previous_identity = True
        self._certs.install(await self._sign(self._boot.join_token))

    async def renew(self) -> Svid:
        return await self._sign(None)

    async def fetch_initial(self) -> None:
        answer = await self.client.config(self._boot.workload, after=-1, wait=0)
        self._install(answer)
        # ack at once: the next long-poll only returns on a newer generation, so without this the
        # control plane would not know this one is in effect until something else changed
        await self.client.ack(self._boot.workload, answer["generation"], answer["version"])

    async def join(self) -> None:
        """``enroll``, ``register``, ``fetch_initial``; while the control plane cannot be reached, retried
        with backoff (0.2 s doubling to 1 s) for at most ``JOIN_RETRY_S`` (then the last error)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + JOIN_RETRY_S
        backoff = 0.2
        step = self.enroll
        while True:  # bounded by give_up
            try:
                await step()
                if step == self.enroll:
                    step = self.register
                elif step == self.register:
                    step = self.fetch_initial
                else:
                    return
                continue
            except ControlPlaneUnavailable as exc:
                if loop.time() + backoff > give_up:
                    raise
                log.warning("joining the control plane (%s): %s; retrying in %.1f s", step.__name__, exc, backoff)
            await asyncio.sleep(backoff)  # the retry schedule, not synchronisation
            backoff = min(1.0, backoff * 2)

    async def register(self) -> None:
        b = self._boot
        await self.client.register(b.workload, service=b.service, namespace=b.namespace, version=b.version,
                                   instance=b.instance, address=b.inbound_address)

    async def deregister(self) -> None:
        await self.client.deregister(self._boot.workload)

    def _install(self, answer: dict[str, Any]) -> None:
        current = self._config.current
        if current is not None and answer["generation"] == current.generation:
            return
        self._config.install(answer["generation"], answer["version"], answer["scenario"], answer["endpoints"])
        log.info("applied generation %s (scenario version %s)", answer["generation"], answer["version"])

    async def watch(self, on_applied: Callable[[], None] = lambda: None) -> None:
        backoff = 0.2
        while True:
            current = self._config.current
            after = current.generation if current is not None else -1
            try:
                answer = await self.client.config(self._boot.workload, after=after, wait=LONG_POLL_S)
                if self._apply_delay_s:
                    await asyncio.sleep(self._apply_delay_s)  # the defect's delay itself
                self._install(answer)
                await self.client.ack(self._boot.workload, answer["generation"], answer["version"])
                on_applied()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except RegisterFirst:
                log.warning("control plane forgot this workload; registering again")
                await self._retry_quietly(self.register)
            except Exception as exc:
                if self._drop_when_away and self._config.current is not None:
                    self._config.close()
                    self._config.current = None  # answers "no configuration yet" until the next fetch
                if self._stop_when_away:
                    log.warning("defect config_watch_stops_after_outage: config watch failed (%s); never "
                                "watching again, keeping generation %s", exc, after)
                    return
                log.warning("config watch: %s; keeping generation %s, retrying in %.1f s", exc, after, backoff)
                await asyncio.sleep(backoff)  # the retry schedule, not synchronisation
                backoff = min(5.0, backoff * 2)

    @staticmethod
    async def _retry_quietly(call: Callable) -> None:
        try:
            await call()
        except Exception as exc:
            log.warning("%s failed: %s", getattr(call, "__name__", call), exc)

    async def close(self) -> None:
        await self.client.close()
