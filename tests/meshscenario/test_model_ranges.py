"""Issue 15: every numeric field of a scenario is finite and within a stated range; the error names the
field. NaN, infinities and absurd durations used to validate (a NaN cert_ttl broke every /v1/sign, a
NaN route timeout made every request 504)."""

import math

import pytest

from meshscenario import ScenarioError, parse_duration, parse_scenario


def _minimal(**extra):
    return {"services": [{"name": "a"}, {"name": "b", "versions": [{"name": "v1"}, {"name": "v2"}]}], **extra}


def _route(**fields):
    return _minimal(routes=[{"destination": "b", **fields}])


def _policy(**fields):
    return _minimal(policies=[{"service": "b", **fields}])


NAN, INF = math.nan, math.inf
HUGE_INT = 10 ** 400  # float() of it overflows

CASES = {
    "cert_ttl_nan": (_minimal(cert_ttl=NAN), "cert_ttl"),
    "cert_ttl_inf": (_minimal(cert_ttl=INF), "cert_ttl"),
    "cert_ttl_huge_int": (_minimal(cert_ttl=HUGE_INT), "cert_ttl"),
    "cert_ttl_absurd": (_minimal(cert_ttl="99999999999999h"), "cert_ttl"),
    "cert_ttl_over_a_year": (_minimal(cert_ttl="400d"), "cert_ttl"),
    "route_timeout_nan": (_route(timeout=NAN), "routes.0.timeout"),
    "route_timeout_inf": (_route(timeout=INF), "routes.0.timeout"),
    "route_timeout_absurd": (_route(timeout="100000d"), "routes.0.timeout"),
    "per_try_nan": (_route(retries={"per_try_timeout": NAN}), "routes.0.retries.per_try_timeout"),
    "base_interval_inf": (_route(retries={"backoff": {"base_interval": INF}}), "routes.0.retries.backoff.base_interval"),
    "max_interval_nan": (_route(retries={"backoff": {"max_interval": NAN}}), "routes.0.retries.backoff.max_interval"),
    "fixed_delay_nan": (_route(fault={"delay": {"percentage": 10, "fixed_delay": NAN}}),
                        "routes.0.fault.delay.fixed_delay"),
    "fixed_delay_absurd": (_route(fault={"delay": {"percentage": 10, "fixed_delay": "1000d"}}),
                           "routes.0.fault.delay.fixed_delay"),
    "delay_percentage_nan": (_route(fault={"delay": {"percentage": NAN, "fixed_delay": 1}}),
                             "routes.0.fault.delay.percentage"),
    "abort_percentage_inf": (_route(fault={"abort": {"percentage": INF, "http_status": 503}}),
                             "routes.0.fault.abort.percentage"),
    "outlier_interval_nan": (_policy(outlier_detection={"interval": NAN}), "policies.0.outlier_detection.interval"),
    "outlier_interval_zero": (_policy(outlier_detection={"interval": 0}), "policies.0.outlier_detection.interval"),
    "ejection_time_inf": (_policy(outlier_detection={"base_ejection_time": INF}),
                          "policies.0.outlier_detection.base_ejection_time"),
    "max_ejection_time_huge": (_policy(outlier_detection={"max_ejection_time": HUGE_INT}),
                               "policies.0.outlier_detection.max_ejection_time"),
    "consecutive_5xx_huge": (_policy(outlier_detection={"consecutive_5xx": HUGE_INT}),
                             "policies.0.outlier_detection.consecutive_5xx"),
    "health_interval_zero": (_policy(load_balancing={"health_check": {"interval": 0}}),
                             "policies.0.load_balancing.health_check.interval"),
    "health_timeout_nan": (_policy(load_balancing={"health_check": {"timeout": NAN}}),
                           "policies.0.load_balancing.health_check.timeout"),
    "health_threshold_huge": (_policy(load_balancing={"health_check": {"unhealthy_threshold": HUGE_INT}}),
                              "policies.0.load_balancing.health_check.unhealthy_threshold"),
    "breaker_huge": (_policy(circuit_breaker={"max_requests": 2 ** 32}), "policies.0.circuit_breaker.max_requests"),
    "breaker_pending_huge": (_policy(circuit_breaker={"max_pending_requests": HUGE_INT}),
                             "policies.0.circuit_breaker.max_pending_requests"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_out_of_range_numbers_are_refused_naming_the_field(name):
    data, field = CASES[name]
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    fields = [e["field"] for e in info.value.errors]
    assert fields == [field], info.value.errors


@pytest.mark.parametrize("data", [
    _minimal(cert_ttl="30d"), _minimal(cert_ttl=1), _route(timeout=0), _route(timeout="1d"),
    _route(retries={"per_try_timeout": "1h", "backoff": {"base_interval": "1us", "max_interval": "1h"}}),
    _policy(circuit_breaker={"max_connections": 2 ** 32 - 1, "max_pending_requests": 2 ** 32 - 1,
                             "max_requests": 2 ** 32 - 1, "max_retries": 2 ** 32 - 1}),
    _policy(outlier_detection={"interval": "10ms", "base_ejection_time": 0, "max_ejection_time": "1d"}),
    _policy(load_balancing={"health_check": {"interval": "10ms", "timeout": "1h"}}),
])
def test_the_edges_of_the_ranges_validate(data):
    parse_scenario(data)


@pytest.mark.parametrize("bad", [NAN, INF, -INF, HUGE_INT, "nan", "inf"])
def test_parse_duration_refuses_non_finite(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)
