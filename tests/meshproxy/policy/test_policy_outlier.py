"""OutlierDetector: Envoy consecutive_5xx ejection, timed un-ejection on tick, max_ejection_percent."""

import pytest

from meshscenario import OutlierDetection
from meshproxy.policy.outlier import OutlierDetector
from policy_helpers import FakeClock

HOSTS = ["10.0.0.1:15006", "10.0.0.2:15006", "10.0.0.3:15006"]
A, B, C = HOSTS


def _detector(**config):
    clock = FakeClock()
    # "at least one host" on unless a test says otherwise: 3 hosts and Envoy's 10 % cap eject nothing
    detector = OutlierDetector(OutlierDetection(**{"consecutive_5xx": 3, "interval": 1.0, "base_ejection_time": 5.0,
                                                   "always_eject_one_host": True, **config}), clock)
    detector.set_hosts(HOSTS)
    return detector, clock


def _fail(detector, host, times, status=503):
    return [detector.record(host, status, failure=False) for _ in range(times)]


def _run_ticks(detector, clock, seconds, interval=1.0):
    """Advance the clock tick by tick; return the time at which `tick` un-ejected something."""
    for _ in range(int(seconds / interval)):
        clock.advance(interval)
        if detector.tick():
            return clock.now
    return None


def test_ejected_at_once_after_n_consecutive_failures():
    detector, _ = _detector()
    assert _fail(detector, A, 3) == [False, False, True]
    assert detector.is_ejected(A)
    assert detector.available(HOSTS) == [B, C]


def test_resets_and_connect_failures_count_as_5xx():
    detector, _ = _detector()
    detector.record(A, None, failure=True)
    detector.record(A, 200, failure=True)  # e.g. a per-try timeout after headers
    assert detector.record(A, 500, failure=False)


def test_a_success_resets_the_count():
    detector, _ = _detector()
    _fail(detector, A, 2)
    detector.record(A, 200, failure=False)
    assert _fail(detector, A, 2) == [False, False]
    assert not detector.is_ejected(A)
    detector.record(A, 404, failure=False)  # 4xx is a success for consecutive_5xx
    assert _fail(detector, A, 2) == [False, False]


def test_returns_within_one_interval_after_base_ejection_time():
    detector, clock = _detector(base_ejection_time=5.0, interval=1.0)
    start = clock.now
    _fail(detector, A, 3)
    clock.advance(0.4)  # ejections happen between ticks, not on them
    back_at = _run_ticks(detector, clock, 20)
    assert back_at is not None and 5.0 <= back_at - start < 5.0 + 1.0
    assert detector.available(HOSTS) == HOSTS


def test_ejection_time_grows_with_each_ejection_and_is_capped():
    detector, clock = _detector(base_ejection_time=100.0, interval=1.0, consecutive_5xx=1)
    durations = []
    for _ in range(4):
        start = clock.now
        detector.record(A, 503, failure=False)
        back_at = _run_ticks(detector, clock, 1000)
        durations.append(back_at - start)
    assert durations == [100.0, 200.0, 300.0, 300.0]  # Envoy's max_ejection_time 300 s


def test_multiplier_decays_while_the_host_stays_healthy():
    detector, clock = _detector(base_ejection_time=10.0, interval=1.0, consecutive_5xx=1)
    detector.record(A, 503, failure=False)
    _run_ticks(detector, clock, 100)
    detector.record(A, 503, failure=False)
    _run_ticks(detector, clock, 100)  # second ejection: 20 s, multiplier 2
    for _ in range(5):                 # healthy for 5 intervals: multiplier back to 0
        clock.advance(1.0)
        detector.tick()
    start = clock.now
    detector.record(A, 503, failure=False)
    assert _run_ticks(detector, clock, 100) - start == 10.0


def test_an_ejected_host_ignores_late_failures():
    detector, _ = _detector()
    _fail(detector, A, 3)
    assert _fail(detector, A, 5) == [False] * 5
    assert detector.ejections_total == 1


def test_ejection_time_cap_is_configurable():
    detector, clock = _detector(base_ejection_time=100.0, max_ejection_time=150.0, consecutive_5xx=1)
    durations = []
    for _ in range(2):
        start = clock.now
        detector.record(A, 503, failure=False)
        durations.append(_run_ticks(detector, clock, 1000) - start)
    assert durations == [100.0, 150.0]


def test_without_always_eject_one_host_the_cap_can_forbid_every_ejection():
    # Envoy >= 1.31: 100 * 1/3 > 10, so the default cap ejects nothing among 3 hosts
    detector, _ = _detector(max_ejection_percent=10, always_eject_one_host=False)
    assert not any(_fail(detector, A, 9))
    assert detector.ejections_overflow == 3 and detector.available(HOSTS) == HOSTS


def test_always_eject_one_host_ejects_one_past_the_cap():
    detector, _ = _detector(max_ejection_percent=10)  # 10 % of 3 hosts is 0.3: opted in, one is ejected
    assert _fail(detector, A, 3)[-1]
    assert not any(_fail(detector, B, 3))
    assert detector.ejections_overflow == 1 and detector.available(HOSTS) == [B, C]
    # the refused attempt restarted B's count (Envoy resets it whether or not it ejected)
    assert _fail(detector, B, 2) == [False, False]


@pytest.mark.parametrize("percent,ejectable", [(0, 0), (33, 0), (34, 1), (66, 1), (67, 2), (100, 3)])
def test_max_ejection_percent_of_the_host_set(percent, ejectable):
    detector, _ = _detector(max_ejection_percent=percent, always_eject_one_host=False)
    ejected = sum(_fail(detector, host, 3)[-1] for host in HOSTS)
    assert ejected == ejectable


def test_all_ejected_leaves_no_available_host():
    detector, _ = _detector(max_ejection_percent=100)
    for host in HOSTS:
        _fail(detector, host, 3)
    assert detector.available(HOSTS) == []  # the sidecar answers 503 no healthy upstream


def test_disabled_without_config():
    clock = FakeClock()
    detector = OutlierDetector(None, clock)
    assert not any(_fail(detector, A, 100))
    assert detector.available(HOSTS) == HOSTS and detector.tick() == []


def test_envoy_defaults_eject_after_five():
    detector = OutlierDetector(OutlierDetection(), FakeClock())
    detector.set_hosts([f"10.0.1.{i}:15006" for i in range(10)])  # the 10 % cap allows 1 of 10
    assert _fail(detector, "10.0.1.0:15006", 5) == [False] * 4 + [True]


def test_hosts_that_leave_are_forgotten():
    detector, _ = _detector(max_ejection_percent=100)
    _fail(detector, A, 3)
    detector.set_hosts([B, C])
    assert not detector.is_ejected(A) and detector.ejected == frozenset()
    detector.set_hosts(HOSTS)
    assert _fail(detector, A, 2) == [False, False]  # its count started over too
