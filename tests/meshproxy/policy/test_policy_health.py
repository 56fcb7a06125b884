"""HealthChecker: Envoy's active health-check state machine (start pending, thresholds, 503 at once)."""

import pytest

from meshscenario import HealthCheck
from meshproxy.defects import Defects
from meshproxy.policy.health import HealthChecker, ProbeResult, classify

HOSTS = ["10.0.0.1:15006", "10.0.0.2:15006", "10.0.0.3:15006"]
A, B, C = HOSTS
PASS, ACTIVE, NETWORK = ProbeResult.PASSED, ProbeResult.ACTIVE_FAILURE, ProbeResult.NETWORK_FAILURE


def _checker(defects=None, **config):
    checker = HealthChecker(HealthCheck(**{"interval": 0.25, "unhealthy_threshold": 3, "healthy_threshold": 2,
                                           **config}), Defects(defects))
    assert checker.set_hosts(HOSTS) == HOSTS
    return checker


def _healthy(**config):
    checker = _checker(**config)
    for host in HOSTS:
        assert checker.record(host, PASS)
    return checker


def test_classify_200_passes_other_status_is_active_none_is_network():
    assert classify(200) is PASS
    assert [classify(s) for s in (204, 301, 404, 500, 503)] == [ACTIVE] * 5
    assert classify(None) is NETWORK


def test_hosts_start_unhealthy_and_the_first_pass_makes_them_healthy_at_once():
    checker = _checker(healthy_threshold=3)
    assert checker.available(HOSTS) == []
    assert checker.record(A, PASS)
    assert checker.available(HOSTS) == [A]


def test_a_host_failing_its_first_check_needs_healthy_threshold_passes():
    checker = _checker(healthy_threshold=2)
    assert not checker.record(A, NETWORK)
    assert not checker.record(A, PASS)
    assert not checker.is_healthy(A)
    assert checker.record(A, PASS)
    assert checker.is_healthy(A)


def test_network_failures_count_up_to_unhealthy_threshold():
    checker = _healthy(unhealthy_threshold=3)
    assert [checker.record(A, NETWORK) for _ in range(3)] == [False, False, True]
    assert checker.available(HOSTS) == [B, C]


def test_a_pass_resets_the_failure_count():
    checker = _healthy(unhealthy_threshold=3)
    for _ in range(5):
        checker.record(A, NETWORK)
        checker.record(A, NETWORK)
        checker.record(A, PASS)
    assert checker.is_healthy(A)


def test_a_non_200_answer_marks_unhealthy_at_once_whatever_the_threshold():
    checker = _healthy(unhealthy_threshold=5)
    assert checker.record(B, ACTIVE)
    assert checker.available(HOSTS) == [A, C]


def test_back_after_healthy_threshold_consecutive_passes():
    checker = _healthy(healthy_threshold=3)
    checker.record(A, ACTIVE)
    assert [checker.record(A, PASS) for _ in range(3)] == [False, False, True]
    assert checker.available(HOSTS) == HOSTS


def test_a_failure_resets_the_pass_count_of_an_unhealthy_host():
    checker = _healthy(healthy_threshold=2)
    checker.record(A, ACTIVE)
    for _ in range(4):
        checker.record(A, PASS)
        checker.record(A, NETWORK)
    assert not checker.is_healthy(A)
    checker.record(A, PASS)
    assert checker.record(A, PASS)


def test_repeated_failures_of_an_unhealthy_host_change_nothing():
    checker = _healthy(unhealthy_threshold=1)
    assert checker.record(A, NETWORK)
    assert [checker.record(A, f) for f in (NETWORK, ACTIVE, NETWORK)] == [False] * 3
    assert checker.transitions == 4  # three first checks, one ejection


def test_hosts_that_leave_are_forgotten_and_start_over_when_back():
    checker = _healthy()
    checker.record(C, ACTIVE)
    assert checker.set_hosts([A, B]) == []
    assert checker.unhealthy == frozenset()
    assert not checker.record(C, PASS)  # a late result of a probe to a host that left
    assert checker.set_hosts(HOSTS) == [C]
    assert checker.available(HOSTS) == [A, B]  # pending its first check again
    assert checker.record(C, PASS)


def test_available_keeps_the_given_order_and_may_be_empty():
    checker = _healthy(unhealthy_threshold=1)
    assert checker.available([C, A, B]) == [C, A, B]
    for host in HOSTS:
        checker.record(host, ACTIVE)
    assert checker.available(HOSTS) == []


def test_no_config_means_everything_healthy_and_nothing_to_probe():
    checker = HealthChecker(None)
    assert not checker.enabled
    assert checker.set_hosts(HOSTS) == []
    assert not checker.record(A, ACTIVE)
    assert checker.available(HOSTS) == HOSTS
    assert checker.next_probe_in() == float("inf")


def test_next_probe_is_one_interval_after_a_result():
    assert _checker(interval=0.3).next_probe_in() == pytest.approx(0.3)


def test_defect_health_check_ignored_keeps_state_but_never_leaves_a_host_out():
    checker = _checker({"health_check_ignored": True}, unhealthy_threshold=1)
    checker.record(A, PASS)
    assert checker.record(A, ACTIVE)
    assert not checker.is_healthy(A)
    assert checker.available(HOSTS) == HOSTS


def test_defect_healthy_threshold_ignored_brings_a_host_back_after_one_pass():
    checker = _checker({"healthy_threshold_ignored": True}, healthy_threshold=3)
    checker.record(A, PASS)
    checker.record(A, ACTIVE)
    assert checker.record(A, PASS)
