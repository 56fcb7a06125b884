"""Weighted splits (SPEC §4 Routing): the shares each version gets are consistent with the weights.

Each check sends batches of 32 requests (8 at a time) to its own route and feeds the count of each
answering version (the echo's JSON ``version``) to a sequential test (harness.stats
SequentialSplitTest: per backend, Wald SPRTs of the declared share against share ± delta) that stops
as soon as it can decide. Every check: false-fail rate ≤ 0.1% for all its rules together (the SPRTs
0.09%, the errors rule 0.01%: resets and 5xx tolerated up to 0.1% of requests), power ≥ 99% against any
backend's share off by ≥ delta (95/5: 2 points on the canary; 70/30 and 50/50: 4 points; 80/10/10: 3
points). It is never retried. The rates are computed exactly for the two-backend splits and simulated
(200,000 seeded runs) for 80/10/10 in tests/harness/test_split_power.py: a correct 95/5 decides in
about 1,500 requests in the median (about 1.5 s at ~1,100 requests/s through the reference mesh with 8
threads).

Each asks for ``background_load``: with ``--background-load=USERS`` (e.g. 200) the split is judged while
that many Locust users load the mesh (harness/locust/background.py), and the evidence says what load ran.
"""

from __future__ import annotations

from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.stats import Decision

from ._support import ERRORS, FALSE_FAIL_RATE, SPLITS, SPRT_FALSE_FAIL, judge_split

# measured exactly (two backends: dynamic programming over the counts) or by 200,000 seeded simulations
# (80/10/10) of the decision itself: tests/harness/test_split_power.py, bench/error_budgets.py
_MEASURED = {
    "MeshWeightedSplit95x5": "exact false-fail 0.0334%, ≤ 0.0381% with the errors rule; exact power 99.33% against "
                             "97/3, 99.21% against 93/7; median 1,472 requests",
    "MeshWeightedSplit70x30": "exact false-fail 0.0336%, ≤ 0.0383% with the errors rule; exact power 99.27% against "
                              "74/26, 99.24% against 66/34; median 1,632 requests",
    "MeshWeightedSplit50x50": "exact false-fail 0.0344%, ≤ 0.0391% with the errors rule; exact power 99.23% against "
                              "54/46 and 46/54; median 1,920 requests",
    "MeshWeightedSplit80x10x10": "simulated false-fail 0.0605% (121 of 200,000 runs), ≤ 0.0652% with the errors rule; "
                                 "power 99.28–99.99% against 3-point deviations (50,000 runs each); median 2,240 requests",
}

_COMMON = ("Sequential test (Wald SPRTs per backend, union bound) at {sprt:.2%}, power ≥ 99% against a share "
           "off by ≥ {delta:.0f} points, bounded at {max} requests, never retried; errors rule at {err:.2%}: "
           "{errors}; any other non-echo answer fails at once. False-fail ≤ {alpha:.1%} for all rules together "
           "({measured}).")


def _judge(short_name: str, mesh, sender, evidence) -> None:
    spec = SPLITS[short_name]
    result = judge_split(mesh, spec, pool=sender)
    judged = sum(result.counts.values())
    shares = {v: c / judged if judged else 0.0 for v, c in result.counts.items()}
    total_weight = sum(spec.weights.values())
    evidence.samples = result.requests
    evidence.measure("requests", result.requests)
    evidence.measure("seconds", round(result.seconds, 3), unit="s")
    evidence["declared_weights"] = spec.weights
    evidence["counts"] = result.counts
    evidence["detectable_deviation_points"] = spec.delta * 100
    evidence["false_fail_rate"] = FALSE_FAIL_RATE
    evidence["power"] = 0.99
    for version, share in shares.items():
        evidence.measure(f"share_{version}", round(share, 5), unit="ratio")
    for version, (low, high) in result.intervals.items():
        evidence.interval(f"share_{version}", low, high, confidence=1 - FALSE_FAIL_RATE, method="clopper-pearson")
    evidence.note(f"{result.decision.value}: {result.reason}")
    versions = list(spec.weights)
    evidence.plot(f"split {spec.label}: observed shares", kind="bar", ylabel="share", data={
        "labels": versions, "values": [shares.get(v, 0.0) for v in versions],
        "low": [result.intervals.get(v, (0.0, 0.0))[0] for v in versions],
        "high": [result.intervals.get(v, (0.0, 0.0))[1] for v in versions],
        "expected": [spec.weights[v] / total_weight for v in versions]})
    evidence["errors"] = len(result.failures)
    evidence["errors_rule"] = ERRORS.describe()
    evidence.note(ERRORS.verdict(len(result.failures), result.requests))
    assert not result.wrong, (f"{len(result.wrong)} request(s) to {spec.path} got an answer that is neither an "
                              f"echo answer nor an error, e.g. {result.wrong[0]}")
    assert not result.errors_exceeded, (
        f"too many errors on {spec.path} for a correct mesh ({ERRORS.describe()}): "
        f"{ERRORS.verdict(len(result.failures), result.requests)}, e.g. {result.failures[0]}")
    assert result.decision is not Decision.UNDECIDED, f"undecided after {result.requests} requests"
    assert result.decision is Decision.ACCEPT_H0, f"split {spec.label} deviates: {result.reason}"


def _description(short_name: str) -> str:
    spec = SPLITS[short_name]
    return (f"A route declaring {spec.label} over {', '.join(spec.weights)} sends each version a share "
            f"consistent with its weight. " + _COMMON.format(
                sprt=SPRT_FALSE_FAIL, delta=spec.delta * 100, max=spec.max_requests,
                err=FALSE_FAIL_RATE - SPRT_FALSE_FAIL, errors=ERRORS.describe(), alpha=FALSE_FAIL_RATE,
                measured=_MEASURED[short_name]))


@conformance(short_name="MeshWeightedSplit95x5", description=_description("MeshWeightedSplit95x5"),
             features=[Feature.WEIGHTED_ROUTING], profile=Profile.ROUTING, level=Level.CORE)
def test_split_95_5(mesh, routing_mesh, sender, evidence, background_load):
    _judge("MeshWeightedSplit95x5", mesh, sender, evidence)


@conformance(short_name="MeshWeightedSplit70x30", description=_description("MeshWeightedSplit70x30"),
             features=[Feature.WEIGHTED_ROUTING], profile=Profile.ROUTING, level=Level.CORE)
def test_split_70_30(mesh, routing_mesh, sender, evidence, background_load):
    _judge("MeshWeightedSplit70x30", mesh, sender, evidence)


@conformance(short_name="MeshWeightedSplit50x50", description=_description("MeshWeightedSplit50x50"),
             features=[Feature.WEIGHTED_ROUTING], profile=Profile.ROUTING, level=Level.CORE)
def test_split_50_50(mesh, routing_mesh, sender, evidence, background_load):
    _judge("MeshWeightedSplit50x50", mesh, sender, evidence)


@conformance(short_name="MeshWeightedSplit80x10x10", description=_description("MeshWeightedSplit80x10x10"),
             features=[Feature.WEIGHTED_ROUTING], profile=Profile.ROUTING, level=Level.CORE)
def test_split_80_10_10(mesh, routing_mesh, sender, evidence, background_load):
    _judge("MeshWeightedSplit80x10x10", mesh, sender, evidence)
