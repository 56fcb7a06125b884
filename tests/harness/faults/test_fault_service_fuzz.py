"""Garbage at the fault service's API: every answer is Toxiproxy's 2xx/400/404/409, never a 500, and
the service keeps serving (hypothesis, against a real service process)."""

import json

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.faults.served import FaultServiceProcess

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12)
fields = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.text(max_size=8), json_values), "upstream": st.one_of(st.just("127.0.0.1:9"), json_values),
    # listen: loopback or not a string at all, so no example can bind another interface
    "listen": st.one_of(st.just("127.0.0.1:0"), st.none(), st.integers(), st.lists(st.integers(), max_size=2)),
    "enabled": json_values,
    "type": st.one_of(st.sampled_from(["latency", "bandwidth", "slicer", "timeout", "limit_data", "slow_close",
                                       "reset_peer", "meshconform_http_status", "meshconform_http_delay"]),
                      json_values),
    "stream": st.one_of(st.sampled_from(["upstream", "downstream", "UPSTREAM"]), json_values),
    "toxicity": json_values, "attributes": st.one_of(
        st.dictionaries(st.sampled_from(["latency", "jitter", "rate", "delay", "timeout", "bytes", "status",
                                         "first", "share", "average_size", "size_variation"]),
                        st.integers(-5, 10**6) | st.floats(allow_nan=False, allow_infinity=True), max_size=4),
        json_values)})
routes = st.sampled_from([("POST", "/proxies"), ("POST", "/populate"), ("POST", "/proxies/p"),
                          ("PATCH", "/proxies/p"), ("POST", "/proxies/p/toxics"),
                          ("PATCH", "/proxies/p/toxics/latency_downstream"), ("DELETE", "/proxies/p"),
                          ("POST", "/reset"), ("GET", "/proxies/p/toxics")])


@pytest.fixture(scope="module")
def service():
    with FaultServiceProcess.start("127.61.7.3") as served:
        yield served


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=routes, body=st.one_of(fields, json_values, st.binary(max_size=40)))
def test_garbage_never_gets_a_500_and_the_service_keeps_serving(service, route, body):
    http = urllib3.PoolManager(retries=False, timeout=5)
    http.request("POST", service.url + "/proxies", body=json.dumps({"name": "p", "upstream": "127.0.0.1:9"}))
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    method, path = route
    answer = http.request(method, service.url + path, body=data)
    assert answer.status in (200, 201, 204, 400, 404, 409), (method, path, data, answer.status, answer.data)
    if answer.status >= 400:
        error = json.loads(answer.data)
        assert set(error) >= {"error", "status"} and error["status"] == answer.status
    assert http.request("GET", service.url + "/version").status == 200
