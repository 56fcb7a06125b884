"""One access-log record normalised (Envoy's command-operator names in snake case), and the parse of
the JSON lines a proxy writes (one object per line; a line that is not such an object is reported, not
guessed at).

``direction`` is "outbound" (the caller's proxy: one record per request its app sent, with the final
answer) or "inbound" (the destination's proxy: one record per request it received, each retry try
included). ``response_flags`` are Envoy's (UO, UF, UT, URX, NR, UH, DI, FI, UC, RBAC); none is ``()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class AccessLogRecord:
    workload: str  # whose proxy wrote it
    direction: str  # "outbound" | "inbound"
    method: str
    path: str
    response_code: int  # 0: no answer was sent
    response_flags: tuple[str, ...] = ()
    x_request_id: str | None = None
    trace_id: str | None = None
    duration_ms: float | None = None
    attempts: int | None = None
    upstream_cluster: str | None = None
    source_workload: str | None = None
    destination_workload: str | None = None
    authority: str | None = None

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def parse_flags(text: str | None) -> tuple[str, ...]:
    if not text or text == "-":
        return ()
    return tuple(sorted(f.strip() for f in text.split(",") if f.strip()))


def parse_access_log(lines: Iterable[str], workload: str) -> tuple[list[AccessLogRecord], list[str]]:
    """(records, problems): each problem names a line that is not a record of the documented fields."""
    records, problems = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            records.append(AccessLogRecord(
                workload=workload, direction=str(obj["direction"]), method=str(obj["method"]),
                path=str(obj["path"]), response_code=int(obj.get("response_code") or 0),
                response_flags=parse_flags(obj.get("response_flags")), x_request_id=obj.get("x_request_id"),
                trace_id=obj.get("trace_id"), duration_ms=_float(obj.get("duration")),
                attempts=_int(obj.get("attempts")), upstream_cluster=obj.get("upstream_cluster"),
                source_workload=obj.get("source_workload"), destination_workload=obj.get("destination_workload"),
                authority=obj.get("authority")))
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"{workload} access log line {n}: {e!s} ({line[:120]!r})")
    return records, problems


def _float(value) -> float | None:
    return None if value is None else float(value)


def _int(value) -> int | None:
    return None if value is None else int(value)
