"""The HAProxy and nginx access-log lines (templates' JSON) normalised: the flags the configs set, URX
derived from the tries and the route's retries, nginx's seconds as milliseconds, other lines skipped."""

from __future__ import annotations

import json

from harness.adapters.thirdparty.access_log import parse_lines

RETRIES = {"r1": 1, "r2": 0}


def line(**fields) -> str:
    base = {"mc_access": 1, "direction": "outbound", "method": "GET", "path": "/retry/1", "response_code": 503,
            "response_flags": "-", "route": "r1", "x_request_id": "id-1"}
    return json.dumps(base | fields, separators=(",", ":"))


def test_haproxy_lines_mark_urx_only_when_the_routes_retries_ran_out_on_a_5xx():
    lines = ["[NOTICE] (1) : haproxy version is 2.6.12", line(retries=1, duration=7),
             line(retries=0), line(retries=1, response_code=200), line(route="r2", retries=0),
             line(response_code=404, response_flags="NR", route="-", retries=0, x_request_id="-")]
    records, problems = parse_lines(lines, "client-v1-0", RETRIES)
    assert problems == []
    assert [(r.response_code, r.response_flags, r.attempts) for r in records] == [
        (503, ("URX",), 2), (503, (), 1), (200, (), 2), (503, (), 1), (404, ("NR",), 1)]
    assert records[0].duration_ms == 7 and records[0].x_request_id == "id-1" and records[4].x_request_id is None


def test_nginx_lines_count_tries_from_upstream_status_and_give_milliseconds():
    records, _ = parse_lines([line(upstream_status="503, 503", request_time=0.012),
                              line(direction="inbound", upstream_status="200", response_code=200, request_time=0.001),
                              line(response_flags="FI", upstream_status="")], "w", RETRIES)
    assert [(r.direction, r.response_flags, r.attempts) for r in records] == [
        ("outbound", ("URX",), 2), ("inbound", (), 1), ("outbound", ("FI",), 0)]
    assert records[0].duration_ms == 12.0


def test_a_marked_line_that_is_not_a_record_is_a_problem():
    records, problems = parse_lines(['{"mc_access":1,"direction":', '{"mc_access":1}'], "w", {})
    assert records == [] and len(problems) == 2 and "line 1" in problems[0]
