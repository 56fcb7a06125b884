"""Added latency per proxy hop (SPEC §4 Performance), measured open loop in µs on any mesh.

At each rate (``--latency-rates``, default 500 and 2,000 req/s) one meter process runs a warm-up through
the mesh (not recorded: pools and handshakes are start-up, not per-hop cost), then ``direct, mesh,
direct, ..., mesh, direct`` (``--latency-repeats``, default 9 mesh runs of 1 s), each request timed
from its intended send time into HdrHistogram (µs; no coordinated omission). harness/performance/
overhead.py turns the runs into added p50/p90/p99/p99.9 per hop (median over repeats), their spread, the
merged histograms' figures and the machine's noise floor (direct against direct), and applies the
check's three rules.
"""

from __future__ import annotations

from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.load import OpenLoop, measure_series
from harness.performance.overhead import PERCENTILES, RateRuns, judge_rate

from ._support import MAX_CONNECTIONS, data_plane, direct_target, mesh_target, record_performance

RUN_S = 1.0
WARM_S = 1.0


@conformance(
    short_name="MeshLatencyOverhead",
    description="Open loop at each --latency-rates rate (default 500 and 2,000 req/s) from a meter process, "
                "every request timed from its intended send time (µs, HdrHistogram): after a 1 s warm-up through "
                "the mesh, 9 (--latency-repeats) runs of 1 s through client's outbound listener (2 proxy hops) "
                "interleaved with 10 runs straight to the echo. Added latency per hop = (mesh - its direct neighbours) "
                "/ hops per repeat, at p50/p90/p99/p99.9: the median over repeats decides (a pause of the whole "
                "machine in one repeat does not; a stall of the mesh, back repeat after repeat, does), the spread "
                "and the merged histograms' figures are reported. Passes when, at every rate, the median added p99 "
                "per hop is within --latency-budget (default 2 ms), every request was "
                "answered and the meter held its rate; fails, saying the machine cannot resolve it, when the "
                "noise floor (direct runs against each other, per hop) is above the budget. A timing check: its "
                "false-fail rate on this machine is measured in bench/false_failures_performance.py.",
    features=[Feature.LATENCY_OVERHEAD], profile=Profile.PERFORMANCE, level=Level.CORE)
def test_latency_overhead(mesh, perf_mesh, budgets, evidence):
    problems = measure_overhead(mesh, perf_mesh, evidence, rates=budgets.latency_rates,
                                repeats=budgets.latency_repeats, budget_ms=budgets.latency_budget_ms)
    assert not problems, "latency overhead: " + "; ".join(problems)


def measure_overhead(mesh, perf_mesh, evidence, *, rates, repeats: int, budget_ms: float) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    plane = data_plane(mesh)
    direct, through = direct_target(perf_mesh), mesh_target(plane)
    problems, verdicts, series = [], [], []
    for rate in rates:
        load = OpenLoop(rate=rate, duration_s=RUN_S, max_connections=MAX_CONNECTIONS)
        warm = OpenLoop(rate=rate, duration_s=WARM_S, max_connections=MAX_CONNECTIONS)
        results = measure_series([(through, warm)] + [(direct, load), (through, load)] * repeats + [(direct, load)])
        verdict = judge_rate(RateRuns(rate, direct=results[1::2], mesh=results[2::2]), hops=plane.proxy_hops,
                             budget_p99_us=budget_ms * 1000)
        problems += verdict.problems
        verdicts.append(verdict)
        series.append(results)
    # the headline first (a comparison table shows the first two): added p99 per hop at each rate
    for v in verdicts:
        evidence.measure(f"added_p99_per_hop@{v.rate:g}/s", round(v.added_us["p99"], 1), unit="µs")
    evidence.measure("budget_p99_per_hop", budget_ms * 1000, unit="µs")
    for v, results in zip(verdicts, series):
        tag = f"{v.rate:g}/s"
        for p in PERCENTILES:
            low, high = v.spread_us[p]
            evidence.measure(f"added_{p}_per_hop@{tag}", round(v.added_us[p], 1), unit="µs")
            evidence.measure(f"added_{p}_per_hop_spread@{tag}", [round(low, 1), round(high, 1)], unit="µs")
            evidence.measure(f"noise_floor_{p}_per_hop@{tag}", round(v.noise_us[p], 1), unit="µs")
            evidence.measure(f"merged_added_{p}_per_hop@{tag}", round(v.merged_us[p], 1), unit="µs")
        evidence.measure(f"direct_p99@{tag}", v.direct_us["p99"], unit="µs")
        evidence.measure(f"mesh_p99@{tag}", v.mesh_us["p99"], unit="µs")
        evidence.measure(f"meter_send_lag_p99@{tag}", v.send_lag_p99_us, unit="µs")
        record_performance(evidence, f"direct@{tag}", results[1::2], v.rate, RUN_S)
        record_performance(evidence, f"mesh@{tag}", results[2::2], v.rate, RUN_S)
    evidence.samples = sum(r.count for results in series for r in results)
    evidence.plot("added latency per hop (µs)", kind="line", xlabel="rate", ylabel="µs per hop",
                  data={"x": [float(r) for r in rates],
                        "series": {p: [round(v.added_us[p], 1) for v in verdicts] for p in PERCENTILES}})
    return problems
