"""Trace context of one hop: W3C ``traceparent`` (version 00) and B3 multi headers, parsed and derived.

Pure: no I/O, no clock; randomness is the caller's ``random.Random`` (the sidecar's fast PRNG). Ids are
kept as lowercase hex ``bytes`` (32 digits for a trace, 16 for a span) as they travel in headers, so a
hop that only propagates never converts them.

- ``incoming(captured)``: the context a request arrived with, from the header pairs the listener kept
  aside at parse time (lowercase names). A valid ``traceparent`` wins; else valid B3 (``x-b3-traceid``
  of 16 or 32 hex digits, a 16-digit one padded to 32, and a 16-digit ``x-b3-spanid``); else None (no
  context, or only invalid ones: the trace restarts). The sampling decision is the traceparent's flags
  bit 0, else ``x-b3-sampled`` (1/true/d or 0/false; None when absent).
- ``child(parent, rng, sampling)``: this hop's span: the parent's trace (or a new random 128-bit one),
  a new random 64-bit span id, the parent's span id as parentId, and the parent's sampling decision (or
  a new one, ``sampling`` percent of the time; never when tracing is off).
- ``render(span)``: the header lines that carry ``span`` to the next hop as its parent.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple, Sequence

TRACEPARENT = b"traceparent"
B3_TRACE, B3_SPAN, B3_PARENT, B3_SAMPLED = b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled"
HEADERS = frozenset({TRACEPARENT, B3_TRACE, B3_SPAN, B3_PARENT, B3_SAMPLED})
# W3C Trace Context §3.2: version ff is invalid; version 00 is exactly 55 characters; a later version may
# append fields after a "-"; lowercase hex only
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_SPAN_HEX = re.compile(rb"[0-9a-f]{16}")
_TRACE_HEX = re.compile(rb"[0-9a-f]{16}(?:[0-9a-f]{16})?")
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
_SAMPLED_TRUE = frozenset({b"1", b"true", b"d"})  # "d": B3's debug flag implies sampled
_SAMPLED_FALSE = frozenset({b"0", b"false"})


class Incoming(NamedTuple):
    trace_id: bytes         # 32 hex digits
    span_id: bytes          # the caller's span: the parent of this hop's span
    sampled: bool | None    # the caller's decision; None when it sent none (B3 without x-b3-sampled)
    parent_id: bytes | None  # B3 x-b3-parentspanid: the caller's own parent (None if absent or invalid)


class Span(NamedTuple):
    trace_id: bytes
    span_id: bytes
    parent_id: bytes | None  # None: a root span
    sampled: bool


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, int] | None:
    """(trace id, parent span id, flags) of a valid traceparent, else None."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, int(flags, 16)


def _span_hex(value: bytes | None) -> bytes | None:
    if value is None or _SPAN_HEX.fullmatch(value) is None or value == _ZERO_SPAN:
        return None
    return value


def incoming(captured: Sequence[tuple[bytes, bytes]] | None) -> Incoming | None:
    """The context the request carried (see the module docstring), or None."""
    if not captured:
        return None
    traceparent = b3_parent = None
    for name, value in captured:
        if name == TRACEPARENT:
            if traceparent is None:
                traceparent = value
        elif name == B3_PARENT and b3_parent is None:
            b3_parent = value
    b3_parent = _span_hex(b3_parent.strip().lower()) if b3_parent is not None else None
    if traceparent is not None:
        parsed = parse_traceparent(traceparent)
        if parsed is not None:
            trace_id, span_id, flags = parsed
            return Incoming(trace_id, span_id, bool(flags & 1), b3_parent)
    b3: dict[bytes, bytes] = {}  # no valid traceparent: B3 (rarer) is read only now
    for name, value in captured:
        if name in HEADERS and name not in b3:
            b3[name] = value.strip().lower()
    trace = b3.get(B3_TRACE)
    span_id = _span_hex(b3.get(B3_SPAN))
    if trace is None or span_id is None or _TRACE_HEX.fullmatch(trace) is None:
        return None
    trace = trace.rjust(32, b"0")
    if trace == _ZERO_TRACE:
        return None
    flag = b3.get(B3_SAMPLED)
    sampled = True if flag in _SAMPLED_TRUE else False if flag in _SAMPLED_FALSE else None
    return Incoming(trace, span_id, sampled, b3_parent)


def decide(sampling: float | None, rng: random.Random) -> bool:
    """A new sampling decision: True ``sampling`` percent of the time (never when None or 0)."""
    if not sampling:
        return False
    return sampling >= 100.0 or rng.random() * 100.0 < sampling


def new_span_id(rng: random.Random) -> bytes:
    return b"%016x" % (rng.getrandbits(64) or 1)  # an all-zero id is invalid


def new_trace_id(rng: random.Random) -> bytes:
    return b"%032x" % (rng.getrandbits(128) or 1)


def child(parent: Incoming | None, rng: random.Random, sampling: float | None) -> Span:
    """This hop's span under ``parent`` (a new root when None)."""
    if parent is None:
        return Span(new_trace_id(rng), new_span_id(rng), None, decide(sampling, rng))
    sampled = parent.sampled if parent.sampled is not None else decide(sampling, rng)
    return Span(parent.trace_id, new_span_id(rng), parent.span_id, sampled)


def render(span: Span) -> bytes:
    """``traceparent`` and B3 header lines carrying ``span`` (as the parent) to the next hop."""
    trace, span_id = span.trace_id, span.span_id
    if span.sampled:
        tail = b"-01\r\nx-b3-traceid: %s\r\nx-b3-spanid: %s\r\n%sx-b3-sampled: 1\r\n"
    else:
        tail = b"-00\r\nx-b3-traceid: %s\r\nx-b3-spanid: %s\r\n%sx-b3-sampled: 0\r\n"
    parent = b"x-b3-parentspanid: %s\r\n" % span.parent_id if span.parent_id is not None else b""
    return b"traceparent: 00-" + trace + b"-" + span_id + tail % (trace, span_id, parent)
