"""Sensitivity of the routing match checks: each fails against a reference mesh broken in its way.

Matching is deterministic, so a broken mesh fails these checks on every run:

- ``ignore_header_match``: the route ``header-canary`` (x-canary: "1" → v2, listed first) takes every
  /match/header request, so the "no header" and "x-canary: 0" cases land on v2 instead of v1;
- ``ignore_path_prefix``: every route matches every path, so the first route of the scenario
  (``split-95-5``) takes /api/... too, and /api/v2 is no longer guaranteed v2 (nor /api v1);
- ``no_route_status`` 503: an unmatched path and an unknown host get 503 instead of the documented 404.
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "routing"


def test_header_match_fails_when_header_matchers_always_match(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshHeaderMatch"], {"ignore_header_match": True})
    assert_fails(entries["MeshHeaderMatch"], "misrouted", "no_header", "other_value")


def test_path_prefix_match_fails_when_prefixes_always_match(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshPathPrefixMatch"], {"ignore_path_prefix": True})
    assert_fails(entries["MeshPathPrefixMatch"], "misrouted", "api_v2")


def test_no_route_check_fails_when_the_mesh_answers_another_status(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshNoRouteAnswer"], {"no_route_status": 503})
    assert_fails(entries["MeshNoRouteAnswer"], "unmatched_path: status 503", "unknown_host: status 503",
                 "want 404")
