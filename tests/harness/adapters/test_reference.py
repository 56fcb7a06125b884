"""ReferenceAdapter against the real reference mesh: deploy, send, reuse, certificates, stats, hops, chaos."""

import datetime as dt
import socket
import socketserver
import threading

import pytest
from cryptography import x509

from meshscenario import parse_scenario
from harness.adapters.base import (HopInterposer, HttpRequest, MeshAdapter, MeshCertificates, MeshStats,
                                   ProcessControl)
from harness.adapters.reference import FEATURES, ReferenceAdapter
from harness.features import Feature
from meshruntime.sweep import tagged_processes


def _scenario(**extra):
    return parse_scenario({"name": "adapter", "services": [{"name": "client"}, {"name": "backend"}],
                           "policies": [{"service": "backend", "mtls": {"mode": "STRICT"}}], **extra})


def test_unstarted_adapter_is_cheap_and_declares_its_features():
    adapter = ReferenceAdapter(options={})
    for protocol in (MeshAdapter, MeshCertificates, MeshStats, HopInterposer, ProcessControl):
        assert isinstance(adapter, protocol), protocol
    assert adapter.name == "reference"
    assert adapter.implementation().version  # from the installed package metadata
    assert adapter.supported_features() == FEATURES.supported
    assert FEATURES.supported.isdisjoint(FEATURES.reasons)
    assert Feature.MTLS_STRICT in FEATURES.supported
    for feature in FEATURES.reasons:
        assert adapter.unsupported_reason(feature) == FEATURES.reasons[feature]
    # claimed, not assumed: a feature nobody listed is not supported, and says so
    unlisted = set(Feature) - FEATURES.supported - set(FEATURES.reasons)
    assert Feature.CHAOS_UPSTREAM_KILL in FEATURES.supported  # suites/chaos passes against it
    for feature in unlisted:
        assert "does not claim" in adapter.unsupported_reason(feature)
    adapter.close()  # nothing started: still safe


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="colour"):
        ReferenceAdapter(options={"colour": "blue"})


class _Relay(socketserver.ThreadingTCPServer):
    """A byte relay standing in for a fault proxy: counts the connections that crossed it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.connections = 0
        ip = upstream.rpartition(":")[0]
        super().__init__((ip, 0), _RelayHandler)
        self.address = f"{ip}:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.connections += 1
        host, _, port = self.server.upstream.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            pump = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            pump.start()
            _pump(self.request, upstream)
            pump.join(timeout=10)


def _pump(src, dst):
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture(scope="module")
def adapter():
    adapter = ReferenceAdapter(options={})
    adapter.setup()
    yield adapter
    adapter.close()
    adapter.close()


@pytest.fixture(scope="module")
def deployment(adapter):
    return adapter.deploy(_scenario())


@pytest.mark.slow
def test_send_reaches_the_echo_with_the_callers_identity(adapter, deployment):
    echo = deployment.echo("backend-v1-0")
    echo.clear_journal_sync()
    response = adapter.send("client-v1-0", HttpRequest(path="/x", host="backend", headers={"x-echo-key": "k1"}))
    assert response.status == 200, response
    answer = response.json()
    assert answer["service"] == "backend" and answer["key"] == "k1"
    assert "URI=spiffe://cluster.local/ns/default/sa/client" in answer["headers"]["x-forwarded-client-cert"]
    assert [a["key"] for a in echo.journal_sync(key="k1")] == ["k1"]
    # keep-alive: many requests in a row all succeed and each arrives exactly once
    for _ in range(50):
        assert adapter.send("client-v1-0", HttpRequest(host="backend", headers={"x-echo-key": "k2"})).status == 200
    assert len(echo.journal_sync(key="k2")) == 50


@pytest.mark.slow
def test_unknown_host_gets_the_meshs_no_route_answer(adapter, deployment):
    response = adapter.send("client-v1-0", HttpRequest(host="nowhere"))
    assert response.status == 404 and response.header("x-meshproxy-no-route") == "1"


@pytest.mark.slow
def test_redeploy_with_new_policies_reuses_the_processes(adapter, deployment):
    pid = adapter._mesh.state["controlplane"]["pid"]
    again = adapter.deploy(_scenario(routes=[{"destination": "backend", "timeout": "3s"}]))
    assert adapter._mesh.state["controlplane"]["pid"] == pid
    assert again.workloads.keys() == deployment.workloads.keys()
    assert adapter.apply(_scenario()) > 0


@pytest.mark.slow
def test_certificates_from_the_mesh_ca(adapter, deployment):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert_pem, key_pem = adapter.issue_certificate("spiffe://cluster.local/ns/default/sa/x",
                                                  not_before=now - dt.timedelta(days=2),
                                                  not_after=now - dt.timedelta(days=1))
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.not_valid_after_utc == now - dt.timedelta(days=1)
    bundle = x509.load_pem_x509_certificate(open(adapter.bundle_path, "rb").read())
    assert cert.issuer == bundle.subject
    assert b"PRIVATE KEY" in key_pem
    presented = x509.load_pem_x509_certificate(adapter.workload_certificate("backend-v1-0"))
    sans = presented.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/default/sa/backend"]
    assert presented.issuer == bundle.subject


@pytest.mark.slow
def test_stats_are_the_sidecars_counters(adapter, deployment):
    stats = adapter.stats("client-v1-0")
    assert isinstance(stats, dict) and stats


@pytest.mark.slow
def test_interposed_hop_carries_traffic_until_healed(adapter, deployment):
    relay_box = []

    def factory(upstream):
        relay_box.append(_Relay(upstream))
        return relay_box[0]

    hop = adapter.interpose("backend-v1-0", factory)
    relay = relay_box[0]
    try:
        assert relay.upstream == deployment.workloads["backend-v1-0"].inbound
        assert adapter.send("client-v1-0", HttpRequest(host="backend")).status == 200
        assert relay.connections >= 1
        hop.heal()
        hop.heal()  # idempotent
        relay.close()
        assert adapter.send("client-v1-0", HttpRequest(host="backend")).status == 200
    finally:
        hop.heal()
        relay.close()


@pytest.mark.slow
def test_process_control_restarts_a_sidecar(adapter, deployment):
    before = adapter._mesh.state["workloads"]["backend-v1-0"]["pids"]["sidecar"]
    adapter.kill("backend-v1-0")
    assert adapter.send("client-v1-0", HttpRequest(host="backend", timeout_s=5)).status == 503
    # the application of the killed workload itself gets no HTTP answer at all
    refused = adapter.send("backend-v1-0", HttpRequest(host="client", timeout_s=5))
    assert refused.status is None and refused.error == "connection refused"
    adapter.restart("backend-v1-0")
    assert adapter._mesh.state["workloads"]["backend-v1-0"]["pids"]["sidecar"] != before
    assert adapter.send("client-v1-0", HttpRequest(host="backend")).status == 200
    with pytest.raises(ValueError):
        adapter.kill("backend-v1-0/nonsense")


@pytest.mark.slow
def test_close_leaves_no_process():
    adapter = ReferenceAdapter(options={"defects": '{"ignore_authz": true}'})
    adapter.deploy(_scenario())
    run_id = adapter._mesh.run_id
    assert tagged_processes(run_id)
    adapter.close()
    assert tagged_processes(run_id) == []
