"""The sidecar's current X.509-SVID, the TLS contexts built from it, and its renewal at half-life.

``CertificateStore.install`` writes the key and chain to the work directory (mode 0600; Python's ssl
loads certificates only from files) and builds one server and one client context. New connections use
the newest contexts; connections made with an older certificate keep theirs until they close, so a
rotation never breaks a request in flight.

``Rotator`` renews at half the lifetime (``not_before + ttl/2``); a failed renewal is retried every
``min(5 s, ttl/20)`` until the certificate expires. Defect ``no_rotation`` disables renewal; defect
``rotation_stops_after_outage`` gives up for good at the first failed renewal (the control plane away).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from meshproxy.sidecar import tls
from meshproxy.sidecar.metrics import Metrics
from meshproxy.defects import NONE, Defects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Svid:
    chain_pem: bytes  # leaf first, then any intermediates
    key_pem: bytes
    bundle_pem: bytes
    spiffe_id: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def from_pem(cls, chain_pem: bytes, key_pem: bytes, bundle_pem: bytes) -> "Svid":
        leaf = x509.load_pem_x509_certificate(chain_pem)
        spiffe_id = tls.spiffe_id_of(leaf.public_bytes(Encoding.DER))
        if spiffe_id is None:
            raise ValueError("certificate is not an X.509-SVID (needs exactly one spiffe:// URI SAN)")
        return cls(chain_pem, key_pem, bundle_pem, spiffe_id, format(leaf.serial_number, "x"),
                   leaf.not_valid_before_utc, leaf.not_valid_after_utc)

    def renew_at(self) -> dt.datetime:
        return self.not_before + (self.not_after - self.not_before) / 2

    def info(self) -> dict[str, str]:
        return {"serial": self.serial, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "spiffe_id": self.spiffe_id}


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CertificateStore:
    def __init__(self, work_dir: Path, metrics: Metrics, defects: Defects = NONE):
        self._dir = Path(work_dir)
        self._metrics = metrics
        self._defects = defects
        self.svid: Svid | None = None
        self.server_ctx: ssl.SSLContext | None = None
        self.client_ctx: ssl.SSLContext | None = None
        self.bundle_file: Path | None = None

    def install(self, svid: Svid) -> None:
        """Make ``svid`` the certificate of every new connection (both directions)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        cert_file, key_file, bundle_file = (self._dir / n for n in ("svid.pem", "svid-key.pem", "bundle.pem"))
        _write_private(key_file, svid.key_pem)
        _write_private(cert_file, svid.chain_pem)
        _write_private(bundle_file, svid.bundle_pem)
        server = tls.server_context(str(cert_file), str(key_file), str(bundle_file), self._defects)
        client = tls.client_context(str(cert_file), str(key_file), str(bundle_file))
        if self.svid is not None:
            self._metrics.cert_rotations += 1
        self.svid, self.server_ctx, self.client_ctx, self.bundle_file = svid, server, client, bundle_file
        log.info("installed SVID %s serial %s valid until %s", svid.spiffe_id, svid.serial, svid.not_after)


Renew = Callable[[], Awaitable[Svid]]


class Rotator:
    """Renews the store's certificate at half-life with ``renew()`` (a control-plane call)."""

    def __init__(self, store: CertificateStore, renew: Renew, defects: Defects = NONE):
        self._store = store
        self._renew = renew
        self._disabled = bool(defects.active("no_rotation"))
        self._give_up_on_failure = bool(defects.active("rotation_stops_after_outage"))

    async def run(self) -> None:
        if self._disabled:
            log.warning("defect no_rotation: the certificate will never be renewed")
            return
        while True:
            svid = self._store.svid
            now = dt.datetime.now(dt.timezone.utc)
            await asyncio.sleep(max(0.0, (svid.renew_at() - now).total_seconds()))  # the schedule itself
            retry_every = min(5.0, (svid.not_after - svid.not_before).total_seconds() / 20)
            while True:
                try:
                    self._store.install(await self._renew())
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # control plane down: keep serving, keep trying
                    if self._give_up_on_failure:
                        log.warning("defect rotation_stops_after_outage: renewal failed (%s); never renewing again",
                                    exc)
                        return
                    log.warning("certificate renewal failed (%s); retrying in %.1f s", exc, retry_every)
                    await asyncio.sleep(retry_every)
