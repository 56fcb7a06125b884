"""The harness as the CA of a third-party mesh: one root per run, one SVID file per workload, renewed.

HAProxy and nginx have no certificate agent, so the adapter plays SPIRE's part: it issues each
workload an X.509-SVID (``meshproxy.ca.CertificateAuthority``, lifetime ``Scenario.cert_ttl``) into
``<work_dir>/svid.pem`` (certificate then key, one file so an atomic rename swaps both) and renews it
at half its lifetime. After each renewal the ``on_renewed(workload)`` callback makes the proxy load the
new file (HAProxy: runtime API; nginx: the path is a variable, so every handshake reads the file).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from cryptography.hazmat.primitives.asymmetric import ec

from meshproxy.ca import CertificateAuthority, cert_pem, key_pem, write_file_atomically

RENEW_FRACTION = 0.5  # renew at half the lifetime, like the reference sidecar
MIN_RENEW_PERIOD_S = 0.5  # never renew more often than this, even with cert_ttl 1 s


class WorkloadIdentities:
    """Issues and renews the SVID of every workload; ``start()`` runs the renewal thread."""

    def __init__(self, trust_domain: str, state_dir: Path, cert_ttl: float,
                 on_renewed: Callable[[str], None] = lambda workload: None):
        self.authority = CertificateAuthority.create(trust_domain)
        self.state_dir = Path(state_dir)
        self.bundle_path = self.state_dir / "bundle.pem"
        write_file_atomically(self.bundle_path, self.authority.bundle_pem(), 0o644)
        self.cert_ttl = float(cert_ttl)
        self.on_renewed = on_renewed
        self._paths: dict[str, tuple[str, Path, str]] = {}  # workload -> (spiffe id, svid path, CN)
        self._stop = threading.Event()
        self._ttl_changed = threading.Event()  # wakes the renewal schedule early when cert_ttl changes
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def issue(self, workload: str, spiffe_id: str, path: Path, server_name: str) -> None:
        """Write a fresh SVID for ``workload`` to ``path`` and remember it for renewal.

        The subject CN is ``server_name`` (``<service>.<namespace>.svc``): HAProxy's ``verifyhost`` and
        nginx's ``proxy_ssl_name`` check a server's name, not its URI SAN, and OpenSSL falls back to the
        CN when a certificate has no DNS SAN. So a caller verifies that the server is an instance of
        the destination service; the URI SAN stays the one SPIFFE ID."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.authority.issue_svid(spiffe_id, key.public_key(), ttl=self.cert_ttl, workload=server_name)
        write_file_atomically(Path(path), cert_pem(cert) + key_pem(key), 0o600)
        with self._lock:
            self._paths[workload] = (spiffe_id, Path(path), server_name)

    def svid_pem(self, workload: str) -> bytes:
        return self._paths[workload][1].read_bytes()

    def set_ttl(self, cert_ttl: float) -> None:
        """A new lifetime takes effect at once: the renewal schedule is recomputed now, not after the
        old period (a wait of half an hour would let the new short-lived certificates expire)."""
        if float(cert_ttl) != self.cert_ttl:
            self.cert_ttl = float(cert_ttl)
            self._ttl_changed.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew_forever, name="svid-renewal", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._ttl_changed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def _renew_forever(self) -> None:
        # Event.wait is the renewal schedule (the period IS the behaviour), not a synchronisation;
        # a TTL change ends the wait early and renews everything under the new lifetime at once
        while not self._stop.is_set():
            self._ttl_changed.wait(max(MIN_RENEW_PERIOD_S, self.cert_ttl * RENEW_FRACTION))
            self._ttl_changed.clear()
            if self._stop.is_set():
                return
            with self._lock:
                current: Mapping[str, tuple[str, Path, str]] = dict(self._paths)
            for workload, (spiffe_id, path, server_name) in current.items():
                if self._stop.is_set():
                    return
                try:
                    self.issue(workload, spiffe_id, path, server_name)
                    self.on_renewed(workload)
                except Exception as exc:  # keep renewing the others; the proxy keeps its old certificate
                    print(f"svid renewal of {workload} failed: {exc!r}", flush=True)
