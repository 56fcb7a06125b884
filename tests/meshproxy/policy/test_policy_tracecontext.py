"""W3C traceparent and B3 parsing and derivation (meshproxy/policy/tracecontext.py): pure, seeded RNG."""

import random

import pytest

from meshproxy.policy.tracecontext import Incoming, Span, child, decide, incoming, parse_traceparent, render

TRACE, SPAN = b"0af7651916cd43dd8448eb211c80319c", b"b7ad6b7169203331"


def tp(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"traceparent", value)]


def test_valid_traceparent_gives_trace_span_and_sampled_flag():
    assert parse_traceparent(b"00-%s-%s-01" % (TRACE, SPAN)) == (TRACE, SPAN, 1)
    assert incoming(tp(b"00-%s-%s-00" % (TRACE, SPAN))) == Incoming(TRACE, SPAN, False, None)


@pytest.mark.parametrize("value", [
    b"00-%s-%s-01" % (TRACE.upper(), SPAN),          # uppercase hex
    b"00-%s-%s-01" % (b"0" * 32, SPAN),              # all-zero trace id
    b"00-%s-%s-01" % (TRACE, b"0" * 16),             # all-zero span id
    b"ff-%s-%s-01" % (TRACE, SPAN),                  # version ff
    b"00-%s-%s-01-extra" % (TRACE, SPAN),            # version 00 has exactly four fields
    b"00-%s-%s-1" % (TRACE, SPAN),                   # short flags
    b"00-%s-%s" % (TRACE, SPAN),
    b"garbage",
])
def test_invalid_traceparent_is_refused(value):
    assert parse_traceparent(value) is None
    assert incoming(tp(value)) is None  # no B3 either: the trace restarts


def test_a_later_version_may_carry_more_fields():
    assert parse_traceparent(b"01-%s-%s-01-more" % (TRACE, SPAN)) == (TRACE, SPAN, 1)


def test_b3_only_and_its_sampling_forms():
    b3 = [(b"x-b3-traceid", TRACE), (b"x-b3-spanid", SPAN), (b"x-b3-parentspanid", b"1111111111111111")]
    assert incoming(b3) == Incoming(TRACE, SPAN, None, b"1111111111111111")
    assert incoming(b3 + [(b"x-b3-sampled", b"1")]).sampled is True
    assert incoming(b3 + [(b"x-b3-sampled", b"false")]).sampled is False
    short = incoming([(b"x-b3-traceid", SPAN), (b"x-b3-spanid", SPAN)])
    assert short.trace_id == b"0" * 16 + SPAN  # a 64-bit B3 trace id, padded to 128 bits
    assert incoming([(b"x-b3-traceid", b"xyz"), (b"x-b3-spanid", SPAN)]) is None
    assert incoming([(b"x-b3-traceid", TRACE)]) is None


def test_a_valid_traceparent_wins_over_b3_and_an_invalid_one_falls_back_to_it():
    other = b"11111111111111111111111111111111"
    both = [(b"x-b3-traceid", other), (b"x-b3-spanid", SPAN)]
    assert incoming(tp(b"00-%s-%s-01" % (TRACE, SPAN)) + both).trace_id == TRACE
    assert incoming(tp(b"bad") + both).trace_id == other


def test_child_keeps_trace_and_decision_and_parents_on_the_caller():
    rng = random.Random(7)
    span = child(Incoming(TRACE, SPAN, True, None), rng, 0.0)
    assert (span.trace_id, span.parent_id, span.sampled) == (TRACE, SPAN, True)  # the decision is kept
    assert len(span.span_id) == 16 and span.span_id != SPAN
    root = child(None, rng, 100.0)
    assert root.parent_id is None and len(root.trace_id) == 32 and root.sampled is True
    assert child(Incoming(TRACE, SPAN, None, None), rng, 0.0).sampled is False  # no decision: sampling%


def test_ids_come_from_the_injected_rng():
    assert child(None, random.Random(3), None) == child(None, random.Random(3), None)
    assert child(None, random.Random(3), None) != child(None, random.Random(4), None)


def test_sampling_rate_is_the_percentage():
    rng = random.Random(11)
    hits = sum(decide(25.0, rng) for _ in range(20_000))
    # binomial(20000, 0.25): sd 61; 6 sd either side fails a correct rate with probability < 1e-8
    assert abs(hits - 5000) < 370
    assert not any(decide(0.0, rng) for _ in range(1000)) and all(decide(100.0, rng) for _ in range(1000))
    assert decide(None, rng) is False


def test_render_carries_the_span_as_parent():
    lines = render(Span(TRACE, SPAN, b"2222222222222222", True)).decode().split("\r\n")
    assert lines[:-1] == [f"traceparent: 00-{TRACE.decode()}-{SPAN.decode()}-01",
                          f"x-b3-traceid: {TRACE.decode()}", f"x-b3-spanid: {SPAN.decode()}",
                          "x-b3-parentspanid: 2222222222222222", "x-b3-sampled: 1"]
    root = render(Span(TRACE, SPAN, None, False)).decode()
    assert "parentspanid" not in root and root.startswith(f"traceparent: 00-{TRACE.decode()}-{SPAN.decode()}-00")
    again = incoming([tuple(x.encode().split(b": ")) for x in lines[:-1]])
    assert again == Incoming(TRACE, SPAN, True, b"2222222222222222")
