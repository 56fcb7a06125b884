"""MESH-HARDENING, slow clients (SPEC §6: slowloris headers (408), an idle body): a listener closes a
client that trickles its headers, stops mid-head or never sends the body it declared, within a stated
bound, and serves others meanwhile.

Every case is one connection to the client's outbound listener and (over TLS with a mesh-issued client
certificate) the backend's inbound listener, all held at once and driven by one loop
(suites/hardening/_timed.py). The idle body, decided per SPEC §6 ("nothing forwarded"): the reference
mesh buffers bodies and forwards nothing; a proxy that streams may have forwarded the head, but must
abort it: the app never answers it (the echo answers a request only once its body is complete), so the
caller never gets a 2xx, and the connection is closed within the bound.
"""

from __future__ import annotations

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import (KEY_HEADER, SERVICE, arrivals_after_good, case_path, good_request, judge_good, listeners,
                       new_key, still_serves)
from ._timed import GOOD_BOUND_S, SLOW_BOUND_S, TRICKLE_S, Held, start, timed_exchange, watch

DECLARED = 1000  # the idle body's Content-Length; 10 bytes of it are sent


def slow_cases(key: str, listener: str) -> list[tuple[Held, bytes]]:
    """(held connection, its first bytes) of each case."""
    def path(case: str) -> str:
        return case_path("slow", case, listener)

    def head(case: str, method: str = "GET") -> bytes:
        return f"{method} {path(case)} HTTP/1.1\r\nHost: {SERVICE}\r\n{KEY_HEADER}: {key}\r\n".encode()

    return [
        (Held("slowloris: a header trickled one byte every %.1f s" % TRICKLE_S, listener, path("loris"),
              trickle=b"a" * 10_000), head("loris") + b"x-slow: "),
        (Held("a request head that stops after its first lines", listener, path("stalled-head")),
         head("stalled-head")),
        (Held(f"an idle body: Content-Length {DECLARED}, 10 bytes sent", listener, path("idle-body"), idle_body=True),
         head("idle-body", "POST") + f"Content-Length: {DECLARED}\r\n\r\n".encode() + b"0123456789"),
    ]


def judge_slow(held: Held, arrivals: list[dict], bound_s: float) -> list[str]:
    where = f"{held.listener} listener, {held.name}"
    if held.error:
        return [f"{where}: {held.describe()}"]
    problems = []
    statuses = held.statuses()
    if held.closed_after is None:
        problems.append(f"{where}: not closed within {bound_s:.0f} s ({held.describe()})")
    if len(statuses) > 1:
        problems.append(f"{where}: {len(statuses)} answers ({held.describe()})")
    if statuses and 200 <= statuses[0] <= 299:
        problems.append(f"{where}: answered {statuses[0]}: an unfinished request was completed ({held.describe()})")
    if not held.idle_body:  # an unfinished head: 408 or nothing, and nothing of it forwarded
        if statuses and statuses[0] != 408:
            problems.append(f"{where}: answered {statuses[0]}, want 408 or no answer (SPEC §6)")
        if any(a["path"] == held.path for a in arrivals):
            problems.append(f"{where}: an unfinished head arrived at the app ({held.path})")
    return problems


@conformance(
    short_name="MeshHardeningSlowClients",
    description=f"Three slow clients at once on each listener, sent to the client's outbound listener and, over TLS "
                f"with a mesh-issued client certificate, the backend's inbound listener: a header trickled one byte "
                f"every {TRICKLE_S:.1f} s (slowloris), a request head that stops after two lines, and a POST that "
                f"declares {DECLARED} bytes of body and sends 10. Each is closed by the proxy within "
                f"{SLOW_BOUND_S:.0f} s of its first byte (three times the reference mesh's 10 s header and body "
                f"timeouts; nginx's default 60 s client_header_timeout does not meet it) with at most one answer, "
                f"never a 2xx; the two unfinished heads get 408 or no answer and nothing of them reaches the app "
                f"(the idle body may have been forwarded by a streaming proxy, then aborted). Meanwhile a good "
                f"request on another connection is answered 200 within {GOOD_BOUND_S:.0f} s, and one afterwards "
                f"too. Deterministic: fixed bytes, bounds generous for a busy 2-core machine, no statistics.",
    features=[Feature.HARDENING_SLOW_CLIENTS], profile=Profile.HARDENING, level=Level.CORE)
def test_slow_clients(mesh, hardening_mesh, scenario, evidence):
    key = new_key()
    where = listeners(mesh, hardening_mesh, scenario)
    held = [start(h, listener, first) for listener in where for h, first in slow_cases(key, listener.name)]
    problems, seen = [], {}
    for listener in where:  # served meanwhile: the slow ones are all open now
        path = case_path("slow", "good-meanwhile", listener.name)
        got, took = timed_exchange(listener, good_request(key, path))
        seen[f"{listener.name}/good-meanwhile"] = f"{got.describe()} in {took:.2f} s"
        if got.statuses[:1] != [200] or took > GOOD_BOUND_S:
            problems.append(f"{listener.name} listener: a good request while slow clients were open got "
                            f"{got.describe()} in {took:.2f} s (want 200 within {GOOD_BOUND_S:.0f} s)")
    watch(held, SLOW_BOUND_S)
    for listener in where:
        good_path, good = still_serves(listener, key, "slow")
        arrivals, arrived = arrivals_after_good(hardening_mesh, key, good_path)
        for h in (h for h in held if h.listener == listener.name):
            seen[f"{listener.name}/{h.name}"] = h.describe()
            problems += judge_slow(h, arrivals, SLOW_BOUND_S)
        seen[f"{listener.name}/good-afterwards"] = good.describe()
        problems += judge_good(listener.name, good, arrived)
    evidence["answers"] = seen
    evidence["closed_after_s"] = {f"{h.listener}/{h.name}": h.closed_after for h in held}
    evidence.samples = len(seen)
    assert not problems, "slow clients: " + "; ".join(problems)
