"""Certificate rotation under constant load: zero failed requests, and the serial changes."""

from __future__ import annotations

import ssl
import time
from datetime import datetime, timedelta, timezone

from harness.adapters.base import HttpRequest, MeshCertificates
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.probes import client_context, presented_certificate

from ..conftest import require
from ._support import BACKEND, CLIENT, KEY_HEADER

# The load runs one lifetime past the scenario's cert_ttl: by then every certificate in use when it
# started has expired, so a sidecar on the path that did not rotate makes requests fail.
EXTRA_S = 1.0
SERIAL_POLL_S = 0.25
MAX_REQUESTS = 200_000


@conformance(
    short_name="MeshCertRotationUnderLoad",
    description="Closed-loop requests client → backend for cert_ttl + 1 s (every certificate in use at "
                "the start expires in that window) all succeed, the serial the backend presents in a "
                "handshake changes at least once, and so does the client workload's certificate.",
    features=[Feature.CERT_ROTATION], profile=Profile.SECURITY, level=Level.CORE)
def test_rotation_under_load(mesh, security_mesh, scenario, key, evidence):
    ca = require(mesh, MeshCertificates, "observe the serial the backend presents")
    now = datetime.now(timezone.utc)
    cert_pem, key_pem = ca.issue_certificate(scenario.spiffe_id("client"), not_before=now - timedelta(minutes=1),
                                             not_after=now + timedelta(hours=1))
    tls = client_context(ca.bundle_path, cert_pem, key_pem)
    inbound = security_mesh.workloads[BACKEND].inbound

    def serial() -> str | None:
        cert = presented_certificate(inbound, tls)
        return None if cert is None else format(cert.serial_number, "x")

    def client_serial() -> str:
        from cryptography import x509
        try:
            pem = ca.workload_certificate(CLIENT)
        except (ssl.SSLError, OSError) as exc:  # e.g. it presents an expired certificate: not rotated
            raise AssertionError(f"the client workload's certificate could not be read in a handshake "
                                 f"(it did not rotate in time?): {exc}") from None
        return format(x509.load_pem_x509_certificate(pem).serial_number, "x")

    serials = [serial()]
    client_serials = [client_serial()]
    assert serials[0] is not None, "no TLS handshake with the backend's inbound listener"
    ok = failed = 0
    failures: list[str] = []
    start = time.monotonic()
    end = start + scenario.cert_ttl + EXTRA_S
    next_poll = start + SERIAL_POLL_S
    while time.monotonic() < end and ok + failed < MAX_REQUESTS:
        resp = mesh.send(CLIENT, HttpRequest(host="backend", headers={KEY_HEADER: key}, timeout_s=5.0))
        if resp.status == 200:
            ok += 1
        else:
            failed += 1
            if len(failures) < 5:
                failures.append(f"{resp.status} {resp.error or resp.body[:80]!r}")
        if time.monotonic() >= next_poll:
            next_poll += SERIAL_POLL_S
            s = serial()
            if s is not None and s != serials[-1]:
                serials.append(s)
            c = client_serial()
            if c != client_serials[-1]:
                client_serials.append(c)
    elapsed = time.monotonic() - start
    evidence.samples = ok + failed
    evidence.measure("failed_requests", failed)
    evidence.measure("load_seconds", round(elapsed, 2), unit="s")
    evidence["backend_serials"] = serials
    evidence["client_serials"] = client_serials
    assert failed == 0, f"{failed} of {ok + failed} requests failed during rotation: {failures}"
    assert len(serials) > 1, (f"the backend presented the same certificate (serial {serials[0]}) for "
                              f"{elapsed:.1f}s with cert_ttl {scenario.cert_ttl}s: it did not rotate")
    assert len(client_serials) > 1, (f"the client workload kept certificate {client_serials[0]} for "
                                     f"{elapsed:.1f}s with cert_ttl {scenario.cert_ttl}s: it did not rotate")
