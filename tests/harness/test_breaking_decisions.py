"""The breaking suite's pure decisions, on synthetic sweeps and arrival times (no mesh).

The decisions are deterministic: a mesh that keeps its limits cannot exceed them at the echo, and the
ejection lower bounds are exact. What these tests show is that each rule passes what a correct mesh
produces, including its timing spread, and fails each way a broken one differs.
"""

from __future__ import annotations

import random

from suites.breaking._support import Answer, Step, judge_admission, judge_ejections, judge_pending_wait, \
    judge_retry_bursts, levels_for, max_overlap, runs, sweep_rows, waits_ms

MS = 1_000_000
HOLD = 200.0


def _step(level, answers, arrivals_in_flight, start=0):
    step = Step(level, start, start + 2_000 * MS, answers)
    arrivals = [{"t_ns": start + i * MS, "in_flight": f} for i, f in enumerate(arrivals_in_flight)]
    return step, arrivals


def _ok(level, n, latency_ms=HOLD + 3):
    return [Answer(level, 0, int(latency_ms * MS), 200, False, True) for _ in range(n)]


def _overflow(level, n, latency_ms=1.5, marker=True, status=503):
    return [Answer(level, 0, int(latency_ms * MS), status, marker, False) for _ in range(n)]


def _sweep(limit, *, peak_over=None, reject_at_limit=0, over_answers=None):
    steps, arrivals = [], []
    for k, level in enumerate(levels_for(limit)):
        start = k * 10_000 * MS
        if level <= limit:
            answers = _ok(level, 5 * level - reject_at_limit) + _overflow(level, reject_at_limit)
            flights = list(range(1, level + 1)) * 5
        else:
            answers = _ok(level, 5 * limit) + (over_answers(level) if over_answers else _overflow(level, 5 * (level - limit)))
            peak = limit if peak_over is None else peak_over
            flights = list(range(1, peak + 1)) * 5
        step, arr = _step(level, answers, flights, start)
        steps.append(step)
        arrivals += arr
    return steps, arrivals


def _judge(steps, arrivals, limit, **kw):
    rows = sweep_rows(steps, arrivals, HOLD)
    return judge_admission(rows, steps, cap=limit, cap_name="max_requests", reject_above=kw.pop("reject_above", limit),
                           hold_ms=HOLD, overload_p50_bound_ms=HOLD / 2, **kw)


def test_a_correct_sweep_passes():
    assert _judge(*_sweep(4), 4) == []


def test_levels_span_half_to_four_times():
    assert levels_for(4) == [2, 4, 8, 16] and levels_for(3) == [2, 3, 6, 12] and levels_for(1) == [1, 2, 4]


def test_one_over_the_limit_at_the_echo_fails():
    problems = _judge(*_sweep(4, peak_over=5), 4)
    assert any("reached 5 > max_requests 4" in p for p in problems)


def test_a_limit_one_low_fails_twice():
    problems = _judge(*_sweep(4, peak_over=3, reject_at_limit=1), 4)
    assert any("lower than configured" in p for p in problems)
    assert any("at or below 4 nothing may be rejected" in p for p in problems)


def test_queued_overflow_fails():
    problems = _judge(*_sweep(4, over_answers=lambda level: _ok(level, 3, latency_ms=2 * HOLD)), 4)
    assert any("overflow queued instead of rejected" in p for p in problems)


def test_slow_overflow_fails_but_a_stalled_tail_does_not():
    slow = _judge(*_sweep(4, over_answers=lambda level: _overflow(level, 20, latency_ms=HOLD * 0.9)), 4)
    assert any("overflow 503s were slow" in p for p in slow)
    # a tail of overflow answers delayed past the hold by a busy machine stays inside the median rule
    stalled = _judge(*_sweep(4, over_answers=lambda level: _overflow(level, 12) + _overflow(level, 8, latency_ms=250)), 4)
    assert stalled == []


def test_missing_marker_and_other_statuses_fail():
    unmarked = _judge(*_sweep(4, over_answers=lambda level: _overflow(level, 4, marker=False)), 4)
    assert any("lacked the overload marker" in p for p in unmarked)
    bad_gateway = _judge(*_sweep(4, over_answers=lambda level: _overflow(level, 4, marker=False, status=502)), 4)
    assert any("errors rule" in p for p in bad_gateway)  # many 5xx of the mesh's own: beyond the errors rule
    not_found = _judge(*_sweep(4, over_answers=lambda level: _overflow(level, 4, marker=False, status=404)), 4)
    assert any("neither the echo's 200 nor a 503" in p for p in not_found)
    assert not any("queued instead" in p for p in not_found)  # it did reject, with the wrong answer


def test_one_stray_reset_or_unmarked_503_is_inside_the_errors_rule():
    for status in (None, 503, 502):
        stray = lambda level, status=status: _overflow(level, 19) + _overflow(level, 1, marker=False, status=status)  # noqa: E731
        steps, arrivals = _sweep(4, over_answers=lambda level: stray(level) if level == 16 else _overflow(level, 20))
        assert _judge(steps, arrivals, 4) == [], status
    # at the limit a reset is not a rejection either
    steps, arrivals = _sweep(4)
    steps[1].answers[0] = Answer(4, 0, 5 * MS, None, False, False)
    assert _judge(steps, arrivals, 4) == []


def _waits(waits_ms, level=8):
    answers = [Answer(level, 0, int((w + HOLD + 2) * MS), 200, False, True, "k", f"r{i}") for i, w in enumerate(waits_ms)]
    arrivals = [{"t_ns": int(w * MS), "in_flight": 1, "headers": {"X-Meshconform-Request": f"r{i}"}}
                for i, w in enumerate(waits_ms)]
    return [Step(level, 0, 10_000 * MS, answers)], arrivals


def test_pending_wait_rule_tolerates_a_few_stalls_not_one_more_waiting():
    kw = dict(max_wait_ms=1.5 * HOLD, allowed=4, hold_ms=HOLD, pending=2, connections=2)
    assert judge_pending_wait(*_waits([5, 120, 210, 4 * HOLD, 5 * HOLD, 350, 301]), **kw) == []  # 4 long: allowed
    problems = judge_pending_wait(*_waits([5, 120, 210] + [2 * HOLD] * 5), **kw)
    assert len(problems) == 1 and "more requests waited than max_pending_requests 2 allows" in problems[0]
    steps, arrivals = _waits([5, 10])
    missing = judge_pending_wait(steps, arrivals[:1], **kw)
    assert len(missing) == 1 and "no arrival with their x-meshconform-request" in missing[0]


def test_waits_are_journal_arrival_less_send():
    steps, arrivals = _waits([12.5, 250.0])
    assert waits_ms(steps, arrivals) == ([12.5, 250.0], 0)


def test_max_overlap_is_exact_at_the_window_edge():
    w = 300 * MS
    assert max_overlap([0, w, 2 * w], w) == 1  # each arrives exactly when the one before ended
    assert max_overlap([0, w - 1, 2 * w], w) == 2
    assert max_overlap([], w) == 0


def _burst_arrivals(level, retried, t0, hold_ms=300.0):
    answers, arrivals = [], {}
    for i in range(level):
        key = f"{t0}-{i}"
        answers.append(Answer(level, 0, 1, 200 if i < retried else 503, False, True, key))  # the echo's 503
        first = {"t_ns": t0 + i * MS}
        arrivals[key] = [first] + ([{"t_ns": t0 + 5 * MS + i * MS}] if i < retried else [])
    return answers, arrivals


def test_retry_bursts():
    def judge(spec, max_retries=2):
        bursts, arrivals = {}, {}
        for k, (level, retried) in enumerate(spec):
            answers, arr = _burst_arrivals(level, retried, k * 1_000 * MS)
            bursts[level] = answers
            arrivals.update(arr)
        return judge_retry_bursts(bursts, arrivals, max_retries=max_retries, hold_ms=300.0)

    assert judge([(1, 1), (2, 2), (4, 2), (8, 2)]) == []
    assert any("retries over max_retries were attempted" in p for p in judge([(1, 1), (2, 2), (4, 3), (8, 8)]))
    assert any("only 1 of 2 requests were retried" in p for p in judge([(1, 1), (2, 1), (4, 1), (8, 1)]))
    assert any("no request was retried at all" in p for p in judge([(1, 1), (2, 2), (4, 0), (8, 2)]))


def test_a_reset_in_a_retry_burst_is_the_errors_rule_s():
    bursts, arrivals = {}, {}
    for k, (level, retried) in enumerate([(1, 1), (2, 2), (4, 2), (8, 2)]):
        answers, arr = _burst_arrivals(level, retried, k * 1_000 * MS)
        bursts[level] = answers
        arrivals.update(arr)
    first = bursts[2][0]
    bursts[2][0] = Answer(2, 0, 1, None, False, False, first.key)  # reset on its way back, after its retry
    assert judge_retry_bursts(bursts, arrivals, max_retries=2, hold_ms=300.0) == []
    for level in (4, 8):
        bursts[level] = [Answer(level, 0, 1, None, False, False, a.key) for a in bursts[level]]
    problems = judge_retry_bursts(bursts, arrivals, max_retries=2, hold_ms=300.0)
    assert any("errors rule" in p for p in problems)


def _failing_endpoint(gaps_s, *, per_run=3, cycle_s=0.015, tail=3):
    """Arrival times of a failing endpoint: runs of ``per_run`` one cycle apart, then ``gaps_s``."""
    t, out = 0.0, []
    for gap in list(gaps_s) + [None]:
        for _ in range(per_run if gap is not None else tail):
            out.append(int(t * 1e9))
            t += cycle_s
        if gap is not None:
            t += gap - cycle_s
    return out, int((t + 0.05) * 1e9)


def _eject(times, end):
    return judge_ejections(times, end, consecutive_5xx=3, base_s=0.6, interval_s=0.3, max_ejection_s=300.0,
                           tolerance_s=0.15)


def test_ejections_within_their_windows_pass():
    rng = random.Random(7)
    for _ in range(200):  # any return between the exact lower bound and the tick + tolerance passes
        times, end = _failing_endpoint([0.6 + rng.uniform(0.0001, 0.45), 1.2 + rng.uniform(0.0001, 0.45)])
        assert _eject(times, end) == [], (times, end)


def test_ejection_failures_are_named():
    times, end = _failing_endpoint([0.7, 0.7])
    assert any("ejection 2" in p and "not multiplied" in p for p in _eject(times, end))
    times, end = _failing_endpoint([0.7, 1.4], per_run=4)
    assert any("came after 4 consecutive 5xx, want exactly 3" in p for p in _eject(times, end))
    times, _ = _failing_endpoint([])
    assert any("ejection 1 never ended" in p for p in _eject(times, times[-1] + 3 * 10**9))
    times = [int(i * 0.015e9) for i in range(9)]
    assert any("not ejected after 3 consecutive 5xx" in p for p in _eject(times, times[-1]))
    times, end = _failing_endpoint([1.2, 1.3])
    assert any("ejection 1 lasted 1200 ms > 1050 ms" in p for p in _eject(times, end))


def test_a_run_one_short_passes_only_with_a_lost_request_in_it():
    times, end = _failing_endpoint([0.7, 1.3])
    short = times[:2] + times[3:]  # the run's 3rd 5xx never reached the echo (a reset on the way)
    assert any("came after 2 consecutive 5xx" in p for p in _eject(short, end))
    lost_at = times[2]
    assert judge_ejections(short, end, consecutive_5xx=3, base_s=0.6, interval_s=0.3, max_ejection_s=300.0,
                           tolerance_s=0.15, errors_ns=[lost_at]) == []
    # a lost request never excuses a run that is too long (ejected late)
    times, end = _failing_endpoint([0.7, 1.3], per_run=4)
    assert any("came after 4" in p for p in judge_ejections(times, end, consecutive_5xx=3, base_s=0.6, interval_s=0.3,
                                                             max_ejection_s=300.0, tolerance_s=0.15,
                                                             errors_ns=[times[1]]))


def test_a_stall_inside_a_run_does_not_cut_it():
    times, end = _failing_endpoint([0.7, 1.3])
    stalled = times[:1] + [t + 400_000_000 for t in times[1:]]  # 400 ms stall after the first arrival
    assert not any("consecutive" in p for p in _eject(stalled, end + 400_000_000))


def test_runs_split_on_long_gaps():
    assert [len(r) for r in runs([0, 10, 20, 1000, 1010], 100)] == [3, 2]
