"""Scenario.telemetry: defaults, validation with the field named, round trip."""

import pytest

from meshscenario import ScenarioError, Telemetry, Tracing, dump_scenario, parse_scenario

BASE = {"services": [{"name": "a"}]}


def test_default_is_metrics_only():
    assert parse_scenario(BASE).telemetry == Telemetry(access_log=False, tracing=None)


def test_tracing_and_access_log_round_trip():
    s = parse_scenario({**BASE, "telemetry": {"access_log": True, "tracing": {"zipkin": "127.0.0.5:9411",
                                                                              "sampling": 12.5}}})
    assert s.telemetry == Telemetry(access_log=True, tracing=Tracing(zipkin="127.0.0.5:9411", sampling=12.5))
    assert parse_scenario(dump_scenario(s)) == s
    assert parse_scenario({**BASE, "telemetry": {"tracing": {"zipkin": "127.0.0.5:9411"}}}).telemetry.tracing.sampling == 100


@pytest.mark.parametrize("tracing, field", [
    ({"zipkin": "localhost:9411"}, "telemetry.tracing.zipkin"),
    ({"zipkin": "127.0.0.1"}, "telemetry.tracing.zipkin"),
    ({"zipkin": "127.0.0.256:9411"}, "telemetry.tracing.zipkin"),
    ({"zipkin": "127.0.0.1:0"}, "telemetry.tracing.zipkin"),
    ({"zipkin": "127.0.0.1:70000"}, "telemetry.tracing.zipkin"),
    ({"zipkin": "127.0.0.1:9411", "sampling": 101}, "telemetry.tracing.sampling"),
    ({"zipkin": "127.0.0.1:9411", "sampling": -1}, "telemetry.tracing.sampling"),
    ({}, "telemetry.tracing.zipkin"),
    ({"zipkin": "127.0.0.1:9411", "rate": 1}, "telemetry.tracing.rate"),
])
def test_bad_tracing_names_the_field(tracing, field):
    with pytest.raises(ScenarioError) as err:
        parse_scenario({**BASE, "telemetry": {"tracing": tracing}})
    assert field in [e["field"] for e in err.value.errors]


def test_bad_access_log_names_the_field():
    with pytest.raises(ScenarioError) as err:
        parse_scenario({**BASE, "telemetry": {"access_log": "sometimes"}})
    assert [e["field"] for e in err.value.errors] == ["telemetry.access_log"]
