"""Error budgets of the statistical and timing checks (issue 14): false-fail rates and power, before and
after, per check and noise model — exact where computable, else seeded simulations of the checks' own
pure decisions (no mesh). Writes a markdown table.

    nice -n 19 python3 bench/error_budgets.py --out bench/results/error_budgets-2026-12-04.md
    nice -n 19 python3 bench/error_budgets.py --quick          # 10x fewer runs, to the terminal

The noise models are those of harness/error_budgets.py (quiet, loaded, whole-ms timers, stall; for the
delay check also 0.1% / 1% / 2% of requests late by ≥ 195 ms on the way to the echo). "Before" rows
replay the decisions as they were before issue 14 (vectorised here): the backoff KS at alpha/2 with
150 one-sample points plus the early (< least control gap − 5 ms) and late (> largest + bound + 25 ms)
rules outside any budget; the delay share from a 195 ms end-to-end threshold; splits and the abort
check failing at the first non-echo answer.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

import argparse
import os
import time

import numpy as np
from scipy import stats as st

from harness import stats
from harness.error_budgets import (BACKOFF_MODELS, BACKOFF_MODES, DELAY_MODELS, delay_share_exact,
                                   errors_rule_crossing, simulate_backoff, simulate_delay, split_exact,
                                   split_simulate)
from harness.stats import SequentialSplitTest
from suites.resilience import _decisions as rd
from suites.routing._support import BATCH, ERRORS as SPLIT_ERRORS, MISS_RATE, SPLITS, split_test

SEED = 20_261_204
RESET_RATE = 1 / 3000  # "one reset in 3,000" of the issue


def pct(x: float) -> str:
    if 0 < x < 1e-6:
        return f"{x * 100:.1e}%"
    return f"{x * 100:.4f}%" if x < 0.01 else f"{x * 100:.2f}%"


def ci(k: int, n: int) -> str:
    low, high = stats.clopper_pearson(k, n, 0.95)
    return f"{pct(k / n)} ({k}/{n:,}; 95% CI {pct(low)}–{pct(high)})"


def old_split_test(spec):
    return SequentialSplitTest(spec.weights, alpha=0.001, beta=MISS_RATE, delta=spec.delta, max_samples=spec.max_requests)


def any_error_fails(pmf, rate: float) -> float:
    return float(sum(w * (1 - (1 - rate) ** n) for n, w in pmf) / sum(w for _, w in pmf))


def splits_section(runs3: int) -> list[str]:
    out = ["## Weighted splits (MeshWeightedSplit*)", "",
           "Two backends: exact (dynamic programming over the canary's count, batches of 32). 80/10/10: "
           f"{runs3:,} seeded runs of the same SPRTs (vectorised; replayed into the real class in "
           "tests/harness/test_split_power.py). Errors rule: exact probability of ever failing within the "
           "whole 40,000-request budget at the tolerated 0.1% error rate (an upper bound whenever the check stops).", "",
           "| check | before: false-fail (SPRT at 0.1%) | before: fails with 1 reset in 3,000 | after: SPRT (0.09%) | "
           "after: + errors rule | after: fails with 1 reset in 3,000 | power at ±delta (after) | requests p50 / p90 |",
           "|---|---|---|---|---|---|---|---|"]
    err_bound = errors_rule_crossing(SPLIT_ERRORS, SPLIT_ERRORS.rate, 40_000, BATCH)
    err_reset = errors_rule_crossing(SPLIT_ERRORS, RESET_RATE, 40_000, BATCH)
    for name, spec in SPLITS.items():
        total = sum(spec.weights.values())
        if len(spec.weights) == 2:
            old = split_exact(lambda: old_split_test(spec), spec.weights)
            new = split_exact(lambda: split_test(spec), spec.weights)
            powers = []
            first = list(spec.weights)[0]
            for sign in (+1, -1):
                w1 = spec.weights[first] / total + sign * spec.delta
                o = split_exact(lambda: split_test(spec), {first: w1, list(spec.weights)[1]: 1 - w1})
                powers.append(f"{pct(o.fail)} ({w1 * 100:.0f}/{100 - w1 * 100:.0f})")
            out.append(f"| {name} | {pct(old.fail)} exact | {pct(any_error_fails(old.requests_pmf, RESET_RATE))} | "
                       f"{pct(new.fail)} exact | ≤ {pct(new.fail + err_bound)} | ≤ {pct(err_reset)} | "
                       f"{', '.join(powers)} exact | {new.requests_median:.0f} / {new.requests_p90:.0f} |")
        else:
            d_old, u_old = split_simulate(lambda: old_split_test(spec), spec.weights, runs3, SEED)
            d_new, u_new = split_simulate(lambda: split_test(spec), spec.weights, runs3, SEED + 1)
            reset_fail = float(np.mean(1 - (1 - RESET_RATE) ** u_old))
            powers = []
            for dev, label in (({"v1": 0.83, "v2": 0.085, "v3": 0.085}, "83/8.5/8.5"),
                               ({"v1": 0.77, "v2": 0.115, "v3": 0.115}, "77/11.5/11.5"),
                               ({"v1": 0.8, "v2": 0.07, "v3": 0.13}, "80/7/13")):
                d_pow, _ = split_simulate(lambda: split_test(spec), dev, runs3 // 4, SEED + 2)
                powers.append(f"{ci(int((d_pow == 'fail').sum()), runs3 // 4)} ({label})")
            k_new = int((d_new == "fail").sum())
            out.append(f"| {name} | {ci(int((d_old == 'fail').sum()), runs3)} | {pct(reset_fail)} | "
                       f"{ci(k_new, runs3)} | ≤ {pct(k_new / runs3 + err_bound)} | ≤ {pct(err_reset)} | "
                       f"{', '.join(powers)} | "
                       f"{np.median(u_new):.0f} / {np.percentile(u_new, 90):.0f} |")
    out += ["", f"Errors rule ({SPLIT_ERRORS.describe()}): exact P(ever fails within 40,000 requests) = "
            f"{pct(err_bound)} at 0.1% errors, {pct(err_reset)} at one in 3,000, "
            f"{pct(errors_rule_crossing(SPLIT_ERRORS, 0.01, 1472, BATCH))} at 1% within 1,472 requests (a 95/5 "
            f"check's median), {pct(errors_rule_crossing(SPLIT_ERRORS, 0.02, 1472, BATCH))} at 2%.", ""]
    return out


def old_backoff_fails(model, mode: str, runs: int, seed: int, chunk: int = 5_000) -> int:
    rng = np.random.default_rng(seed)
    failed = done = 0
    while done < runs:
        r = min(chunk, runs - done)
        any_ = np.zeros(r, bool)
        gaps = {}
        for n in (1, 2):
            bound = rd.full_jitter_bound(n, 0.025, 0.25)
            shape = (r, 150)
            wait = {"jitter": lambda: rng.uniform(0, bound, shape), "constant": lambda: np.full(shape, 0.025),
                    "no_jitter": lambda: np.full(shape, bound), "half_range": lambda: rng.uniform(0, bound / 2, shape)}[mode]()
            gaps[n] = (bound, model.timer(wait, rng) + model.overhead(rng, shape))
        control = model.overhead(rng, (r, 300))
        for n, (bound, g) in gaps.items():
            d = rd.ks_distance_batch(g, control, bound)
            any_ |= st.kstwo.sf(d, 150) <= 0.001 / 2
            any_ |= (g < control.min(axis=1)[:, None] - 0.005).any(axis=1)
            any_ |= (g > control.max(axis=1)[:, None] + bound + 0.025).any(axis=1)
        failed += int(any_.sum())
        done += r
    return failed


def backoff_section(runs: int, power_runs: int) -> list[str]:
    out = ["## MeshRetryBackoffFullJitter", "",
           f"150 checked requests (2 gaps each) + 150 control requests (2 gaps each): 300 requests, 900 tries "
           f"(about 3 s on the reference mesh). False-fail: {runs:,} seeded runs of the check's own batch "
           f"decision per model (before: {runs // 2:,}); power: {power_runs:,} runs per model and wrong backoff. "
           "The errors rule's 0.01% is exact and added below.", "",
           "| model | before: false-fail | after: false-fail (all rules) | after: + errors rule ≤ | "
           + " | ".join(f"after: power vs {m}" for m in BACKOFF_MODES[1:]) + " |",
           "|---|---|---|---|" + "---|" * (len(BACKOFF_MODES) - 1)]
    for name, model in BACKOFF_MODELS.items():
        old = old_backoff_fails(model, "jitter", runs // 2, SEED)
        new = simulate_backoff(model, "jitter", runs, SEED + 1)
        powers = []
        for mode in BACKOFF_MODES[1:]:
            t = simulate_backoff(model, mode, power_runs, SEED + 2)
            powers.append(ci(t["any"], power_runs))
        upper = stats.clopper_pearson(new["any"], runs, 0.95)[1]
        out.append(f"| {name} | {ci(old, runs // 2)} | {ci(new['any'], runs)} (rules: "
                   f"{', '.join(f'{k} {v}' for k, v in new.items() if k not in ('any', 'runs') and v)}) | "
                   f"{pct(upper + rd.ALPHA_ERRORS)} | " + " | ".join(powers) + " |")
    out.append("")
    return out


def abort_section() -> list[str]:
    n_old = stats.sample_size_for_power(0.2, 0.05, alpha=0.001, power=0.99)
    n_new = rd.fault_sample_size(0.2)
    return ["## MeshFaultInjectionAbort", "",
            "| | requests | share test false-fail (exact) | errors rule (exact, at 0.1% errors) | fails with 1 reset in 3,000 | power −5 / +5 points (exact) |",
            "|---|---|---|---|---|---|",
            f"| before | {n_old} | {pct(stats.binomial_size(n_old, 0.2, 0.001))} | any error fails | "
            f"{pct(1 - (1 - RESET_RATE) ** n_old)} | {pct(stats.binomial_power(n_old, 0.2, 0.15, 0.001))} / "
            f"{pct(stats.binomial_power(n_old, 0.2, 0.25, 0.001))} |",
            f"| after | {n_new} | {pct(stats.binomial_size(n_new, 0.2, rd.ALPHA_ABORT_SHARE))} | "
            f"{pct(errors_rule_crossing(rd.ERRORS, rd.ERRORS.rate, n_new, 1))} | "
            f"{pct(errors_rule_crossing(rd.ERRORS, RESET_RATE, n_new, 1))} | "
            f"{pct(stats.binomial_power(n_new, 0.2, 0.15, rd.ALPHA_ABORT_SHARE))} / "
            f"{pct(stats.binomial_power(n_new, 0.2, 0.25, rd.ALPHA_ABORT_SHARE))} |", ""]


def delay_section(runs: int, power_runs: int) -> list[str]:
    n = rd.delay_sample_size(0.3)
    n_old = 2765
    region = stats.rejection_region(n_old, 0.3, 0.001)
    out = ["## MeshFaultInjectionDelay", "",
           f"After: {n} fault-route + {n} control requests ({2 * n:,} in all, about 11 s on the reference mesh; "
           f"before: {n_old}). \"s\": the share of undelayed requests a stall makes look delayed (before: ≥ 195 ms "
           "end to end; after: ≥ 195 ms from send to echo arrival). Share rules exact (over the control's "
           f"binomial); whole decision simulated, {runs:,} runs per model. Last column: the larger of the "
           "simulation's 95% upper bound and the exact share rules + the magnitude rule's 0.01%, plus the errors "
           "rule's 0.01%.", "",
           "| model | s | before: false-fail (share, exact) | after: share rules (exact) | after: whole decision (simulated) | after: + errors rule ≤ |",
           "|---|---|---|---|---|---|"]
    s_of = {"quiet": 0.0, "loaded": 0.0, "timer": 0.0, "stall": 0.01 * np.exp(-0.195 / 0.020),
            "late0.1": 0.001, "late1": 0.01, "late2": 0.02}
    for name, model in DELAY_MODELS.items():
        s = float(s_of[name])
        before = float(st.binom.pmf(np.arange(n_old + 1), n_old, 0.3 + 0.7 * s)[region].sum())
        exact = delay_share_exact(n, n, 0.3, 0.3, s)
        sim = simulate_delay(model, runs, SEED + 3)
        upper = stats.clopper_pearson(sim["any"], runs, 0.95)[1]
        out.append(f"| {name} | {s:.2g} | {pct(before)} | {pct(exact)} | {ci(sim['any'], runs)} | "
                   f"{pct(max(upper, exact + rd.ALPHA_DELAY_MAGNITUDE) + rd.ALPHA_ERRORS)} |")
    low, high = rd.delay_power(n, n, 0.3)
    out += ["", f"Power (exact, no late control requests): {pct(low)} against 25%, {pct(high)} against 35%; "
            f"with 1% of requests late by ≥ 195 ms: {pct(delay_share_exact(n, n, 0.3, 0.35, 0.01))} against 35%, "
            f"{pct(delay_share_exact(n, n, 0.3, 0.25, 0.01))} against 25%."]
    for true_delay in (0.23, 0.25):
        t = simulate_delay(DELAY_MODELS["stall"], power_runs, SEED + 4, true_delay_s=true_delay)
        out.append(f"Magnitude rule vs a {true_delay * 1e3:.0f} ms delay (stall model): caught {ci(t['magnitude'], power_runs)}.")
    out.append("")
    return out


def balancing_section(runs: int, power_runs: int, rings: int) -> list[str]:
    """suites/balancing (issue 14, second pass): every rule inside its share, the errors rule added."""
    from harness.error_budgets_balancing import (remap_fail_given_shares, remap_fail_model, ring_leaving_shares,
                                                 simulate_least_request)
    from suites.balancing import _decisions as bd

    reset = lambda n: 1 - (1 - RESET_RATE) ** n  # noqa: E731  before: the first non-echo answer failed a check
    even_err = errors_rule_crossing(bd.ERRORS, bd.ERRORS.rate, bd.EVEN_MAX_REQUESTS, bd.EVEN_BATCH)
    even_reset = errors_rule_crossing(bd.ERRORS, RESET_RATE, bd.EVEN_MAX_REQUESTS, bd.EVEN_BATCH)
    lr_n = bd.LR_MAX_REQUESTS + 64
    lr_err = errors_rule_crossing(bd.ERRORS, bd.ERRORS.rate, lr_n, 1)
    sticky_err = errors_rule_crossing(bd.ERRORS, bd.ERRORS.rate, bd.STICKY_KEYS * bd.STICKY_ROUNDS, 1)
    remap_err = errors_rule_crossing(bd.ERRORS, bd.ERRORS.rate, 3 * bd.REMAP_KEYS, 1)
    out = ["## Balancing (MeshLb*)", "",
           f"Budget per check 0.1%, split explicitly: errors rule 0.01% everywhere ({bd.ERRORS.describe()}); "
           "even spread: SPRTs 0.045% + capped fixed-n tests 0.045%; least request: SPRT 0.09%; ring remap: moved-count "
           "range 0.09%; the zero-tolerance rules (sticky, strays, arrivals after leaving, not back) are exact for a "
           "deterministic ring. Before: SPRTs / count range at the whole 0.1% (even: 0.05% + 0.05%), the first "
           "non-echo answer failed the check. Errors rule: exact P(ever fails) within the check's whole request "
           "budget, looking after every answer (an upper bound for rarer looks). Simulations seeded "
           f"({SEED}); guards: tests/harness/test_balancing_power.py.", "",
           "| check | before: false-fail | before: fails with 1 reset in 3,000 | after: main rule(s) | after: + errors rule ≤ | "
           "after: fails with 1 reset in 3,000 | power (after) | requests p50 |",
           "|---|---|---|---|---|---|---|---|"]
    # round robin: exact over the 3 starting endpoints (its counts are deterministic)
    used = []
    for offset in range(3):
        t = bd.even_split_test()
        while t.decision is stats.Decision.CONTINUE:
            picks = [(offset + t.n + i) % 3 for i in range(bd.EVEN_BATCH)]
            t.update(dict(zip(bd.ENDPOINTS, np.bincount(picks, minlength=3).tolist())))
        assert t.decision is stats.Decision.ACCEPT_H0
        used.append(t.n)
    uniform = {e: 1 for e in bd.ENDPOINTS}
    imbalances = {"+5": [1 / 3 + 0.05, 1 / 3 - 0.025, 1 / 3 - 0.025], "−5": [1 / 3 - 0.05, 1 / 3 + 0.025, 1 / 3 + 0.025]}
    powers = []
    for label, sh in imbalances.items():
        d, _ = split_simulate(bd.even_split_test, dict(zip(bd.ENDPOINTS, sh)), power_runs, SEED + 20, batch=bd.EVEN_BATCH)
        powers.append(f"{ci(int((d == 'fail').sum()), power_runs)} ({label} points)")
    out.append(f"| MeshLbRoundRobinEven | 0 (exact: passes from every start) | {pct(reset(used[0]))} | 0 exact "
               f"(multinomial bound 0.045% + 0.045%) | ≤ {pct(even_err)} | ≤ {pct(even_reset)} | as random (multinomial) | "
               f"{used[0]} |")
    old = lambda: SequentialSplitTest(uniform, alpha=0.0005, beta=bd.MISS_RATE, delta=bd.EVEN_DELTA,  # noqa: E731
                                      max_samples=bd.EVEN_MAX_REQUESTS)
    d_old, u_old = split_simulate(old, uniform, runs, SEED + 21, batch=bd.EVEN_BATCH)
    d_new, u_new = split_simulate(bd.even_split_test, uniform, runs, SEED + 22, batch=bd.EVEN_BATCH)
    k_new = int((d_new == "fail").sum())
    upper = stats.clopper_pearson(k_new, runs, 0.95)[1]
    out.append(f"| MeshLbRandomUniform | SPRTs {ci(int((d_old == 'fail').sum()), runs)} + capped tests ≤ 0.05% | "
               f"{pct(float(np.mean(reset(u_old))))} | SPRTs {ci(k_new, runs)}; capped tests ≤ 0.045% (exact) | "
               f"≤ {pct(upper + bd.TRUNCATED_FALSE_FAIL + even_err)} | ≤ {pct(even_reset)} | {', '.join(powers)} | "
               f"{np.median(u_new):.0f} |")
    # least request
    cells, old_cells = [], []
    old_sprt = lambda: stats.Sprt(bd.PASS_SHARE, bd.LOAD_BLIND_SHARE, 0.001 * (1 - 0.005),  # noqa: E731
                                  0.005 * (1 - 0.001 * (1 - 0.005)))
    for fast in (0.002, 0.02):
        d, judged, share = simulate_least_request(runs, SEED + 23, fast_s=fast)
        k = int((d != "pass").sum())
        cells.append((fast, k, judged, share))
        d_old, _, _ = simulate_least_request(runs // 2, SEED + 26, fast_s=fast, sprt_factory=old_sprt)
        old_cells.append((fast, int((d_old != "pass").sum())))
    d_blind, j_blind, _ = simulate_least_request(runs, SEED + 24, load_blind=True)
    seen = lambda j: j + bd.WARMUP_SENDS + bd.CONCURRENCY  # noqa: E731  answers seen ≈ judged + warm-up + in flight
    worst = max(k for _, k, _, _ in cells)
    upper = stats.clopper_pearson(worst, runs, 0.95)[1]
    out.append(f"| MeshLbLeastRequestAvoidsSlow | SPRT 0.1%: " + "; ".join(
        f"{ci(k, runs // 2)} (fast {fast * 1e3:.0f} ms)" for fast, k in old_cells)
        + f" | {pct(float(np.mean(reset(seen(cells[1][2])))))} | SPRT 0.09%: " + "; ".join(
        f"{ci(k, runs)} (fast {fast * 1e3:.0f} ms)" for fast, k, _, _ in cells)
        + f" (slow share p50 {np.median(cells[0][3]):.3f} / {np.median(cells[1][3]):.3f})"
        + f" | ≤ {pct(upper + lr_err)} | ≤ {pct(errors_rule_crossing(bd.ERRORS, RESET_RATE, lr_n, 1))} | "
        f"{ci(int((d_blind == 'fail').sum()), runs)} vs load-blind | {np.median(cells[0][2]):.0f} judged "
        f"({np.median(cells[1][2]):.0f} at 20 ms) |")
    out.append(f"| MeshLbRingHashSticky | 0 (exact) | {pct(reset(bd.STICKY_KEYS * bd.STICKY_ROUNDS))} | 0 (exact) | "
               f"≤ {pct(sticky_err)} | ≤ {pct(errors_rule_crossing(bd.ERRORS, RESET_RATE, 2000, 1))} | any key on 2 endpoints "
               f"fails | {bd.STICKY_KEYS * bd.STICKY_ROUNDS} |")
    old_bounds = bd.moved_count_bounds(bd.REMAP_KEYS, alpha=0.001)
    shares = ring_leaving_shares(rings, SEED + 25)
    p_new = remap_fail_given_shares(shares)
    p_old = remap_fail_given_shares(shares, bounds=old_bounds)
    se = float(p_new.std() / np.sqrt(rings))
    out.append(f"| MeshLbRingHashMinimalRemap | {old_bounds[0]}..{old_bounds[1]}: {pct(remap_fail_model(bounds=old_bounds))} "
               f"model, {pct(float(p_old.mean()))} on {rings:,} real rings | {pct(reset(2 * bd.REMAP_KEYS + 700))} | "
               f"{'..'.join(map(str, bd.moved_count_bounds()))}: {pct(remap_fail_model())} exact (model), "
               f"{pct(float(p_new.mean()))} ± {pct(se)} on {rings:,} real rings | ≤ {pct(float(p_new.mean()) + 2 * se + remap_err)} | "
               f"≤ {pct(errors_rule_crossing(bd.ERRORS, RESET_RATE, 3 * bd.REMAP_KEYS, 1))} | salted ring: every run caught | "
               f"about {2 * bd.REMAP_KEYS + 700} |")
    out += ["", f"Ring shares: leaving endpoint's share over {rings:,} real rings mean {shares.mean():.4f}, sd "
            f"{shares.std():.4f} (Beta({bd.VNODES}, {2 * bd.VNODES}): 0.3333, "
            f"{np.sqrt(bd.VNODES * 2 * bd.VNODES / ((3 * bd.VNODES) ** 2 * (3 * bd.VNODES + 1))):.4f}); a ring of 130 points "
            f"per endpoint would be at {pct(remap_fail_model(vnodes=130))} (twice the claim), which the guard's "
            "estimator (10,000 rings) tells apart.", ""]
    return out


def health_section(runs: int) -> list[str]:
    """suites/health: the timing rules under the noise models, the errors rule exact."""
    from harness.error_budgets import DELAY_MODELS
    from harness.error_budgets_health import MODELS, simulate_removal, simulate_return
    from suites.health import _support as hs
    from suites.health.test_active_health import HC

    n_remove = int((hs.removal_bound_s(HC) + 1.0) / hs.PERIOD_S) + 1
    n_restore = int((hs.removal_bound_s(HC) + 0.3 + hs.return_bound_s(HC) + 0.5) / hs.PERIOD_S) + 1
    err = {k: errors_rule_crossing(hs.ERRORS, hs.ERRORS.rate, n, 1) for k, n in (("remove", n_remove), ("restore", n_restore))}
    out = ["## Active health (MeshActiveHealthCheckRemoves / ...Restores)", "",
           f"Budget per check 0.1%: timing rules {hs.ALPHA_TIMING:.2%}, errors rule {hs.ALPHA_ERRORS:.2%} "
           f"({hs.ERRORS.describe()}). Before: no stated rate (\"deterministic\"; 200 live runs, 0 false failures) and the "
           f"first non-echo answer after the flip failed the check: with one reset in 3,000 that is "
           f"{pct(1 - (1 - RESET_RATE) ** n_remove)} / {pct(1 - (1 - RESET_RATE) ** n_restore)} of runs "
           f"({n_remove} / {n_restore} requests). Timing: {runs:,} seeded runs per model of the vectorised probe schedule "
           "and request stream (harness/error_budgets_health.py) through the checks' own rules. late0.1 / late1: "
           "0.1% / 1% of requests, probes and control calls meet a stall of 195 ms + Exponential(50 ms). The early "
           "rule is judged from the moment the harness sent the control call that makes the health path answer 200 "
           "again (the echo flips after it), the late rule from the moment the call returned (the echo flipped "
           "before it); before issue 14's third pass both were judged from the return, so a stall of the call's way "
           "back made a return look early.", "",
           "| model | removal: late (Removes; also the first half of Restores) | return: late | return: early, before "
           "(from the control call's return) | return: early, after (from its start) | Removes: all rules ≤ | "
           "Restores: all rules ≤ (before) |", "|---|---|---|---|---|---|---|"]
    models = dict(MODELS)
    models.update({k: DELAY_MODELS[k] for k in ("late0.1", "late1")})
    for name, model in models.items():
        r = simulate_removal(model, runs, SEED + 30, HC)
        b = simulate_return(model, runs, SEED + 31, HC)
        b_old = simulate_return(model, runs, SEED + 31, HC, early_from_return=True)
        up_r = stats.clopper_pearson(r["any"], runs, 0.95)[1]
        up_b = stats.clopper_pearson(r["any"] + b["any"], runs, 0.95)[1]
        up_old = stats.clopper_pearson(r["any"] + b_old["any"], runs, 0.95)[1]
        out.append(f"| {name} | {ci(r['late'], runs)} | {ci(b['late'], runs)} | {ci(b_old['early'], runs)} | "
                   f"{ci(b['early'], runs)} | {pct(up_r + err['remove'])} | {pct(up_b + err['restore'])} "
                   f"({pct(up_old + err['restore'])}) |")
    power = simulate_return(MODELS["stall"], runs // 10, SEED + 32, HC, needed=1)
    out += ["", f"Power: a mesh that brings an endpoint back after one passing probe (healthy_threshold_ignored) is caught "
            f"by the early rule in {ci(power['early'], runs // 10)} of simulated runs (stall model). Errors rule exact within "
            f"{n_remove} / {n_restore} requests: {pct(err['remove'])} / {pct(err['restore'])}.", ""]
    return out


def _old_pending_latency_fails(steps, max_ok_ms: float = 500.0) -> bool:
    """The pending check's rule before issue 14's third pass: no accepted request over 500 ms end to end."""
    return any(a.status == 200 and a.latency_ms > max_ok_ms for st_ in steps for a in st_.answers)


def breaking_section(runs: int, power_runs: int, od_runs: int) -> list[str]:
    """suites/breaking: every rule of every check inside its budget (issue 14, third pass)."""
    from harness.error_budgets import DELAY_MODELS
    from harness.error_budgets_breaking import simulate_breaker, simulate_outlier, simulate_sweep
    from suites.breaking import _support as bs
    from suites.breaking import test_circuit_breaking as cb
    from suites.breaking import test_outlier_detection as od

    models = {k: BACKOFF_MODELS[k] for k in ("quiet", "loaded", "stall", "wakeup")}
    models["late0.1"] = DELAY_MODELS["late0.1"]
    checks = cb.SIMULATED
    pending_new: dict[str, dict] = {}
    out = ["## Circuit breakers (MeshCircuitBreaker*)", "",
           f"Budget per check 0.1%: errors rule {bs.ALPHA_ERRORS:.2%} ({bs.ERRORS.describe()}), timing rules "
           f"{cb.ALPHA_TIMING:.2%}; the limit rules are exact (the echo can never see more in flight than a mesh that "
           "keeps its limit admits; a mesh's count spans the echo's; nothing is rejected at or below the limit because no "
           "more requests are outstanding). Event simulation of each sweep (the check's threads, schedule, steps; Envoy's "
           "admission; every leg of a request one overhead draw, the echo's hold the model's timer) judged by the checks' "
           f"own decisions (harness/error_budgets_breaking.py), {runs:,} seeded runs per model for the pending check, {runs // 2:,} for the others; late0.1 / late1: "
           "0.1% / 1% of legs meet a stall of 195 ms + Exponential(50 ms) (beyond the stated models). Errors rule: exact "
           "P(ever fails) at the tolerated 0.1% error rate within the check's requests (looking after every answer: an "
           "upper bound for the one look the check takes). Guards: tests/harness/test_breaking_budgets.py.", "",
           "| check | model | rules failed (runs) | timing rules: false-fail | + errors rule ≤ |", "|---|---|---|---|---|"]
    rng = np.random.default_rng(SEED + 49)
    for name, spec in checks.items():
        steps, _ = simulate_sweep(BACKOFF_MODELS["loaded"], rng, connections=spec["connections"],
                                  pending=spec["pending"], levels=spec["levels"])
        n_req = int(1.2 * sum(len(s_.answers) for s_ in steps))
        err = errors_rule_crossing(bs.ERRORS, bs.ERRORS.rate, n_req, 1)
        spec = dict(spec)
        n_runs = runs if name == "MeshCircuitBreakerMaxPendingRequests" else runs // 2
        for mname, model in models.items():
            t = simulate_breaker(model, n_runs, SEED + 50, **spec)
            if name == "MeshCircuitBreakerMaxPendingRequests":
                pending_new[mname] = t
            upper = stats.clopper_pearson(t["any"], n_runs, 0.95)[1]
            rules = ", ".join(f"{k} {v}" for k, v in t.items() if k not in ("any", "runs")) or "none"
            out.append(f"| {name} | {mname} | {rules} | {ci(t['any'], n_runs)} | {pct(upper + err)} |")
        out.append(f"| {name} | errors rule | exact within {n_req} requests | — | {pct(err)} (fails with 1 reset in "
                   f"3,000: {pct(errors_rule_crossing(bs.ERRORS, RESET_RATE, n_req, 1))}; before: any reset failed, "
                   f"{pct(1 - (1 - RESET_RATE) ** n_req)}) |")
    # the pending check before and its power
    spec = checks["MeshCircuitBreakerMaxPendingRequests"]
    out += ["", "MeshCircuitBreakerMaxPendingRequests, before (no accepted request over 500 ms end to end) and after "
            f"(at most {cb.PENDING_WAITS_ALLOWED} accepted requests waiting, send → arrival at the echo, over "
            f"{cb.PENDING_MAX_WAIT_MS:.0f} ms), {runs // 2:,} / {runs:,} runs per model; power against a mesh that lets 3 wait "
            f"(max_pending_requests one too high, connections right), {power_runs:,} runs per model:", "",
            "| model | before: false-fail | after: wait rule false-fail | after: power vs pending + 1 |", "|---|---|---|---|"]
    old_runs = runs // 2
    for mname, model in models.items():
        rng = np.random.default_rng(SEED + 51)
        old = 0
        for _ in range(old_runs):
            steps, _ = simulate_sweep(model, rng, connections=spec["connections"], pending=spec["pending"],
                                      levels=spec["levels"])
            old += _old_pending_latency_fails(steps)
        new = pending_new[mname]
        broken = simulate_breaker(model, power_runs, SEED + 52, **{**spec, "pending": spec["pending"] + 1})
        out.append(f"| {mname} | {ci(old, old_runs)} | {ci(new.get('pending_wait', 0), runs)} | "
                   f"{ci(broken.get('pending_wait', 0), power_runs)} |")
    n_retry = sum(cb.RETRY_LEVELS)
    out += ["", f"MeshCircuitBreakerMaxRetries: every rule exact (retries arriving within one hold were outstanding "
            "together; bursts are sequential, so no other retry is outstanding), but for the errors rule: exact within "
            f"{n_retry} requests {pct(errors_rule_crossing(bs.ERRORS, bs.ERRORS.rate, n_retry, 1))} (before: any reset "
            f"failed it, {pct(1 - (1 - RESET_RATE) ** n_retry)} with one in 3,000).", ""]
    # outlier detection
    n_od = int(3 * od.OD.base_ejection_time / od.PERIOD_S)
    od_err = errors_rule_crossing(bs.ERRORS, bs.ERRORS.rate, n_od, 1)
    out += ["## Outlier detection (MeshOutlier*)", "",
            f"MeshOutlierEjection: budget 0.1%, timing rules {od.ALPHA_TIMING:.2%} (the lower bounds are exact; the upper "
            f"ones and the cut of arrivals into runs at 0.9 × base_ejection_time are timing rules), errors rule "
            f"{bs.ALPHA_ERRORS:.2%} (a request lost on its way to the failing endpoint may shorten a run by one: "
            f"tolerated). Event simulation of the sequential stream, round robin, inline ejection and the interval tick "
            f"(harness/error_budgets_breaking.py), {od_runs:,} seeded runs per model, judged by judge_ejections. Before: "
            "runs cut at 150 ms (a stall inside a run split it) and any non-echo answer failed the check.", "",
            "| model | before: false-fail | after: false-fail | after: + errors rule ≤ | power vs eject_late (4th 5xx) |",
            "|---|---|---|---|---|"]
    for mname, model in models.items():
        new = simulate_outlier(model, od_runs, SEED + 60, tolerance_s=od.TOLERANCE_S)
        with _old_split():
            old = simulate_outlier(model, od_runs, SEED + 60, tolerance_s=od.TOLERANCE_S)
        late = simulate_outlier(model, power_runs, SEED + 61, tolerance_s=od.TOLERANCE_S, eject_after=4)
        upper = stats.clopper_pearson(new["any"], od_runs, 0.95)[1]
        out.append(f"| {mname} | {ci(old['any'], od_runs)} | {ci(new['any'], od_runs)} | {pct(upper + od_err)} | "
                   f"{ci(late['any'], power_runs)} |")
    from scipy import stats as st_
    lost2 = float(st_.binom.sf(1, od.CAP_DEFAULT_REQUESTS // 3, bs.ERRORS.rate))
    out += ["", f"Errors rule within {n_od} requests (the most the check sends): {pct(od_err)}. "
            f"MeshOutlierMaxEjectionPercent and MeshOutlierCapEjectsNone have no timing rule (sequential requests, "
            f"counts only); a lost request changes one arrival. CapEjectsNone needs {od.CAP_DEFAULT_REQUESTS // 3 - 1} "
            f"of the failing endpoint's {od.CAP_DEFAULT_REQUESTS // 3}: two of them lost at the tolerated 0.1% error rate "
            f"happens in {pct(lost2)} of runs (exact binomial); MaxEjectionPercent's margins are wider (≥ 10 of about 28, "
            "one of 3 in the last 6).", ""]
    return out


class _old_split:
    """Judge ejections with the runs cut at min(base, interval) / 2 as before issue 14's third pass."""

    def __enter__(self):
        from suites.breaking import _support as bs
        self._orig = bs.run_split_ns
        bs.run_split_ns = lambda base_s: int(min(base_s, 0.3) / 2 * 1e9)

    def __exit__(self, *exc):
        from suites.breaking import _support as bs
        bs.run_split_ns = self._orig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=_Path)
    parser.add_argument("--quick", action="store_true", help="10x fewer simulated runs")
    parser.add_argument("--only", choices=["routing-resilience", "balancing", "breaking", "health"],
                        help="one group of sections (balancing: bench/results/error_budgets_balancing-*.md; breaking, "
                             "health: error_budgets_breaking-*.md, error_budgets_health-*.md)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    began = time.monotonic()
    if args.only in ("breaking", "health"):
        lines = [f"# Error budgets of the {args.only} checks, 2026-12-04 (issue 14)", "",
                 f"Produced by `nice -n 19 python3 bench/error_budgets.py --only {args.only} --out "
                 f"bench/results/error_budgets_{args.only}-2026-12-04.md` (pure decisions, no mesh; seeded, so "
                 "reproducible). Guard tests on the same code: `python3 -m pytest "
                 + ("tests/harness/test_breaking_budgets.py" if args.only == "breaking" else
                    "tests/harness/test_health_decisions.py") + "`. Supersedes the first estimates in "
                 "error_budgets_balancing-2026-12-04.md.", ""]
        lines += (breaking_section(100_000 // scale, 10_000 // scale, 100_000 // scale) if args.only == "breaking"
                  else health_section(1_000_000 // scale))
    elif args.only == "balancing":
        lines = ["# Error budgets of the balancing checks, 2026-12-04 (issue 14)", "",
                 "Produced by `nice -n 19 python3 bench/error_budgets.py --only balancing --out "
                 "bench/results/error_budgets_balancing-2026-12-04.md` (pure decisions, no mesh; seeded, so "
                 "reproducible). Guard tests on the same code: `python3 -m pytest tests/harness/test_balancing_power.py`. "
                 "The routing and resilience sections are in error_budgets-2026-12-04.md, health and breaking in "
                 "error_budgets_health-2026-12-04.md and error_budgets_breaking-2026-12-04.md.", ""]
        lines += balancing_section(200_000 // scale, 50_000 // scale, 100_000 // scale)
    else:  # routing-resilience, or (no --only) those and balancing
        lines = ["# Error budgets of the statistical and timing checks, 2026-12-04 (issue 14)", "",
                 "Produced by `nice -n 19 python3 bench/error_budgets.py --out bench/results/error_budgets-2026-12-04.md` "
                 "(pure decisions, no mesh; seeded, so reproducible). Guard tests on the same code: "
                 "`python3 -m pytest tests/harness/test_split_power.py tests/harness/test_resilience_power.py`.", ""]
        lines += splits_section(200_000 // scale)
        lines += backoff_section(200_000 // scale, 20_000 // scale)
        lines += abort_section()
        lines += delay_section(50_000 // scale, 2_000 // scale)
        if args.only is None:
            lines += balancing_section(200_000 // scale, 50_000 // scale, 100_000 // scale)
    lines += [f"(computed in {time.monotonic() - began:.0f} s, load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs)", ""]
    text = "\n".join(lines)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
