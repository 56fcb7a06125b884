"""Every chaos check fails against a reference mesh broken the way it is meant to catch.

Each test is a real ``pytest suites/chaos --mesh=reference`` run with defects (see conftest):
``health_check_ignored`` (the killed instance's failing health checks never take it out),
``connect_failure_not_retried`` (a refused connection is not retried on another endpoint),
``ignore_timeout`` / ``ignore_per_try_timeout`` (the route / per-try timeout never fires over a slow
hop), ``endpoint_never_readmitted`` (a caller never sends to an endpoint again once it left, so a
restarted sidecar gets no traffic back), ``config_dropped_without_controlplane`` (a sidecar throws its
configuration away when its config watch fails), ``config_watch_stops_after_outage`` (a sidecar never
watches again once its config watch failed: a change made while the control plane is down never reaches
it), ``rotation_stops_after_outage`` (a sidecar never renews again once a renewal failed),
``ready_without_controlplane`` (a sidecar started while the control plane is down reports ready).
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "chaos"


def test_ignored_health_checks_fail_the_upstream_kill_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosUpstreamKill"], {"health_check_ignored": True})
    assert_fails(entries["MeshChaosUpstreamKill"], "errors did not stop", "kept routing to the killed instance",
                 "active health check")


def test_unretried_connect_failures_fail_the_partition_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosPartition"], {"connect_failure_not_retried": True})
    assert_fails(entries["MeshChaosPartition"], "did not keep answering", "were not retried")


def test_ignored_route_timeout_fails_the_slow_network_timeout_checks(tmp_path):
    checks = ["MeshChaosSlowNetworkRouteTimeout", "MeshChaosSlowNetworkBandwidthTimeout"]
    entries = judge(tmp_path, SUITE, checks, {"ignore_timeout": True})
    for name in checks:
        assert_fails(entries[name], "the route timeout did not fire")


def test_ignored_per_try_timeout_fails_the_slow_network_per_try_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosSlowNetworkPerTryTimeout"], {"ignore_per_try_timeout": True})
    assert_fails(entries["MeshChaosSlowNetworkPerTryTimeout"], "the per-try timeout did not fire")


def test_endpoint_never_readmitted_fails_the_sidecar_restart_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosSidecarRestart"], {"endpoint_never_readmitted": True})
    assert_fails(entries["MeshChaosSidecarRestart"], "traffic did not recover")


def test_config_dropped_without_the_control_plane_fails_the_control_plane_kill_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosControlPlaneKill"], {"config_dropped_without_controlplane": True})
    assert_fails(entries["MeshChaosControlPlaneKill"], "did not keep serving while the control plane was down")


def test_watch_stopped_by_the_outage_fails_the_control_plane_kill_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosControlPlaneKill"], {"config_watch_stops_after_outage": True})
    assert_fails(entries["MeshChaosControlPlaneKill"],
                 "the change made while the control plane was down did not take effect once it returned")


def test_rotation_stopped_by_the_outage_fails_the_control_plane_kill_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosControlPlaneKill"], {"rotation_stops_after_outage": True})
    assert_fails(entries["MeshChaosControlPlaneKill"], "certificate renewal did not resume")


def test_ready_without_the_control_plane_fails_the_control_plane_kill_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshChaosControlPlaneKill"], {"ready_without_controlplane": True})
    assert_fails(entries["MeshChaosControlPlaneKill"],
                 "a sidecar started while the control plane was down reported ready")
