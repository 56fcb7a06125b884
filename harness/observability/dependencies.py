"""The service links a set of spans implies (Zipkin's ``/api/v2/dependencies``), pure.

A link ``parent → child`` is counted once per span whose parent span (same trace, ``id == parentId``)
belongs to another service: with a mesh's spans, the caller's outbound CLIENT span is the parent of the
destination's inbound SERVER span, so each request between two services is one call. A CLIENT span with
no child span of another service (the destination reported nothing) links to its ``remoteEndpoint``'s
service when it names one, as Zipkin's linker does. A call is an error when the child span (or that
CLIENT span) carries an ``error`` tag or an ``http.status_code`` of 500 or more.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from harness.observability.zipkin_model import Kind, Span


@dataclass(frozen=True)
class Link:
    parent: str
    child: str
    callCount: int
    errorCount: int = 0

    def to_json(self) -> dict:
        return {"parent": self.parent, "child": self.child, "callCount": self.callCount,
                "errorCount": self.errorCount}


def is_error(span: Span) -> bool:
    status = span.tags.get("http.status_code", "")
    return "error" in span.tags or (status.isdigit() and int(status) >= 500)


def links(spans: Iterable[Span]) -> list[Link]:
    """Links sorted by (parent, child)."""
    spans = list(spans)
    by_id = {(s.traceId, s.id): s for s in spans}
    calls: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    linked_parents: set[tuple[str, str]] = set()
    for span in spans:
        parent = by_id.get((span.traceId, span.parentId)) if span.parentId else None
        if parent is None or not parent.service or not span.service or parent.service == span.service:
            continue
        pair = (parent.service, span.service)
        calls[pair] += 1
        errors[pair] += is_error(span)
        linked_parents.add((parent.traceId, parent.id))
    for span in spans:
        remote = span.remoteEndpoint.serviceName if span.remoteEndpoint else None
        if (span.kind is Kind.CLIENT and span.service and remote and remote != span.service
                and (span.traceId, span.id) not in linked_parents):
            pair = (span.service, remote)
            calls[pair] += 1
            errors[pair] += is_error(span)
    return [Link(p, c, n, errors[(p, c)]) for (p, c), n in sorted(calls.items())]
