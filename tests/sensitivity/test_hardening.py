"""The hardening checks fail against reference meshes broken in the ways they are meant to catch.

Real ``pytest suites/hardening --mesh=reference`` runs with defects (see conftest), each honoured in
meshproxy/sidecar/http1.py on both listeners: ``forward_cl_te`` (Content-Length with Transfer-Encoding
read by its chunks, the connection kept open: the GET hidden after the last chunk becomes a request of
its own), ``accept_duplicate_host`` (a second Host line forwarded), ``merge_trailers`` (trailer fields
become headers), ``accept_connect`` (CONNECT answered 200 and the bytes after it read as requests) and
``wedged_after_bad_input`` (after its first refusal a sidecar cuts every new connection).
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
