"""The service graph the mesh's telemetry implies against the calls the test made (SPEC §4
Observability).

Two callers and two destinations, with a different number of calls on each of the four edges, so an edge
credited to the wrong caller (or to the destination itself) changes the graph. The graph is read from
the mesh's request counters (MeshMetrics): as the destination's proxy reports it (who called it) and as
the caller's proxy reports it (whom it called). The HTML report draws it.
"""

from __future__ import annotations

import uuid
from collections import Counter

from harness.adapters import MeshMetrics
from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.observability.graph import edge_problems, edges_from_metrics, graph_plot_data, subset
from harness.observability.metrics import MetricsSnapshot
from suites.conftest import require

from ._support import in_parallel, poll, send, workload

CALLS = {("caller-a", "graph-x"): 3, ("caller-a", "graph-y"): 5, ("caller-b", "graph-x"): 4,
         ("caller-b", "graph-y"): 2}
WORKLOADS = sorted({workload(s) for edge in CALLS for s in edge})
SCRAPE_DEADLINE_S = 5.0


@conformance(
    short_name="MeshServiceGraph",
    description="caller-a and caller-b each call graph-x and graph-y, "
                + ", ".join(f"{a} → {b} {n}" for (a, b), n in CALLS.items())
                + " times (all answered 200). The edges source workload → destination workload with counts, from "
                  "the mesh's request counters as the destination reports them and as the caller reports them, "
                  "must equal these calls exactly (counters of discrete requests: tolerance 0); no other edge "
                  f"touches these workloads. Counters are re-read for up to {SCRAPE_DEADLINE_S:g} s (a scrape may lag).",
    features=[Feature.SERVICE_GRAPH, Feature.METRICS], profile=Profile.OBSERVABILITY, level=Level.EXTENDED)
def test_service_graph(mesh, observability_mesh, evidence):
    problems = measure_service_graph(mesh, observability_mesh, evidence)
    assert not problems, "service graph wrong: " + "; ".join(problems)


def measure_service_graph(mesh, deployment, evidence) -> list[str]:
    metrics = require(mesh, MeshMetrics, "read the mesh's request counters")
    before = _snapshot(metrics)
    calls = [lambda a=a, b=b: send(mesh, workload(a), b, "/graph", uuid.uuid4().hex)
             for (a, b), n in CALLS.items() for _ in range(n)]
    sent = in_parallel(calls, concurrency=4)
    made = Counter((s.source, workload(s.host)) for s in sent if s.status == 200)
    problems = [f"{s.source} → {s.host} got {s.status}, not 200" for s in sent if s.status != 200]

    def graphs(snapshot: MetricsSnapshot) -> dict[str, Counter]:
        delta = snapshot.minus(before)
        return {who: subset(edges_from_metrics(delta, who), WORKLOADS) for who in ("destination", "source")}

    def judged(g: dict[str, Counter]) -> list[str]:
        return [p for who, edges in g.items() for p in edge_problems(edges, made, who=f"reporter {who}")]

    got = poll(lambda: graphs(_snapshot(metrics)), lambda g: not judged(g), timeout=SCRAPE_DEADLINE_S)
    problems += judged(got)
    evidence.samples = len(sent)
    evidence["calls_made"] = [{"source": a, "destination": b, "calls": n} for (a, b), n in sorted(made.items())]
    for who, edges in got.items():
        evidence[f"edges_{who}"] = [{"source": a, "destination": b, "count": n} for (a, b), n in sorted(edges.items())]
    evidence.plot("service graph (reporter destination; expected counts in brackets)", kind="graph",
                  data=graph_plot_data(got["destination"], made))
    return problems


def _snapshot(metrics) -> MetricsSnapshot:
    total = MetricsSnapshot()
    for w in WORKLOADS:
        total = total.plus(metrics.request_metrics(w))
    return total
