import json

import numpy as np
import pytest

from harness.evidence import Evidence


def test_evidence_is_a_dict_of_json_values():
    ev = Evidence()
    ev.samples = np.int64(4000)
    ev["counts"] = {"v1": np.int64(3801), "v2": 199}
    ev["shares"] = np.array([0.95, 0.05])
    ev.measure("p99_overhead_us", 41.5, unit="us")
    ev.interval("canary", 0.043, 0.057, confidence=0.999, method="clopper-pearson")
    ev.note("stopped by SPRT")
    ev["inf"] = float("inf")
    data = ev.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["samples"] == 4000 and ev.samples == 4000
    assert data["counts"] == {"v1": 3801, "v2": 199} and data["shares"] == [0.95, 0.05]
    assert data["measurements"] == {"p99_overhead_us": {"value": 41.5, "unit": "us"}}
    assert data["intervals"]["canary"]["method"] == "clopper-pearson"
    assert data["notes"] == ["stopped by SPRT"] and data["inf"] == "inf"


def test_unserialisable_values_fail_where_they_are_written():
    ev = Evidence()
    with pytest.raises(TypeError, match="JSON-serialisable.*object"):
        ev["x"] = object()
    assert "x" not in ev


def test_plots_are_checked():
    ev = Evidence()
    ev.plot("shares", kind="bar", data={"labels": ["a", "b"], "values": [1, 2]})
    with pytest.raises(ValueError, match="same length"):
        ev.plot("shares", kind="bar", data={"labels": ["a"], "values": [1, 2]})
    with pytest.raises(ValueError, match="kind"):
        ev.plot("x", kind="pie", data={})
    with pytest.raises(ValueError, match="differ in length"):
        ev.plot("x", kind="line", data={"x": [1, 2], "series": {"p99": [1]}})
    assert [p["title"] for p in ev["plots"]] == ["shares"]


def test_performance_needs_every_smp_latency():
    ev = Evidence()
    with pytest.raises(ValueError, match="p99"):
        ev.performance("direct", latencies_ms={"min": 1, "avg": 1, "p50": 1, "p90": 1, "max": 1}, actual_qps=10)
