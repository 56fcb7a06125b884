"""Hypothesis against the scenario schema (issue 15): any value in any numeric field either validates
to a finite number within its range or is a ScenarioError naming fields; never another exception, and
what validates round-trips."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscenario import ScenarioError, dump_scenario, parse_scenario

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 70, 2 ** 70), st.just(10 ** 400),
    st.booleans(), st.none(), st.text(max_size=8),
    st.sampled_from(["250ms", "1us", "2s", "1m", "1h", "30d", "31d", "99999999999h", "nan", "inf", "-1s", "1e400"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))

PATHS = [
    ("cert_ttl",), ("routes", 0, "timeout"), ("routes", 0, "retries", "attempts"),
    ("routes", 0, "retries", "per_try_timeout"), ("routes", 0, "retries", "backoff", "base_interval"),
    ("routes", 0, "retries", "backoff", "max_interval"), ("routes", 0, "fault", "delay", "fixed_delay"),
    ("routes", 0, "fault", "delay", "percentage"), ("routes", 0, "fault", "abort", "percentage"),
    ("routes", 0, "fault", "abort", "http_status"), ("routes", 0, "backends", 0, "weight"),
    ("policies", 0, "circuit_breaker", "max_connections"), ("policies", 0, "circuit_breaker", "max_pending_requests"),
    ("policies", 0, "outlier_detection", "consecutive_5xx"), ("policies", 0, "outlier_detection", "interval"),
    ("policies", 0, "outlier_detection", "base_ejection_time"),
    ("policies", 0, "outlier_detection", "max_ejection_percent"),
    ("policies", 0, "load_balancing", "health_check", "interval"),
    ("policies", 0, "load_balancing", "health_check", "timeout"),
    ("policies", 0, "load_balancing", "health_check", "unhealthy_threshold"),
    ("services", 1, "versions", 0, "instances"),
]


def _base() -> dict:
    return {"services": [{"name": "a"}, {"name": "b", "versions": [{"name": "v1"}]}],
            "routes": [{"destination": "b", "backends": [{"version": "v1"}],
                        "retries": {"backoff": {}}, "fault": {"delay": {"percentage": 1, "fixed_delay": 1},
                                                              "abort": {"percentage": 1, "http_status": 503}}}],
            "policies": [{"service": "b", "circuit_breaker": {}, "outlier_detection": {},
                          "load_balancing": {"health_check": {}}}]}


def _put(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _floats(v)
    elif isinstance(value, list):
        for v in value:
            yield from _floats(v)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(assignments=st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=4))
def test_numbers_validate_finite_or_name_the_field(assignments):
    data = _base()
    for path, value in assignments:
        _put(data, path, value)
    try:
        scenario = parse_scenario(data)
    except ScenarioError as exc:
        assert exc.errors and all(isinstance(e["field"], str) and e["field"] and isinstance(e["message"], str)
                                  for e in exc.errors)
        return
    dumped = dump_scenario(scenario)
    assert all(math.isfinite(f) for f in _floats(dumped)), dumped
    assert 1 <= scenario.cert_ttl <= 30 * 86_400
    assert parse_scenario(json.loads(json.dumps(dumped))) == scenario
