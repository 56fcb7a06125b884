"""A load run's own HTML page, and the facts of a load run that the other reports show (pure rendering).

:func:`render_load_html` renders the percentiles document of a load run (harness/locust/results.py:
``meshconform load``, or a check's background load) as one self-contained page: what ran, the exact
percentiles in µs beside the request and failure counts (ours and Locust's own), each Locust process's
count, the split each weighted route gave beside its declared weights, a latency-by-percentile plot
and a split plot per route (harness/report/plots.py). :func:`load_summary` is the same facts without
the encoded histogram: what a check's evidence carries under ``background_load``, shown in that check's
entry of the conformance HTML report. Both pages draw the tables with templates/load.html.j2's macros.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

# The latency-by-percentile plot's points: label, percentile (None: the histogram's min or max).
SPECTRUM = (("min", None), ("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0),
            ("p99.9", 99.9), ("p99.99", 99.99), ("max", None))
_SUMMARY_KEYS = ("mesh", "mesh_version", "source", "outbound", "users", "spawn_rate", "rate_per_user",
                 "run_time_s", "locust_workers", "failures", "locust", "duration_s", "actual_qps",
                 "percentiles_us", "workers", "counts", "split")


def load_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The run's facts in JSON types, without the histogram; ``requests`` is the count of every response."""
    summary = {"requests": int(doc.get("count", 0)), **{k: doc[k] for k in _SUMMARY_KEYS if k in doc}}
    summary["locustfiles"] = [Path(p).name for p in doc.get("locustfiles", ())]
    return summary


def latency_spectrum(encoded_histogram: str) -> dict[str, Any]:
    """Line-plot data (evidence ``kind="line"``): µs at each of SPECTRUM's points, empty without requests."""
    from harness.load import hdr

    histogram = hdr.decode(encoded_histogram) if encoded_histogram else None
    if histogram is None or histogram.get_total_count() == 0:
        return {"x": [], "series": {"every response": []}}
    values = [histogram.get_min_value() if label == "min" else histogram.get_max_value() if label == "max"
              else histogram.get_value_at_percentile(p) for label, p in SPECTRUM]
    return {"x": [label for label, _ in SPECTRUM], "series": {"every response": [int(v) for v in values]}}


def split_plot(label: str, split: Mapping[str, Any]) -> dict[str, Any]:
    """A bar plot (evidence shape) of one route's observed shares against its declared weights."""
    versions = list(split["declared"])
    return {"title": f"split {label}: observed over {split['answers']} answers", "kind": "bar", "xlabel": "",
            "ylabel": "share", "data": {"labels": versions, "values": [split["observed"][v] for v in versions],
                                        "expected": [split["declared"][v] for v in versions]}}


def render_load_html(doc: Mapping[str, Any]) -> str:
    import jinja2

    from harness.report.plots import plot_data_uri

    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True)
    plots = []
    spectrum = latency_spectrum(doc.get("histogram", ""))
    if spectrum["x"]:
        plots.append({"title": "latency by percentile (every response, µs)", "kind": "line",
                      "xlabel": "percentile", "ylabel": "µs", "data": spectrum})
    plots += [split_plot(label, split) for label, split in doc.get("split", {}).items()]
    return env.get_template("load_run.html.j2").render(
        load=load_summary(doc), plots=[{"title": p["title"], "uri": plot_data_uri(p)} for p in plots])
