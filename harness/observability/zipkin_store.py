"""The spans one collector holds, and the queries of Zipkin's read API over them.

Thread-safe (the collector's loop writes, checks in other threads read) and bounded: past
``max_spans`` the oldest traces are forgotten whole. A span reported twice (same trace, id and kind)
keeps its last report, as Zipkin merges them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Iterable

from harness.observability.dependencies import Link, links
from harness.observability.zipkin_model import Span

DEFAULT_MAX_SPANS = 200_000


class SpanStore:
    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS):
        self._max = max_spans
        self._traces: OrderedDict[str, dict[tuple[str, str | None, bool | None], Span]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()
        self.accepted = 0  # spans ever accepted
        self.evicted = 0  # spans forgotten to stay under max_spans

    def add(self, spans: Iterable[Span]) -> int:
        n = 0
        with self._lock:
            for span in spans:
                trace = self._traces.setdefault(_norm(span.traceId), {})
                key = (span.id, span.kind.value if span.kind else None, span.shared)
                self._count += key not in trace
                trace[key] = span
                n += 1
            self.accepted += n
            while self._count > self._max and len(self._traces) > 1:
                _, old = self._traces.popitem(last=False)
                self._count -= len(old)
                self.evicted += len(old)
        return n

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace ordered by timestamp (a 16-digit id matches the low half of a 32)."""
        with self._lock:
            return _ordered(self._traces.get(_norm(trace_id), {}).values())

    def services(self) -> list[str]:
        with self._lock:
            return sorted({s.service for t in self._traces.values() for s in t.values() if s.service})

    def span_names(self, service: str) -> list[str]:
        with self._lock:
            return sorted({s.name for t in self._traces.values() for s in t.values()
                           if s.service == service and s.name})

    def traces(self, *, service: str | None = None, span_name: str | None = None,
               min_duration: int | None = None, end_ts_ms: int | None = None, lookback_ms: int | None = None,
               limit: int = 10) -> list[list[Span]]:
        """Traces with a span matching every given criterion, newest first, at most ``limit``."""
        with self._lock:
            traces = [list(t.values()) for t in self._traces.values()]
        hits = []
        for spans in traces:
            if any(_matches(s, service, span_name, min_duration, end_ts_ms, lookback_ms) for s in spans):
                hits.append(_ordered(spans))
        hits.sort(key=lambda t: -max((s.timestamp or 0) for s in t))
        return hits[:limit]

    def dependencies(self, *, end_ts_ms: int | None = None, lookback_ms: int | None = None) -> list[Link]:
        with self._lock:
            spans = [s for t in self._traces.values() for s in t.values()]
        if end_ts_ms is not None:
            spans = [s for s in spans if _in_window(s, end_ts_ms, lookback_ms)]
        return links(spans)

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()
            self._count = 0


def _norm(trace_id: str) -> str:
    return trace_id.lower()[-16:]  # Zipkin's reader matches 64-bit ids to the low half of 128-bit ones


def _ordered(spans: Iterable[Span]) -> list[Span]:
    return sorted(spans, key=lambda s: (s.timestamp or 0, s.id))


def _in_window(span: Span, end_ts_ms: int, lookback_ms: int | None) -> bool:
    if span.timestamp is None:
        return False
    t_ms = span.timestamp // 1000
    return t_ms <= end_ts_ms and (lookback_ms is None or t_ms >= end_ts_ms - lookback_ms)


def _matches(span: Span, service, span_name, min_duration, end_ts_ms, lookback_ms) -> bool:
    if service is not None and (span.service or "").lower() != service.lower():
        return False
    if span_name is not None and (span.name or "").lower() != span_name.lower():
        return False
    if min_duration is not None and (span.duration or 0) < min_duration:
        return False
    return end_ts_ms is None or _in_window(span, end_ts_ms, lookback_ms)
