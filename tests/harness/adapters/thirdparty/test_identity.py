"""WorkloadIdentities: renewal counted from each SVID's issuance, a key kept per workload, a slow proxy
callback that delays no other renewal. Real certificates, cert_ttl 2 s (renewal due after 1 s)."""

from __future__ import annotations

import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.adapters.thirdparty.identity import WorkloadIdentities

TTL_S = 2.0  # renewal due 1 s after issuance
SPIFFE = "spiffe://cluster.local/ns/default/sa/{}"


def _cert(identities: WorkloadIdentities, workload: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identities.svid_pem(workload))


def _public(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_renewal_keeps_the_key_and_changes_the_serial(tmp_path):
    identities = WorkloadIdentities("cluster.local", tmp_path, TTL_S)
    identities.issue("a", SPIFFE.format("a"), tmp_path / "a.pem", "a.default.svc")
    first = _cert(identities, "a")
    identities.issue("a", SPIFFE.format("a"), tmp_path / "a.pem", "a.default.svc")
    second = _cert(identities, "a")
    assert first.serial_number != second.serial_number
    # nginx reads certificate and key in two opens: any certificate must match any key of the file
    assert _public(first) == _public(second)


def test_a_slow_start_does_not_push_renewal_past_half_life(tmp_path):
    renewed = threading.Event()
    identities = WorkloadIdentities("cluster.local", tmp_path, TTL_S, on_renewed=lambda w: renewed.set())
    issued = time.monotonic()
    identities.issue("a", SPIFFE.format("a"), tmp_path / "a.pem", "a.default.svc")
    time.sleep(1.2)  # the fault: the proxies took longer than half a lifetime to start
    try:
        identities.start()
        assert renewed.wait(0.5), "not renewed at once although half the lifetime had passed"
        assert time.monotonic() - issued < TTL_S, "renewed only after the certificate expired"
    finally:
        identities.stop()


def test_a_blocked_proxy_callback_delays_no_other_renewal(tmp_path):
    release = threading.Event()
    identities = WorkloadIdentities("cluster.local", tmp_path, TTL_S, on_renewed=lambda w: release.wait(5))
    for name in ("a", "b"):
        identities.issue(name, SPIFFE.format(name), tmp_path / f"{name}.pem", f"{name}.default.svc")
    serials = {name: _cert(identities, name).serial_number for name in ("a", "b")}
    try:
        identities.start()  # the first callback blocks (a reload in progress) until released
        deadline = time.monotonic() + 3 * TTL_S
        while time.monotonic() < deadline and any(_cert(identities, n).serial_number == serials[n] for n in serials):
            time.sleep(0.05)  # polling pace
        assert all(_cert(identities, n).serial_number != serials[n] for n in serials), \
            "a blocked proxy callback held back the renewal of the files"
    finally:
        release.set()
        identities.stop()
