"""W3C trace context (``traceparent``, version 00) and B3 ids: parsing and making, pure."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class TraceParent:
    trace_id: str  # 32 lower-case hex
    parent_id: str  # 16 lower-case hex: the span of whoever sent it
    flags: str = "01"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    match = _TRACEPARENT.match((value or "").strip())
    if not match or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return TraceParent(*match.groups())


def new_traceparent(rng: random.Random) -> TraceParent:
    return TraceParent(f"{rng.getrandbits(128) or 1:032x}", f"{rng.getrandbits(64) or 1:016x}", "01")
