"""The health suite's bounds and pure decisions, on simulated probe schedules and synthetic timelines.

The bounds of suites/health/_support.py are worst cases, not quantiles: a seeded simulation of the
probe schedules of Envoy (next probe ``interval`` after the previous result) and HAProxy (a failure
counts towards ``fall`` whatever it is), with any round trip up to ``timeout`` and the flip anywhere in
the probe cycle, never needs more than the bound. What is left of the false-fail rate is the machine's
scheduling (a sidecar's timer or the client's request late by more than the propagation allowance).
"""

from __future__ import annotations

import random

from meshscenario import HealthCheck
from suites.health._support import (INSTANCES, PERIOD_S, PROPAGATION_S, TIMER_SLACK_S, Sent, earliest_return_s,
                                    judge_removal, judge_return, removal_bound_s, return_bound_s, workload)

HC = HealthCheck(path="/healthz", interval=0.25, timeout=0.15, unhealthy_threshold=2, healthy_threshold=3)
S = 1_000_000_000
FLIP = 10 * S
BAD, OTHERS = workload(0), [workload(1), workload(2)]


def _transition_after_flip(rng: random.Random, threshold: int, *, every_result_counts: bool,
                           max_rtt_s: float = HC.timeout) -> float:
    """Seconds from a flip at a random phase of the probe cycle to the probe result that changes the
    host's health: ``threshold`` probes started after the flip (1 when a non-200 answer acts at once)."""
    needed = threshold if every_result_counts else 1
    t, flip = 0.0, rng.uniform(5.0, 6.0)
    done = 0
    while True:
        rtt = rng.uniform(0.0, max_rtt_s)
        started, ended = t, t + rtt
        if started >= flip:
            done += 1
            if done == needed:
                return ended - flip
        t = ended + HC.interval  # Envoy: the interval timer is armed when the result comes in


def test_the_bounds_cover_every_simulated_schedule():
    rng = random.Random(20261203)
    removal = return_ = 0.0
    earliest = float("inf")
    for _ in range(20_000):
        removal = max(removal, _transition_after_flip(rng, HC.unhealthy_threshold, every_result_counts=True))
        back = _transition_after_flip(rng, HC.healthy_threshold, every_result_counts=True)
        return_, earliest = max(return_, back), min(earliest, back)
    # the propagation allowance is for the request stream, not the probes: the probes alone stay within
    assert removal <= removal_bound_s(HC) - PROPAGATION_S
    assert return_ <= return_bound_s(HC) - PROPAGATION_S - INSTANCES * PERIOD_S
    assert earliest >= earliest_return_s(HC) + TIMER_SLACK_S


def test_one_pass_back_is_earlier_than_the_lower_bound_with_loopback_round_trips():
    # a probe on loopback takes a few ms (mTLS included, connection kept alive); with round trips up to
    # 50 ms a mesh that needs one pass is back within interval + 2 x 50 ms, always before the lower bound
    rng = random.Random(11)
    latest = max(_transition_after_flip(rng, 1, every_result_counts=True, max_rtt_s=0.05) for _ in range(20_000))
    assert latest < earliest_return_s(HC)


def test_envoy_takes_a_503_out_at_the_first_probe():
    rng = random.Random(7)
    worst = max(_transition_after_flip(rng, HC.unhealthy_threshold, every_result_counts=False) for _ in range(5000))
    assert worst <= HC.interval + 2 * HC.timeout


def _stream(t_from: int, t_to: int, skip_bad_after: int | None):
    """Round-robin requests every PERIOD_S; the bad endpoint's share stops at ``skip_bad_after``."""
    sent, arrivals = [], {w: [] for w in [BAD, *OTHERS]}
    t, i = t_from, 0
    while t < t_to:
        endpoint = [BAD, *OTHERS][i % 3]
        if endpoint == BAD and skip_bad_after is not None and t > skip_bad_after:
            endpoint = OTHERS[i % 2]
        sent.append(Sent(t, 200, endpoint))
        arrivals[endpoint].append(t + 2_000_000)
        t += int(PERIOD_S * S)
        i += 1
    return sent, arrivals


def _removal(skip_after: int | None, end_s: float = 2.0, probes_seen: int = 30):
    sent, arrivals = _stream(FLIP - S // 2, FLIP + int(end_s * S), skip_after)
    return judge_removal(arrivals[BAD], {w: arrivals[w] for w in OTHERS}, sent, flip_ns=FLIP,
                         end_ns=sent[-1].sent_ns, bound_s=removal_bound_s(HC), probes_seen=probes_seen)


def test_an_endpoint_out_in_time_passes():
    assert _removal(FLIP + int(0.2 * S)) == []
    assert _removal(FLIP + int((removal_bound_s(HC) - 0.05) * S)) == []


def test_an_endpoint_never_out_is_named_ignored():
    problems = _removal(None)
    assert len(problems) == 1 and "never taken out" in problems[0] and "30 probes reached it" in problems[0]


def test_an_endpoint_out_late_is_named_late():
    problems = _removal(FLIP + int((removal_bound_s(HC) + 0.3) * S))
    assert len(problems) == 1 and "taken out late" in problems[0]


def test_failed_requests_after_the_flip_fail_the_check_beyond_the_errors_rule():
    def judged(bad: dict[int, int | None]):
        sent, arrivals = _stream(FLIP, FLIP + 2 * S, FLIP)
        for i, status in bad.items():
            sent[i] = Sent(sent[i].sent_ns, status, None)
        return judge_removal(arrivals[BAD], {w: arrivals[w] for w in OTHERS}, sent, flip_ns=FLIP,
                             end_ns=sent[-1].sent_ns, bound_s=removal_bound_s(HC), probes_seen=3)

    assert judged({10: 503}) == [] and judged({10: None}) == []  # one reset or 503 of ~100: the errors rule
    many = judged({i: 503 for i in range(10, 30, 2)})  # 10 of ~100
    assert len(many) == 1 and "traffic must keep flowing" in many[0] and "errors rule" in many[0]
    wrong = judged({10: 404})  # not an error: a correct mesh never answers 404 here
    assert len(wrong) == 1 and "traffic must keep flowing" in wrong[0]


# -- the timing rules' false-fail rates under noise models (issue 14) ------------------------------------
# 1,000,000 seeded runs per model of the vectorised probe schedule + request stream
# (harness/error_budgets_health.py) through the checks' own rules; guard: at most 1.5 x claim x runs, so a
# true rate of twice the claim fails (guard_errors: < 1e-30 both ways at this many runs).

from harness.error_budgets import errors_rule_crossing, guard_errors, guard_threshold  # noqa: E402
from harness.error_budgets_health import MODELS, simulate_removal, simulate_return  # noqa: E402
from suites.health._support import ALPHA_ERRORS, ALPHA_TIMING, ERRORS  # noqa: E402

import pytest  # noqa: E402

TIMING_RUNS = 1_000_000


def test_the_budgets_add_up():
    assert ALPHA_TIMING + ALPHA_ERRORS == pytest.approx(0.001)


@pytest.mark.parametrize("model", list(MODELS))
def test_removal_timing_false_fail_rate(model):
    totals = simulate_removal(MODELS[model], TIMING_RUNS, 20261204, HC)
    print(f"removal {model}: {totals}; guard errors {guard_errors(TIMING_RUNS, ALPHA_TIMING)}")
    assert totals["any"] <= guard_threshold(TIMING_RUNS, ALPHA_TIMING)


@pytest.mark.parametrize("model", list(MODELS))
def test_return_timing_false_fail_rate(model):
    """The restore check applies the removal rule and the return rules: their sum stays in its share."""
    back = simulate_return(MODELS[model], TIMING_RUNS, 20261205, HC)
    out = simulate_removal(MODELS[model], TIMING_RUNS, 20261206, HC)
    print(f"return {model}: {back}, removal {out}")
    assert back["any"] + out["any"] <= guard_threshold(TIMING_RUNS, ALPHA_TIMING)


def test_timing_guard_catches_a_rate_above_the_claim():
    """The guard can fail: when 1% of requests and probes meet a stall of 195 ms + Exponential(50 ms)
    (harness.error_budgets' late1 model: beyond what the bounds allow for) the restore check's timing rules
    fail about 1% of correct runs, over ten times the claim."""
    from harness.error_budgets import DELAY_MODELS
    totals = simulate_return(DELAY_MODELS["late1"], 100_000, 7, HC)
    assert totals["any"] > guard_threshold(100_000, 2 * ALPHA_TIMING)


def test_restore_timing_holds_its_claim_when_0_1_percent_of_requests_stall_195_ms():
    """issue 14: with 0.1% of requests, probes and control calls stalled 195 ms + Exponential(50 ms) the restore
    check was at 0.104% against 0.1%: the early rule, judged from the flip call's return, failed a correct
    mesh when the call's way back stalled. Judged from the call's start it cannot; the timing rules together
    stay under their 0.09% share itself (not just 1.5 x: the old rule was only just over it)."""
    from harness.error_budgets import DELAY_MODELS
    model = DELAY_MODELS["late0.1"]
    back = simulate_return(model, TIMING_RUNS, 20261205, HC)
    out = simulate_removal(model, TIMING_RUNS, 20261206, HC)
    print(f"late0.1 return {back}, removal {out}")
    assert back["early"] == 0
    assert back["any"] + out["any"] <= ALPHA_TIMING * TIMING_RUNS


def test_the_restore_guard_fails_the_old_early_rule():
    from harness.error_budgets import DELAY_MODELS
    model = DELAY_MODELS["late0.1"]
    old = simulate_return(model, TIMING_RUNS, 20261205, HC, early_from_return=True)
    out = simulate_removal(model, TIMING_RUNS, 20261206, HC)
    assert old["early"] > 100
    assert old["any"] + out["any"] > ALPHA_TIMING * TIMING_RUNS


def test_one_pass_back_is_caught_by_the_simulated_rule():
    totals = simulate_return(MODELS["stall"], 100_000, 7, HC, needed=1)
    assert totals["early"] >= 0.99 * 100_000


def test_errors_rule_exact_within_the_checks_requests():
    n = int((removal_bound_s(HC) + 1.0 + 0.3 + return_bound_s(HC) + 0.5) / PERIOD_S) + 1
    assert errors_rule_crossing(ERRORS, ERRORS.rate, n, 1) <= ALPHA_ERRORS
    assert errors_rule_crossing(ERRORS, 1 / 3000, n, 1) < 1e-6


def test_return_within_the_bounds_passes_and_late_early_or_never_fails():
    bounds = {"bound_s": return_bound_s(HC), "earliest_s": earliest_return_s(HC), "healthy_threshold": 3}
    assert judge_return([FLIP - S, FLIP + int(0.6 * S)], back_ns=FLIP, end_ns=FLIP + S, **bounds) == []
    late = judge_return([FLIP + int((bounds["bound_s"] + 0.1) * S)], back_ns=FLIP, end_ns=FLIP + 2 * S, **bounds)
    assert len(late) == 1 and "came back late" in late[0]
    early = judge_return([FLIP + int(0.2 * S)], back_ns=FLIP, end_ns=FLIP + 2 * S, **bounds)
    assert len(early) == 1 and "too early" in early[0] and "healthy_threshold=3" in early[0]
    never = judge_return([FLIP - S], back_ns=FLIP, end_ns=FLIP + 2 * S, **bounds)
    assert len(never) == 1 and "never got traffic again" in never[0]


def test_the_early_rule_counts_from_the_flip_call_s_start_and_the_late_rule_from_its_return():
    bounds = {"bound_s": return_bound_s(HC), "earliest_s": earliest_return_s(HC), "healthy_threshold": 3}
    # the call's way back stalled 250 ms: 0.3 s after its return is 0.55 s after it was sent, not early
    asked, back = FLIP - int(0.25 * S), FLIP
    assert judge_return([FLIP + int(0.3 * S)], back_ns=back, asked_ns=asked, end_ns=FLIP + 2 * S, **bounds) == []
    early = judge_return([FLIP + int(0.2 * S)], back_ns=back, asked_ns=FLIP - int(0.1 * S), end_ns=FLIP + 2 * S,
                         **bounds)
    assert len(early) == 1 and "too early" in early[0] and "300 ms" in early[0]
    late = judge_return([FLIP + int((bounds["bound_s"] + 0.05) * S)], back_ns=back, asked_ns=asked,
                        end_ns=FLIP + 3 * S, **bounds)
    assert len(late) == 1 and "came back late" in late[0]
