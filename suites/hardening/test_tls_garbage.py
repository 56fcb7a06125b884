"""MESH-HARDENING, garbage at a TLS listener (SPEC §6: "garbage instead of a TLS ClientHello, plaintext to a
TLS port"): the backend's STRICT inbound listener refuses random bytes, a ClientHello cut short and a
plaintext HTTP request, closes each within a bound, serves none of them to the app, and keeps serving
mTLS callers meanwhile and afterwards.

The truncated ClientHello is the first 60 bytes of a real one (made by the harness's own client TLS
context through a memory BIO), then silence: only a handshake timeout closes it. The plaintext request
may get an HTTP error answer (nginx answers 400 "plain HTTP request was sent to HTTPS port") or none,
never a 2xx, and never arrives.
"""

from __future__ import annotations

import random
import ssl

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import (KEY_HEADER, SERVICE, Listener, arrivals_after_good, case_path, good_request, judge_good,
                       listeners, new_key, still_serves)
from ._timed import GOOD_BOUND_S, SLOW_BOUND_S, Held, start, timed_exchange, watch

GARBAGE_BYTES = 4096
GARBAGE_SEED = 15  # the random bytes are the same every run
TRUNCATED_AT = 60


def client_hello(ctx: ssl.SSLContext) -> bytes:
    """The ClientHello ``ctx`` would send (no socket: a memory BIO)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def garbage_cases(key: str, inbound: Listener) -> list[tuple[Held, bytes]]:
    def path(case: str) -> str:
        return case_path("tls-garbage", case, "inbound")

    raw = Listener(inbound.name, inbound.address)  # the bytes go on the TCP connection as they are
    hello = client_hello(inbound.tls)
    plaintext = (f"GET {path('plaintext')} HTTP/1.1\r\nHost: {SERVICE}\r\n{KEY_HEADER}: {key}\r\n"
                 f"Connection: close\r\n\r\n").encode()
    return [
        (Held(f"{GARBAGE_BYTES} random bytes", "inbound", path("random")),
         random.Random(GARBAGE_SEED).randbytes(GARBAGE_BYTES), raw),
        (Held(f"a ClientHello cut after {TRUNCATED_AT} of its {len(hello)} bytes, then silence", "inbound",
              path("truncated-hello")), hello[:TRUNCATED_AT], raw),
        (Held("a plaintext HTTP request", "inbound", path("plaintext")), plaintext, raw),
    ]


def judge_garbage(held: Held, arrivals: list[dict]) -> list[str]:
    where = f"inbound listener, {held.name}"
    if held.error:
        return [f"{where}: {held.describe()}"]
    problems = []
    if held.closed_after is None:
        problems.append(f"{where}: not closed within {SLOW_BOUND_S:.0f} s ({held.describe()})")
    statuses = held.statuses()
    if any(200 <= s <= 399 for s in statuses) or len(statuses) > 1:
        problems.append(f"{where}: served over plaintext ({held.describe()}) on a STRICT listener")
    if any(a["path"] == held.path for a in arrivals):
        problems.append(f"{where}: it arrived at the app")
    return problems


@conformance(
    short_name="MeshHardeningTlsGarbage",
    description=f"Three connections at once to the backend's STRICT inbound listener: {GARBAGE_BYTES} random bytes "
                f"(fixed seed), a real ClientHello cut after {TRUNCATED_AT} bytes followed by silence, and a "
                f"plaintext HTTP request. Each is closed by the proxy within {SLOW_BOUND_S:.0f} s (three times the "
                f"reference mesh's 10 s handshake bound), gets no 2xx/3xx answer (an HTTP 4xx refusal or a TLS "
                f"alert is fine) and nothing of it arrives at the app; meanwhile an mTLS request with a mesh-issued "
                f"client certificate is answered 200 within {GOOD_BOUND_S:.0f} s, and one afterwards too. "
                f"Deterministic: fixed bytes, generous bounds, no statistics.",
    features=[Feature.HARDENING_TLS_GARBAGE], profile=Profile.HARDENING, level=Level.CORE)
def test_tls_garbage(mesh, hardening_mesh, scenario, evidence):
    key = new_key()
    [inbound] = [listener for listener in listeners(mesh, hardening_mesh, scenario) if listener.name == "inbound"]
    held = [start(h, raw, first) for h, first, raw in garbage_cases(key, inbound)]
    problems, seen = [], {}
    path = case_path("tls-garbage", "good-meanwhile", "inbound")
    got, took = timed_exchange(inbound, good_request(key, path))
    seen["inbound/good-meanwhile"] = f"{got.describe()} in {took:.2f} s"
    if got.statuses[:1] != [200] or took > GOOD_BOUND_S:
        problems.append(f"inbound listener: an mTLS request while the garbage connections were open got "
                        f"{got.describe()} in {took:.2f} s (want 200 within {GOOD_BOUND_S:.0f} s)")
    watch(held, SLOW_BOUND_S)
    good_path, good = still_serves(inbound, key, "tls-garbage")
    arrivals, arrived = arrivals_after_good(hardening_mesh, key, good_path)
    for h in held:
        seen[f"inbound/{h.name}"] = h.describe()
        problems += judge_garbage(h, arrivals)
    seen["inbound/good-afterwards"] = good.describe()
    problems += judge_good("inbound", good, arrived)
    evidence["answers"] = seen
    evidence["closed_after_s"] = {h.name: h.closed_after for h in held}
    evidence.samples = len(seen)
    assert not problems, "TLS garbage: " + "; ".join(problems)
