"""Evidence plot data → PNG data URIs (matplotlib's Agg canvas; no pyplot, no global state)."""

from __future__ import annotations

import base64
import io
from typing import Any, Mapping

import numpy as np


def plot_data_uri(plot: Mapping[str, Any]) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _DRAW[plot["kind"]](ax, plot["data"])
    ax.set_title(plot["title"], fontsize=10)
    ax.set_xlabel(plot.get("xlabel", ""))
    ax.set_ylabel(plot.get("ylabel", ""))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series(data: Mapping[str, Any]) -> dict[str, list[float]]:
    return dict(data["series"]) if "series" in data else {"": list(data["values"])}


def _bar(ax, data) -> None:
    x = np.arange(len(data["values"]))
    values = np.asarray(data["values"], dtype=float)
    err = None
    if "low" in data and "high" in data:  # an interval per bar, e.g. Clopper-Pearson of a share
        err = np.vstack([values - np.asarray(data["low"], float), np.asarray(data["high"], float) - values])
    ax.bar(x, values, yerr=err, capsize=4, color="#4c78a8", label="observed")
    if "expected" in data:
        ax.scatter(x, data["expected"], color="#e45756", marker="_", s=600, zorder=3, label="expected")
    ax.set_xticks(x, [str(label) for label in data["labels"]])


def _hist(ax, data) -> None:
    for name, values in _series(data).items():
        ax.hist(values, bins=data.get("bins", 30), alpha=0.6, label=name or None)


def _cdf(ax, data) -> None:
    for name, values in _series(data).items():
        xs = np.sort(np.asarray(values, dtype=float))
        ax.step(xs, np.arange(1, len(xs) + 1) / max(len(xs), 1), where="post", label=name or None)


def _line(ax, data) -> None:
    for name, values in data["series"].items():
        ax.plot(data["x"], values, marker="o", label=name)


def _timeline(ax, data) -> None:
    names = list(data["series"])
    ax.eventplot([list(map(float, data["series"][n])) for n in names], lineoffsets=range(len(names)),
                 linelengths=0.8, colors="#4c78a8")
    ax.set_yticks(range(len(names)), names)


def _graph(ax, data) -> None:
    """A directed graph laid out by networkx (circular: stable for a handful of workloads), each edge
    labelled with its count, and ``[expected]`` beside it when that differs (drawn red)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(data["nodes"])
    for e in data["edges"]:
        graph.add_edge(e["source"], e["target"], count=e["count"], expected=e.get("expected", e["count"]))
    pos = nx.circular_layout(graph) if len(graph) > 2 else nx.spring_layout(graph, seed=1)
    wrong = [(a, b) for a, b, d in graph.edges(data=True) if d["count"] != d["expected"]]
    right = [e for e in graph.edges if e not in wrong]
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color="#c6dbef", node_size=900)
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7)
    for edges, color in ((right, "#4c78a8"), (wrong, "#e45756")):
        nx.draw_networkx_edges(graph, pos, edgelist=edges, ax=ax, edge_color=color, arrows=True,
                               arrowsize=14, node_size=900, connectionstyle="arc3,rad=0.12")
    labels = {(a, b): str(d["count"]) + ("" if d["count"] == d["expected"] else f" [{d['expected']}]")
              for a, b, d in graph.edges(data=True)}
    nx.draw_networkx_edge_labels(graph, pos, edge_labels=labels, ax=ax, font_size=7,
                                 connectionstyle="arc3,rad=0.12")
    ax.set_axis_off()


_DRAW = {"bar": _bar, "hist": _hist, "cdf": _cdf, "line": _line, "timeline": _timeline, "graph": _graph}
