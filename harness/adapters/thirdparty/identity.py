"""The harness as the CA of a third-party mesh: one root per run, one SVID file per workload, renewed.

HAProxy and nginx have no certificate agent, so the adapter plays SPIRE's part: it issues each
workload an X.509-SVID (``meshproxy.ca.CertificateAuthority``, lifetime ``Scenario.cert_ttl``) into
``<work_dir>/svid.pem`` (certificate then key, one file so an atomic rename swaps both) and renews it
at half its lifetime, counted from when *that* certificate was issued: the first ones are issued before
the proxies start, and a start that takes longer than half a lifetime (seconds on a busy machine, with
cert_ttl 6 s) must not push their renewal past their expiry. After each renewal the
``on_renewed(workload)`` callback, on a thread of its own (it may wait for a reload in progress),
makes the proxy load the new file (HAProxy: runtime API; nginx: the path is a variable, so every
handshake reads the file).
"""

from __future__ import annotations

import queue
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
        # one key per workload for the run: nginx opens the SVID file once for the certificate and again
        # for the key, so a renewal between the two would pair the old certificate with a new key
        # ("key values mismatch", a 500 or a failed handshake); with the key kept, any pair matches
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._renew_at: dict[str, float] = {}  # workload -> time.monotonic() its SVID is due for renewal
        self._stop = threading.Event()
        self._schedule_changed = threading.Event()  # wakes the renewal thread: a TTL change, a new SVID, stop
        self._thread: threading.Thread | None = None
        self._notifier: threading.Thread | None = None
        self._to_notify: queue.SimpleQueue[str | None] = queue.SimpleQueue()  # None stops the notifier
        self._lock = threading.Lock()

    def issue(self, workload: str, spiffe_id: str, path: Path, server_name: str) -> None:
        """Write a fresh SVID for ``workload`` to ``path`` and remember it for renewal.

        The subject CN is ``server_name`` (``<service>.<namespace>.svc``): HAProxy's ``verifyhost`` and
        nginx's ``proxy_ssl_name`` check a server's name, not its URI SAN, and OpenSSL falls back to the
        CN when a certificate has no DNS SAN. So a caller verifies that the server is an instance of
        the destination service; the URI SAN stays the one SPIFFE ID."""
        issued_at = time.monotonic()  # before signing: the certificate's clock starts no later than this
        with self._lock:
            key = self._keys.get(workload)
        if key is None:
            key = self._keys.setdefault(workload, ec.generate_private_key(ec.SECP256R1()))
        cert = self.authority.issue_svid(spiffe_id, key.public_key(), ttl=self.cert_ttl, workload=server_name)
        write_file_atomically(Path(path), cert_pem(cert) + key_pem(key), 0o600)
        with self._lock:
            self._paths[workload] = (spiffe_id, Path(path), server_name)
            self._renew_at[workload] = issued_at + self.renew_period()
        self._schedule_changed.set()  # the renewal thread may be waiting for a later deadline

    def renew_period(self) -> float:
        """Seconds from issuance to renewal: half the lifetime, at least MIN_RENEW_PERIOD_S."""
        return max(MIN_RENEW_PERIOD_S, self.cert_ttl * RENEW_FRACTION)

    def svid_pem(self, workload: str) -> bytes:
        return self._paths[workload][1].read_bytes()

    def set_ttl(self, cert_ttl: float) -> None:
        """A new lifetime takes effect at once: the renewal schedule is recomputed now, not after the
        old period (a wait of half an hour would let the new short-lived certificates expire)."""
        if float(cert_ttl) != self.cert_ttl:
            self.cert_ttl = float(cert_ttl)
            with self._lock:
                self._renew_at = {workload: 0.0 for workload in self._renew_at}  # all due now
            self._schedule_changed.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew_forever, name="svid-renewal", daemon=True)
            self._thread.start()
            self._notifier = threading.Thread(target=self._notify_forever, name="svid-notify", daemon=True)
            self._notifier.start()

    def stop(self) -> None:
        self._stop.set()
        self._schedule_changed.set()
        self._to_notify.put(None)
        for thread in (self._thread, self._notifier):
            if thread is not None:
                thread.join(timeout=10)
        self._thread = self._notifier = None

    def _renew_forever(self) -> None:
        # Event.wait until the earliest renewal is due is the renewal schedule (the period IS the
        # behaviour), not a synchronisation; a TTL change or a new SVID ends the wait early
        while not self._stop.is_set():
            with self._lock:
                due_at = min(self._renew_at.values(), default=time.monotonic() + self.renew_period())
            self._schedule_changed.wait(max(0.0, due_at - time.monotonic()))
            self._schedule_changed.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            with self._lock:
                due: Mapping[str, tuple[str, Path, str]] = {
                    workload: self._paths[workload] for workload, at in self._renew_at.items() if at <= now}
            # the files here, the proxies on the notifier thread: telling a proxy waits for a reload in
            # progress (on_renewed takes the mesh's lock), and no other SVID may expire meanwhile; a
            # proxy that reloads in between reads the renewed file anyway
            for workload, (spiffe_id, path, server_name) in due.items():
                if self._stop.is_set():
                    return
                if self._renew(workload, spiffe_id, path, server_name):
                    self._to_notify.put(workload)

    def _notify_forever(self) -> None:
        while (workload := self._to_notify.get()) is not None and not self._stop.is_set():
            try:
                self.on_renewed(workload)
            except Exception as exc:  # keep telling the others; this proxy keeps its old certificate
                print(f"svid renewal of {workload}: the proxy did not take it: {exc!r}", flush=True)

    def _renew(self, workload: str, spiffe_id: str, path: Path, server_name: str) -> bool:
        try:
            self.issue(workload, spiffe_id, path, server_name)
            return True
        except Exception as exc:  # keep renewing the others; try this one again soon, not in a tight loop
            with self._lock:
                self._renew_at[workload] = time.monotonic() + MIN_RENEW_PERIOD_S
            print(f"svid renewal of {workload} failed: {exc!r}", flush=True)
            return False
