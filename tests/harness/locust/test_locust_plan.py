"""The traffic plan picks the caller, a request per route that reaches that route, and what each
shipped locustfile needs."""

from pathlib import Path

from harness.locust.plan import TrafficPlan, build_plan
from meshscenario import DEFAULT_SCENARIO_PATH, load_scenario, parse_scenario

MIX = Path(__file__).with_name("scenario.yaml")


def test_default_scenario_gives_the_client_a_90_10_canary():
    plan = build_plan(load_scenario(DEFAULT_SCENARIO_PATH))
    assert plan.source == "client-v1-0"
    assert plan.canary is not None and plan.canary.weights == {"v1": 90, "v2": 10}
    assert plan.canary.instances == 3
    assert plan.retrying == ()


def test_each_route_gets_a_request_that_reaches_it_and_addresses_come_from_the_state():
    workloads = {"client-v1-0": {"service": "client", "version": "v1", "outbound": "127.9.9.10:15001"},
                 "flaky-v1-0": {"service": "flaky", "version": "v1", "echo_control": "127.9.9.13:9000"},
                 "flaky-v1-1": {"service": "flaky", "version": "v1", "echo_control": "127.9.9.14:9000"}}
    plan = build_plan(load_scenario(MIX), workloads)
    by_label = {r.label: r for r in plan.routes}
    assert set(by_label) == {"backend/pinned-v2", "backend/split", "flaky/retried"}
    assert by_label["backend/pinned-v2"].headers == {"x-canary": "1"}
    assert by_label["backend/split"].headers == {}
    assert plan.canary.label == "backend/split"
    assert [r.label for r in plan.retrying] == ["flaky/retried"]
    assert by_label["flaky/retried"].echo_controls == {"v1": ["127.9.9.13:9000", "127.9.9.14:9000"]}
    assert plan.outbound == "127.9.9.10:15001"
    assert TrafficPlan.from_json(plan.to_json()) == plan


def test_a_route_shadowed_by_an_earlier_one_or_a_forbidden_destination_gets_no_traffic():
    scenario = parse_scenario({
        "services": [{"name": "client"}, {"name": "backend", "versions": [{"name": "v1"}, {"name": "v2"}]},
                     {"name": "secret"}],
        "routes": [{"destination": "backend", "backends": [{"version": "v1"}]},
                   {"destination": "backend", "match": {"path_prefix": "/v2"}, "backends": [{"version": "v2"}]}],
        "policies": [{"service": "secret", "authz": {"allowed_principals": ["spiffe://cluster.local/ns/default/sa/x"]}}],
    })
    plan = build_plan(scenario)
    assert [r.label for r in plan.routes] == ["backend#0"]
    assert plan.skipped == (("backend#1", "its request is taken by an earlier route (backend#0)"),)
