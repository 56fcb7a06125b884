"""Every circuit-breaking and outlier-detection check fails against a reference mesh broken its way.

Each test is a real ``pytest suites/breaking --mesh=reference`` run with defects (see conftest).
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "breaking"
BREAKERS = ["MeshCircuitBreakerMaxRequests", "MeshCircuitBreakerMaxPendingRequests",
            "MeshCircuitBreakerMaxConnections", "MeshCircuitBreakerMaxRetries"]


def test_breaker_ignored_fails_every_breaker_check(tmp_path):
    entries = judge(tmp_path, SUITE, BREAKERS, {"breaker_ignored": True})
    for name in BREAKERS[:3]:
        assert_fails(entries[name], "let more through than its limit")
    assert_fails(entries["MeshCircuitBreakerMaxRetries"], "retries over max_retries were attempted")


def test_limits_one_too_high_fail_every_breaker_check(tmp_path):
    entries = judge(tmp_path, SUITE, BREAKERS, {"breaker_limit_delta": 1})
    for name in BREAKERS[:3]:
        assert_fails(entries[name], "let more through than its limit")
    assert_fails(entries["MeshCircuitBreakerMaxRetries"], "retries over max_retries were attempted")


def test_limits_one_too_low_fail_every_breaker_check(tmp_path):
    entries = judge(tmp_path, SUITE, BREAKERS, {"breaker_limit_delta": -1})
    for name in BREAKERS[:3]:
        assert_fails(entries[name], "lower than configured")
    assert_fails(entries["MeshCircuitBreakerMaxRetries"], "only 1 of 2 requests were retried")


def test_one_more_pending_fails_the_pending_check_by_its_waits(tmp_path):
    # connections right, so only the waits (send -> arrival at the echo) can tell: the third waits two holds
    entries = judge(tmp_path, SUITE, ["MeshCircuitBreakerMaxPendingRequests"], {"pending_limit_delta": 1})
    assert_fails(entries["MeshCircuitBreakerMaxPendingRequests"], "waited longer than 300 ms",
                 "more requests waited than max_pending_requests 2 allows")


def test_overflow_queued_fails_the_rejecting_checks(tmp_path):
    entries = judge(tmp_path, SUITE, BREAKERS[:1], {"overflow_queued": True})
    assert_fails(entries["MeshCircuitBreakerMaxRequests"], "overflow queued instead of rejected")


def test_missing_overload_marker_fails_the_rejecting_checks(tmp_path):
    checks = BREAKERS[:2]
    entries = judge(tmp_path, SUITE, checks, {"no_overload_marker": True})
    for name in checks:
        assert_fails(entries[name], "lacked the overload marker")


def test_retry_breaker_ignored_fails_the_retry_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshCircuitBreakerMaxRetries"], {"retry_breaker_ignored": True})
    assert_fails(entries["MeshCircuitBreakerMaxRetries"], "retries over max_retries were attempted")


def test_ejection_never_ending_fails_the_ejection_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshOutlierEjection"], {"ejection_never_ends": True})
    assert_fails(entries["MeshOutlierEjection"], "ejection 1 never ended")


def test_ejection_time_not_multiplied_fails_the_ejection_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshOutlierEjection"], {"ejection_not_multiplied": True})
    assert_fails(entries["MeshOutlierEjection"], "ejection 2", "not multiplied")


def test_late_ejection_fails_the_ejection_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshOutlierEjection"], {"eject_late": True})
    assert_fails(entries["MeshOutlierEjection"], "came after 4 consecutive 5xx, want exactly 3")


def test_ignored_ejection_cap_fails_the_cap_checks(tmp_path):
    checks = ["MeshOutlierMaxEjectionPercent", "MeshOutlierCapEjectsNone"]
    entries = judge(tmp_path, SUITE, checks, {"max_ejection_percent_ignored": True})
    assert_fails(entries["MeshOutlierMaxEjectionPercent"], "both failing endpoints were ejected")
    assert_fails(entries["MeshOutlierCapEjectsNone"], "ejected past max_ejection_percent")
