"""The service graph: directed edges source → destination with a request count, from the mesh's own
telemetry (its request counters) or from the calls a test made, and the comparison of the two.

An edge is between workloads: (source workload, destination workload), counted by the reporter given
(``"destination"``: the destination's proxy saw the request and who sent it). The graph's JSON shape is
what the HTML report draws (evidence plot kind ``graph``).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from harness.observability.metrics import MetricsSnapshot

Edge = tuple[str, str]


def edges_from_metrics(snapshot: MetricsSnapshot, reporter: str) -> Counter[Edge]:
    edges: Counter[Edge] = Counter()
    for key, n in snapshot.requests.items():
        if key.reporter == reporter and n:
            edges[(key.source_workload, key.destination_workload)] += n
    return edges


def edge_problems(got: Mapping[Edge, int], want: Mapping[Edge, int], *, who: str) -> list[str]:
    problems = []
    for edge in sorted(set(got) | set(want)):
        if got.get(edge, 0) != want.get(edge, 0):
            problems.append(f"edge {edge[0]} -> {edge[1]} ({who}): mesh's telemetry says {got.get(edge, 0)}, "
                            f"the test made {want.get(edge, 0)} calls")
    return problems


def graph_plot_data(edges: Mapping[Edge, int], expected: Mapping[Edge, int] | None = None) -> dict:
    """Evidence data of a ``graph`` plot: nodes and edges with counts (and the expected count per edge)."""
    nodes = sorted({n for e in list(edges) + list(expected or {}) for n in e})
    rows = []
    for edge in sorted(set(edges) | set(expected or {})):
        row = {"source": edge[0], "target": edge[1], "count": int(edges.get(edge, 0))}
        if expected is not None:
            row["expected"] = int(expected.get(edge, 0))
        rows.append(row)
    return {"nodes": nodes, "edges": rows}


def subset(edges: Mapping[Edge, int], nodes: Iterable[str]) -> Counter[Edge]:
    """Only the edges whose source or destination is one of ``nodes`` (the test's own workloads)."""
    keep = set(nodes)
    return Counter({e: n for e, n in edges.items() if e[0] in keep or e[1] in keep})
