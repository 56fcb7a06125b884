"""The active health checks fail against reference meshes broken in the ways they are meant to catch.

Real ``pytest suites/health --mesh=reference`` runs with defects (see conftest): ``health_check_ignored``
(the sidecars still probe, the echo counts the probes, but an endpoint failing them is never left out)
and ``healthy_threshold_ignored`` (one passing probe brings an endpoint back).
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "health"
CHECKS = ["MeshActiveHealthCheckRemoves", "MeshActiveHealthCheckRestores"]


def test_ignored_health_check_results_fail_both_checks(tmp_path):
    entries = judge(tmp_path, SUITE, CHECKS, {"health_check_ignored": True})
    for name in CHECKS:
        assert_fails(entries[name], "never taken out", "health checks were ignored", "probes reached it")


def test_one_pass_back_fails_the_restore_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshActiveHealthCheckRestores"], {"healthy_threshold_ignored": True})
    assert_fails(entries["MeshActiveHealthCheckRestores"], "came back too early", "healthy_threshold=3")
