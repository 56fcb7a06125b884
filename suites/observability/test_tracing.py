"""Trace context across a mesh hop, and the spans the mesh reports (SPEC §4 Observability).

``client`` calls ``traced`` with its own W3C ``traceparent`` (trace T, parent span P), with B3 headers
only, and with no trace context at all. The echo's journal shows what reached the application; the
harness's Zipkin collector (``telemetry.tracing.zipkin``) holds what the mesh reported. A mesh hop is
one span per proxy: the caller's outbound span (CLIENT) and the destination's inbound span (SERVER).
"""

from __future__ import annotations

import random
import uuid
from typing import Mapping, Sequence

from harness.checks import conformance
from harness.features import Feature, Level, Profile
from harness.observability.zipkin_model import Kind, Span

from ._support import CLIENT, Sent, arrivals_by_request, journal_mark, send, workload
from ._trace_context import TraceParent, new_traceparent, parse_traceparent

W3C_REQUESTS = 20
CALLER, DESTINATION = "client.default", "traced.default"  # Zipkin serviceName: <service>.<namespace>
SPAN_DEADLINE_S = 5.0  # spans are batched (the reference: every 0.2 s); wait this long for both
# A child's interval must lie in its parent's. Both proxies stamp their spans from the same host clock,
# rounded to µs; the slack covers that rounding and a wall-clock step between start and end stamps
NEST_SLACK_US = 100
# A span can only last as long as the client waited for it: the bound covers the µs rounding and the
# client's own timer starting a little after the proxy's clock (the client's clock is its own)
LATENCY_SLACK_US = 1000


@conformance(
    short_name="MeshTracePropagation",
    description=f"client → traced, {W3C_REQUESTS} requests with their own traceparent (and tracestate), one with "
                "B3 headers only, one with no trace context. The application behind the destination gets the "
                "same trace id (a new 128-bit one when the client sent none), the client's tracestate and "
                "x-request-id untouched; the mesh reports exactly one CLIENT span of the caller and one SERVER "
                "span of the destination per request, in that trace: the CLIENT span's parent is the client's "
                "span (none for a new trace), the SERVER span's parent is the CLIENT span, and the application "
                f"sees the SERVER span as its parent. A child span lies within its parent (±{NEST_SLACK_US} µs: "
                "µs rounding of one host clock), and no span lasts longer than the client's own measured "
                f"latency + {LATENCY_SLACK_US} µs. Spans are awaited up to {SPAN_DEADLINE_S:g} s (batched).",
    features=[Feature.TRACING], profile=Profile.OBSERVABILITY, level=Level.EXTENDED)
def test_trace_propagation(mesh, observability_mesh, zipkin, evidence):
    problems = measure_tracing(mesh, observability_mesh, zipkin, evidence)
    assert not problems, "trace context or spans wrong: " + "; ".join(problems[:12]) + (
        f" (and {len(problems) - 12} more)" if len(problems) > 12 else "")


def measure_tracing(mesh, deployment, zipkin, evidence) -> list[str]:
    rng = random.Random(uuid.uuid4().int)  # fresh ids each run; a failure's evidence lists them
    echo = deployment.echo(workload("traced"))
    mark = journal_mark(echo)
    cases: list[tuple[str, TraceParent | None, Sent]] = []
    for _ in range(W3C_REQUESTS):
        tp = new_traceparent(rng)
        headers = {"traceparent": tp.header(), "tracestate": "meshconform=t61rcWkgMzE"}
        cases.append(("w3c", tp, send(mesh, CLIENT, "traced", "/w3c", uuid.uuid4().hex, headers=headers)))
    b3 = new_traceparent(rng)
    b3_headers = {"x-b3-traceid": b3.trace_id, "x-b3-spanid": b3.parent_id, "x-b3-sampled": "1"}
    cases.append(("b3", b3, send(mesh, CLIENT, "traced", "/b3", uuid.uuid4().hex, headers=b3_headers)))
    cases.append(("none", None, send(mesh, CLIENT, "traced", "/none", uuid.uuid4().hex)))
    arrivals = arrivals_by_request(echo, mark, {s.request_id for _, _, s in cases})

    client = zipkin.client()
    problems, rows = [], []
    for kind, sent_tp, sent in cases:
        came = arrivals.get(sent.request_id, [])
        seen = parse_traceparent(came[0]["headers"].get("traceparent")) if came else None
        trace_id = sent_tp.trace_id if sent_tp else (seen.trace_id if seen else None)
        spans = client.wait_trace(trace_id, spans=2, timeout=SPAN_DEADLINE_S) if trace_id else []
        found = judge_hop(kind, sent_tp, sent, came, spans)
        problems += [f"{kind} request {sent.request_id[:8]}: {p}" for p in found]
        rows.append({"kind": kind, "status": sent.status, "sent": sent_tp.header() if sent_tp else None,
                     "app_saw": came[0]["headers"].get("traceparent") if came else None,
                     "spans": [_span_row(s) for s in spans], "client_latency_us": int(sent.response.elapsed_s * 1e6),
                     "problems": found})
    evidence.samples = len(cases)
    evidence["requests"] = rows
    evidence.measure("requests_with_problems", sum(1 for r in rows if r["problems"]))
    return problems


def _span_row(span: Span) -> dict:
    return {"service": span.service, "kind": span.kind.value if span.kind else None, "id": span.id,
            "parentId": span.parentId, "timestamp": span.timestamp, "duration": span.duration}


def judge_hop(kind: str, sent_tp: TraceParent | None, sent: Sent, came: Sequence[Mapping],
              spans: Sequence[Span]) -> list[str]:
    """The problems of one request's trace (none: propagated and reported right)."""
    if sent.status != 200 or len(came) != 1:
        return [f"wanted one arrival and a 200, got {len(came)} arrivals and {sent.status}"]
    headers = came[0]["headers"]
    problems = []
    seen = parse_traceparent(headers.get("traceparent"))
    if seen is None:
        return [f"the application got no valid traceparent ({headers.get('traceparent')!r})"]
    if sent_tp is not None and seen.trace_id != sent_tp.trace_id:
        problems.append(f"trace id not kept: sent {sent_tp.trace_id}, the application got {seen.trace_id}")
    if headers.get("x-request-id") != sent.request_id:
        problems.append(f"x-request-id not kept: sent {sent.request_id}, got {headers.get('x-request-id')}")
    if kind == "w3c" and headers.get("tracestate") != "meshconform=t61rcWkgMzE":
        problems.append(f"tracestate not forwarded untouched: got {headers.get('tracestate')!r}")
    trace_id = sent_tp.trace_id if sent_tp else seen.trace_id
    mine = [s for s in spans if s.traceId == trace_id]
    outbound = [s for s in mine if s.kind is Kind.CLIENT and s.service == CALLER]
    inbound = [s for s in mine if s.kind is Kind.SERVER and s.service == DESTINATION]
    if len(outbound) != 1 or len(inbound) != 1:
        return problems + [f"wanted one CLIENT span of {CALLER} and one SERVER span of {DESTINATION} in trace "
                           f"{trace_id}, the collector has {len(outbound)} and {len(inbound)} "
                           f"({len(spans)} spans in all)"]
    out, inn = outbound[0], inbound[0]
    want_parent = sent_tp.parent_id if sent_tp else None
    if out.parentId != want_parent:
        problems.append(f"the outbound span's parent is {out.parentId}, want the client's span {want_parent}")
    if inn.parentId != out.id:
        problems.append(f"the inbound span's parent is {inn.parentId}, want the outbound span {out.id}")
    if seen.parent_id != inn.id:
        problems.append(f"the application's traceparent names parent {seen.parent_id}, want the inbound span {inn.id}")
    problems += timing_problems(out, inn, sent.response.elapsed_s)
    return problems


def timing_problems(parent: Span, child: Span, client_latency_s: float) -> list[str]:
    if None in (parent.timestamp, parent.duration, child.timestamp, child.duration):
        return ["a span lacks its timestamp or duration"]
    problems = []
    if child.timestamp < parent.timestamp - NEST_SLACK_US or child.end > parent.end + NEST_SLACK_US:
        problems.append(f"the inbound span [{child.timestamp}, {child.end}] µs is not within the outbound span "
                        f"[{parent.timestamp}, {parent.end}] µs (±{NEST_SLACK_US} µs; spans stamped from a "
                        "millisecond or cached clock, or from per-process epoch offsets, show as this)")
    bound = int(client_latency_s * 1e6) + LATENCY_SLACK_US
    for name, span in (("outbound", parent), ("inbound", child)):
        if span.duration > bound:
            problems.append(f"the {name} span lasted {span.duration} µs, over the client's latency "
                            f"{int(client_latency_s * 1e6)} µs + {LATENCY_SLACK_US} µs")
    return problems
