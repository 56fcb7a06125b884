"""RouteTable under the match defects: ``ignore_header_match`` and ``ignore_path_prefix``."""

import pytest

from meshproxy.defects import Defects
from meshproxy.policy.router import RouteTable
from policy_helpers import scenario

ROUTES = [
    {"name": "canary", "destination": "backend",
     "match": {"path_prefix": "/api", "headers": [{"name": "x-canary", "exact": "1"}]},
     "backends": [{"version": "v2"}]},
    {"name": "api", "destination": "backend", "match": {"path_prefix": "/api"}, "backends": [{"version": "v1"}]},
    {"name": "other", "destination": "backend", "match": {"path_prefix": "/other"},
     "backends": [{"version": "v3"}]},
]


def _name(defects, path, headers):
    route = RouteTable(scenario(routes=ROUTES), Defects(defects)).match("backend", path, headers)
    return None if route is None else route.name


@pytest.mark.parametrize("path,headers,correct,broken", [
    ("/api/x", {"x-canary": "1"}, "canary", "canary"),
    ("/api/x", {}, "api", "canary"),                   # the header matcher no longer matters
    ("/api/x", {"x-canary": "0"}, "api", "canary"),
    ("/other", {}, "other", "other"),                  # path prefixes still do
    ("/nowhere", {}, None, None),
])
def test_ignore_header_match(path, headers, correct, broken):
    assert _name({}, path, headers) == correct
    assert _name({"ignore_header_match": True}, path, headers) == broken


@pytest.mark.parametrize("path,headers,correct,broken", [
    ("/api/x", {"x-canary": "1"}, "canary", "canary"),
    ("/api/x", {}, "api", "api"),
    ("/other", {}, "other", "api"),                    # every prefix matches: the first route wins
    ("/nowhere", {}, None, "api"),                     # nothing is unmatched any more
    ("/nowhere", {"x-canary": "1"}, None, "canary"),   # header matchers still do
])
def test_ignore_path_prefix(path, headers, correct, broken):
    assert _name({}, path, headers) == correct
    assert _name({"ignore_path_prefix": True}, path, headers) == broken


def test_false_defects_break_nothing():
    assert _name({"ignore_header_match": False, "ignore_path_prefix": False}, "/api/x", {}) == "api"
