"""The hardening checks fail against reference meshes broken in the ways they are meant to catch.

Real ``pytest suites/hardening --mesh=reference`` runs with defects (see conftest), each honoured in
meshproxy/sidecar/http1.py on both listeners: ``forward_cl_te`` (Content-Length with Transfer-Encoding
read by its chunks, the connection kept open: the GET hidden after the last chunk becomes a request of
its own), ``accept_duplicate_host`` (a second Host line forwarded), ``merge_trailers`` (trailer fields
become headers), ``accept_connect`` (CONNECT answered 200 and the bytes after it read as requests) and
``wedged_after_bad_input`` (after its first refusal a sidecar cuts every new connection). The resource
checks: ``no_header_timeout`` and ``no_body_timeout`` (http1.py: slow heads, idle bodies kept for ever),
``leak_connection_slots`` (limits.LeakingGate: closed connections keep their slots under a cap of 750),
``no_handshake_timeout`` (inbound.py: a truncated ClientHello kept for ever), the security suite's
``inbound_accepts_plaintext`` (a STRICT inbound serving plaintext) and ``no_header_limits`` (http1.py: any
request head forwarded). The slow-client and handshake ones wait out the checks' 30 s bound.
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "hardening"


def test_forwarding_cl_te_fails_the_smuggling_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningSmuggling"], {"forward_cl_te": True})
    assert_fails(entries["MeshHardeningSmuggling"], "CL.TE", "hidden in it", "arrived at the app",
                 "2 answers")


def test_accepting_a_duplicate_host_fails_the_host_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningDuplicateHost"], {"accept_duplicate_host": True})
    assert_fails(entries["MeshHardeningDuplicateHost"], "two identical Host lines", "two different Host lines",
                 "forwarded", "want 400")


def test_merging_trailers_fails_the_trailer_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningTrailers"], {"merge_trailers": True})
    assert_fails(entries["MeshHardeningTrailers"], "a trailer arrived at the app as a header", "evil",
                 "outbound listener", "inbound listener")


def test_accepting_connect_fails_the_connect_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningConnect"], {"accept_connect": True})
    assert_fails(entries["MeshHardeningConnect"], "answered 200", "2 answers", "tunneled")


def test_a_listener_wedged_by_bad_input_fails_the_keeps_serving_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningKeepsServing"], {"wedged_after_bad_input": True})
    assert_fails(entries["MeshHardeningKeepsServing"], "outbound listener stopped serving",
                 "inbound listener stopped serving")


def test_the_correct_reference_mesh_passes_every_hardening_check(tmp_path):
    names = ["MeshHardeningSmuggling", "MeshHardeningDuplicateHost", "MeshHardeningTrailers",
             "MeshHardeningConnect", "MeshHardeningKeepsServing"]
    entries = judge(tmp_path, SUITE, names, None)
    for name in names:
        assert entries[name]["outcome"] == "PASSED", f"{name}: {entries[name].get('reason')}"


# -- the resource checks (suites/hardening/test_slow_clients.py, test_connection_flood.py, test_tls_garbage.py,
# test_header_limits.py): defects in http1.py (per-connection limits), inbound.py and limits.py

def test_no_header_timeout_fails_the_slow_clients_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningSlowClients"], {"no_header_timeout": True})
    assert_fails(entries["MeshHardeningSlowClients"], "slowloris", "a request head that stops", "not closed within 30 s",
                 "outbound listener", "inbound listener")
    assert "idle body" not in entries["MeshHardeningSlowClients"]["reason"]  # the body timeout still works


def test_no_body_timeout_fails_the_slow_clients_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningSlowClients"], {"no_body_timeout": True})
    assert_fails(entries["MeshHardeningSlowClients"], "an idle body", "not closed within 30 s", "outbound listener",
                 "inbound listener")
    assert "slowloris" not in entries["MeshHardeningSlowClients"]["reason"]


def test_leaking_connection_slots_fails_the_flood_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningConnectionFlood"], {"leak_connection_slots": 750})
    assert_fails(entries["MeshHardeningConnectionFlood"], "round 2", "a good request got")


def test_no_handshake_timeout_fails_the_tls_garbage_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningTlsGarbage"], {"no_handshake_timeout": True})
    assert_fails(entries["MeshHardeningTlsGarbage"], "a ClientHello cut after", "not closed within 30 s")


def test_a_strict_inbound_accepting_plaintext_fails_the_tls_garbage_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningTlsGarbage"], {"inbound_accepts_plaintext": True})
    assert_fails(entries["MeshHardeningTlsGarbage"], "a plaintext HTTP request", "served over plaintext",
                 "arrived at the app")


def test_no_header_limits_fails_the_limits_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHardeningLimits"], {"no_header_limits": True})
    assert_fails(entries["MeshHardeningLimits"], "a 1 MiB header", "5000 headers", "forwarded", "want 431")


def test_the_correct_reference_mesh_passes_the_resource_checks(tmp_path):
    names = ["MeshHardeningSlowClients", "MeshHardeningConnectionFlood", "MeshHardeningTlsGarbage",
             "MeshHardeningLimits"]
    entries = judge(tmp_path, SUITE, names, None)
    for name in names:
        assert entries[name]["outcome"] == "PASSED", f"{name}: {entries[name].get('reason')}"
