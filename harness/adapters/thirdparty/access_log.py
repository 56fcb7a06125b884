"""The access-log lines the HAProxy and nginx configs write (``scenario.telemetry.access_log``), and
their normalisation into :class:`~harness.observability.access_log.AccessLogRecord`.

Both templates write one JSON object per request per listener, marked ``"mc_access": 1`` (HAProxy's go
to its stdout among its other messages, nginx's to ``<work_dir>/access.log``)::

    {"mc_access": 1, "direction": "outbound", "method": "GET", "path": "/r/1", "response_code": 503,
     "response_flags": "-", "route": "r3", "retries": 1 | "upstream_status": "503, 503",
     "x_request_id": "…", "duration": 12}

The configs mark the answers they make themselves (``NR`` no route, ``FI`` fault abort); ``URX`` (the
retries of the route ran out on a retriable answer) is derived here from the tries the proxy reports
(HAProxy ``%rc``, nginx ``$upstream_status``) and the route's retries, which neither proxy can say.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping

from harness.observability.access_log import AccessLogRecord, parse_flags

MARK = '{"mc_access":1'


def _text(value) -> str | None:
    return None if value in (None, "", "-") else str(value)


def tries_of(obj: Mapping) -> int | None:
    if isinstance(obj.get("retries"), int) and obj["retries"] >= 0:
        return obj["retries"] + 1
    upstream = _text(obj.get("upstream_status"))
    if upstream is None:
        return 0 if obj.get("direction") == "outbound" else None
    return len([s for s in upstream.replace(" : ", ",").split(",") if s.strip()])


def normalise(obj: Mapping, workload: str, route_retries: Mapping[str, int]) -> AccessLogRecord:
    code = int(obj.get("response_code") or 0)
    flags = set(parse_flags(obj.get("response_flags")))
    tries = tries_of(obj)
    retries = route_retries.get(str(obj.get("route") or ""), 0)
    if obj.get("direction") == "outbound" and retries and tries is not None and tries > retries and code >= 500:
        flags.add("URX")
    duration = obj.get("duration")  # HAProxy %Ta: ms
    if isinstance(obj.get("request_time"), (int, float)):  # nginx $request_time: seconds (ms resolution)
        duration = obj["request_time"] * 1000
    return AccessLogRecord(
        workload=workload, direction=str(obj["direction"]), method=str(obj["method"]), path=str(obj["path"]),
        response_code=code, response_flags=tuple(sorted(flags)), x_request_id=_text(obj.get("x_request_id")),
        duration_ms=float(duration) if isinstance(duration, (int, float)) else None, attempts=tries)


def parse_lines(lines: Iterable[str], workload: str,
                route_retries: Mapping[str, int]) -> tuple[list[AccessLogRecord], list[str]]:
    records, problems = [], []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line.startswith(MARK):
            continue  # the proxy's other messages (HAProxy writes its log to the same stdout)
        try:
            records.append(normalise(json.loads(line), workload, route_retries))
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"{workload} access log line {n}: {e!s} ({line[:120]!r})")
    return records, problems
