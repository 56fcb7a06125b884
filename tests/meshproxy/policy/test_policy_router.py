"""RouteTable: host names, first-match routes, header matchers, weighted picks and the weights defect."""

import random
from collections import Counter

import pytest

from meshproxy.defects import Defects
from meshproxy.policy.router import RouteTable
from policy_helpers import binomial_interval, scenario

N_PICKS = 10_000


def _table(routes=None, defects=None, **extra):
    sc = scenario(routes=routes or [], **extra)
    return RouteTable(sc, Defects(defects))


@pytest.mark.parametrize("host", [
    "backend", "backend:80", "backend.default", "backend.default:8080", "backend.default.svc",
    "backend.default.svc.cluster.local", "backend.default.svc.cluster.local:15001", "BACKEND.Default",
    "backend.default.svc.cluster.local.",
])
def test_host_forms_name_the_destination(host):
    assert _table().destination_for_host(host) == "backend"


@pytest.mark.parametrize("host", [
    "", "unknown", "backend.other", "backend.default.svc.example.org", "backend:http", "[::1]:80",
    "127.0.0.1:15001", "backendx", "xbackend.default",
])
def test_unknown_hosts_give_none(host):
    assert _table().destination_for_host(host) is None


def test_host_in_a_custom_namespace():
    table = RouteTable(scenario(services=[{"name": "api", "namespace": "shop"}]))
    assert table.destination_for_host("api.shop:80") == "api"
    assert table.destination_for_host("api.default") is None


def test_destination_without_routes_gets_an_equal_catch_all():
    table = _table()
    route = table.match("backend", "/anything", {})
    assert route is not None and [b.version for b in route.backends] == ["v1", "v2", "v3"]
    counts = Counter(table.pick_version(route, random.Random(1)) for _ in range(3))
    assert set(counts) <= {"v1", "v2", "v3"}


def test_unknown_destination_matches_nothing():
    assert _table().match("nope", "/", {}) is None


ROUTES = [
    {"name": "canary-header", "destination": "backend",
     "match": {"path_prefix": "/api", "headers": [{"name": "X-Canary", "exact": "yes"}]},
     "backends": [{"version": "v3"}]},
    {"name": "api", "destination": "backend", "match": {"path_prefix": "/api"},
     "backends": [{"version": "v2"}]},
    {"name": "rest", "destination": "backend", "match": {"path_prefix": "/"},
     "backends": [{"version": "v1"}]},
]


@pytest.mark.parametrize("path,headers,expected", [
    ("/api/users", {"x-canary": "yes"}, "canary-header"),   # header names are case-insensitive
    ("/api/users", {"X-CANARY": "yes"}, "canary-header"),
    ("/api/users", {"x-canary": "YES"}, "api"),             # values are case-sensitive
    ("/api/users", {}, "api"),                               # first match wins, order matters
    ("/apix", {}, "api"),                                    # Envoy prefix is a plain string prefix
    ("/API", {}, "rest"),                                    # and case-sensitive
    ("/", {"x-canary": "yes"}, "rest"),
])
def test_first_matching_route_wins(path, headers, expected):
    route = _table(ROUTES).match("backend", path, headers)
    assert route is not None and route.name == expected


def test_no_matching_route_gives_none():
    routes = [{"destination": "backend", "match": {"path_prefix": "/only"}, "backends": [{"version": "v1"}]}]
    assert _table(routes).match("backend", "/other", {}) is None


@pytest.mark.parametrize("matcher,headers,matches", [
    ({"exact": "a"}, {"h": "a"}, True),
    ({"exact": "a"}, {"h": "ab"}, False),
    ({"exact": "a"}, {}, False),
    ({"prefix": "ab"}, {"h": "abc"}, True),
    ({"prefix": "ab"}, {"h": "xab"}, False),
    ({"prefix": "ab"}, {}, False),
    ({"regex": "v[0-9]+"}, {"h": "v12"}, True),
    ({"regex": "v[0-9]+"}, {"h": "v12x"}, False),            # Envoy safe_regex: full match
    ({"regex": "v[0-9]+"}, {"h": "xv1"}, False),
    ({"regex": "v[0-9]+"}, {}, False),
    ({"present": True}, {"H": ""}, True),
    ({"present": True}, {}, False),
    ({"present": False}, {}, True),
    ({"present": False}, {"h": "x"}, False),
])
def test_header_matchers(matcher, headers, matches):
    routes = [{"destination": "backend", "match": {"headers": [{"name": "h", **matcher}]},
               "backends": [{"version": "v1"}]}]
    assert (_table(routes).match("backend", "/", headers) is not None) is matches


def test_all_header_matchers_must_match():
    routes = [{"destination": "backend",
               "match": {"headers": [{"name": "a", "exact": "1"}, {"name": "b", "present": True}]},
               "backends": [{"version": "v1"}]}]
    table = _table(routes)
    assert table.match("backend", "/", {"a": "1", "b": "x"}) is not None
    assert table.match("backend", "/", {"a": "1"}) is None
    assert table.match("backend", "/", {"b": "x"}) is None


@pytest.mark.parametrize("weights", [(95, 5), (70, 30), (50, 50), (80, 10, 10)])
def test_weighted_picks_land_in_the_exact_binomial_interval(weights):
    versions = ["v1", "v2", "v3"][: len(weights)]
    routes = [{"destination": "backend", "backends": [{"version": v, "weight": w}
                                                      for v, w in zip(versions, weights)]}]
    table = _table(routes)
    route = table.match("backend", "/", {})
    rng = random.Random(20240601)
    counts = Counter(table.pick_version(route, rng) for _ in range(N_PICKS))
    for version, weight in zip(versions, weights):
        low, high = binomial_interval(N_PICKS, weight / sum(weights))
        assert low <= counts[version] <= high, (version, counts)


def test_weighted_picks_detect_a_wrong_split():
    """The same interval rejects a 93/7 picker for a 95/5 route: the check above can fail."""
    rng = random.Random(7)
    wrong = sum(rng.random() < 0.07 for _ in range(N_PICKS))
    low, high = binomial_interval(N_PICKS, 0.05)
    assert not low <= wrong <= high


def test_weight_zero_is_never_picked():
    routes = [{"destination": "backend", "backends": [{"version": "v1", "weight": 0},
                                                      {"version": "v2", "weight": 1},
                                                      {"version": "v3", "weight": 0}]}]
    table = _table(routes)
    route = table.match("backend", "/", {})
    rng = random.Random(3)
    assert {table.pick_version(route, rng) for _ in range(N_PICKS)} == {"v2"}


def test_defect_weights_replaces_the_route_weights():
    routes = [{"destination": "backend", "backends": [{"version": "v1", "weight": 95},
                                                      {"version": "v2", "weight": 5}]}]
    table = _table(routes, defects={"weights": [50, 50]})
    route = table.match("backend", "/", {})
    rng = random.Random(11)
    counts = Counter(table.pick_version(route, rng) for _ in range(N_PICKS))
    low, high = binomial_interval(N_PICKS, 0.5)
    assert low <= counts["v2"] <= high


def test_defect_weights_shorter_than_backends_keeps_the_rest():
    routes = [{"destination": "backend", "backends": [{"version": "v1", "weight": 1},
                                                      {"version": "v2", "weight": 1}]}]
    table = _table(routes, defects={"weights": [0]})
    route = table.match("backend", "/", {})
    rng = random.Random(5)
    assert {table.pick_version(route, rng) for _ in range(1000)} == {"v2"}


@pytest.mark.parametrize("bad", [[0, 0], [-1, 5], "50,50", []])
def test_defect_weights_must_leave_a_positive_weight(bad):
    routes = [{"destination": "backend", "backends": [{"version": "v1"}, {"version": "v2"}]}]
    with pytest.raises(ValueError):
        _table(routes, defects={"weights": bad})


def test_route_without_backends_spreads_over_all_versions():
    routes = [{"destination": "backend", "match": {"path_prefix": "/x"}}]
    table = _table(routes)
    route = table.match("backend", "/x", {})
    rng = random.Random(9)
    counts = Counter(table.pick_version(route, rng) for _ in range(3000))
    low, high = binomial_interval(3000, 1 / 3)
    assert all(low <= counts[v] <= high for v in ("v1", "v2", "v3")), counts


def test_pick_version_refuses_a_route_from_elsewhere():
    other = _table(ROUTES).match("backend", "/", {})
    with pytest.raises(KeyError):
        _table(ROUTES).pick_version(other, random.Random(1))


def test_routes_lists_the_match_order():
    assert [r.name for r in _table(ROUTES).routes("backend")] == ["canary-header", "api", "rest"]
