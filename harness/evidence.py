"""What a check observed, so the report can show why it passed or failed, not just that it did.

The ``evidence`` fixture gives each conformance test one :class:`Evidence`: a dict of JSON values with
helpers for the usual entries::

    evidence.samples = 4000
    evidence.measure("canary_share", 0.049, unit="ratio")
    evidence.interval("canary_share", 0.042, 0.057, confidence=0.999, method="clopper-pearson")
    evidence.note("stopped after 4000 requests (SPRT)")
    evidence.plot("split shares", kind="bar", data={"labels": [...], "values": [...]})

Values are checked when written (numpy scalars and arrays are converted), so a test learns at the
offending line, not at report time, that something cannot be serialised.
"""

from __future__ import annotations

import json
import math
from collections.abc import MutableMapping
from typing import Any, Iterator, Mapping, Sequence

PLOT_KINDS = ("bar", "hist", "cdf", "line", "timeline", "graph")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types; raises TypeError for anything else."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # YAML/JSON have no portable inf/nan
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # str enums
        return value.value
    raise TypeError(f"evidence values must be JSON-serialisable, got {type(value).__name__}: {value!r}")


class Evidence(MutableMapping[str, Any]):
    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    # -- mapping ---------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[str(key)] = jsonable(value)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # -- the usual entries ---------------------------------------------------------------------
    @property
    def samples(self) -> int | None:
        return self._data.get("samples")

    @samples.setter
    def samples(self, n: int) -> None:
        self["samples"] = int(n)

    def measure(self, name: str, value: Any, *, unit: str | None = None) -> None:
        entry = {"value": jsonable(value)} | ({"unit": unit} if unit else {})
        self._data.setdefault("measurements", {})[name] = entry

    def interval(self, name: str, low: float, high: float, *, confidence: float, method: str) -> None:
        """A statistical interval for a measured quantity (e.g. an exact binomial interval of a share)."""
        self._data.setdefault("intervals", {})[name] = {
            "low": jsonable(low), "high": jsonable(high), "confidence": confidence, "method": method}

    def note(self, text: str) -> None:
        self._data.setdefault("notes", []).append(str(text))

    def plot(self, title: str, *, kind: str, data: Mapping[str, Any], xlabel: str = "",
             ylabel: str = "") -> None:
        """Plot data for the HTML report.

        ``bar``: ``{"labels": [...], "values": [...], "low"?: [...], "high"?: [...], "expected"?: [...]}``;
        ``hist`` and ``cdf``: ``{"values": [...]}`` or ``{"series": {name: [...]}}``, ``hist`` may add
        ``"bins"``; ``line``: ``{"x": [...], "series": {name: [...]}}``; ``timeline``: events on a time
        axis, one row per series: ``{"series": {name: [t, ...]}}`` (e.g. arrivals per endpoint);
        ``graph``: a directed graph with counted edges, ``{"nodes": [...], "edges": [{"source", "target",
        "count", "expected"?}]}`` (e.g. the service graph, harness/observability/graph.py).
        """
        if kind not in PLOT_KINDS:
            raise ValueError(f"plot kind must be one of {PLOT_KINDS}, got {kind!r}")
        _check_plot_data(kind, data)
        self._data.setdefault("plots", []).append(
            {"title": title, "kind": kind, "xlabel": xlabel, "ylabel": ylabel, "data": jsonable(data)})

    def performance(self, label: str, *, latencies_ms: Mapping[str, float], actual_qps: float,
                    requested_qps: float | None = None, duration_s: float | None = None,
                    start_time: str | None = None, end_time: str | None = None,
                    proxies: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """A performance result, also written in the Service Mesh Performance shape (report.smp).
        ``start_time``/``end_time``: ISO 8601 UTC; ``proxies``: per proxy process, e.g.
        ``{"client-v1-0": {"cpu_vcpu_per_1000rps": 0.2, "rss_peak_mb": 65.3}}``."""
        missing = {"min", "avg", "p50", "p90", "p99", "max"} - set(latencies_ms)
        if missing:
            raise ValueError(f"latencies_ms lacks {sorted(missing)}")
        entry = {"label": label, "latencies_ms": dict(latencies_ms), "actual_qps": actual_qps,
                 "requested_qps": requested_qps, "duration_s": duration_s}
        if start_time or end_time:
            entry |= {"start_time": start_time, "end_time": end_time}
        if proxies:
            entry["proxies"] = {name: dict(values) for name, values in proxies.items()}
        self._data.setdefault("performance", []).append(jsonable(entry))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data))  # a deep copy of plain types


def _check_plot_data(kind: str, data: Mapping[str, Any]) -> None:
    def numbers(seq: Any, what: str) -> None:
        if not isinstance(seq, Sequence) and not hasattr(seq, "tolist"):
            raise ValueError(f"{kind} plot: {what} must be a list of numbers")

    if kind == "bar":
        numbers(data.get("values"), "values")
        if len(data.get("labels", ())) != len(data["values"]):
            raise ValueError("bar plot: labels and values must have the same length")
    elif kind == "graph":
        nodes = set(data.get("nodes", ()))
        for edge in data.get("edges", ()):
            if not {"source", "target", "count"} <= set(edge) or not {edge["source"], edge["target"]} <= nodes:
                raise ValueError("graph plot: each edge needs source, target (both in nodes) and count")
    elif kind in ("hist", "cdf", "timeline"):
        if "series" in data:
            for name, seq in data["series"].items():
                numbers(seq, f"series {name!r}")
        else:
            numbers(data.get("values"), "values")
    else:
        numbers(data.get("x"), "x")
        for name, seq in data.get("series", {}).items():
            numbers(seq, f"series {name!r}")
            if len(seq) != len(data["x"]):
                raise ValueError(f"line plot: series {name!r} and x differ in length")
