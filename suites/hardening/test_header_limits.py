"""MESH-HARDENING, request size limits (SPEC §6 "oversized or too many headers (431)"): absurd request heads
are refused with the status SPEC and RFC 6585 name, before anything is forwarded; ordinary large ones
still pass, so a limit is not a wall in front of normal traffic.

MeshHardeningKeepsServing already sends a 70 kB header and 300 headers (values near common limits,
which a mesh may accept or refuse) and bad chunk sizes (refused); this check takes the sizes no mesh may
forward and the sizes every mesh must, both ways round.
"""

from __future__ import annotations

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import (CLOSE_WAIT_S, Case, arrivals_after_good, case_path, exchange, judge_case, judge_good, listeners,
                       new_key, request, still_serves)

HUGE = 1 << 20  # 1 MiB: a header or request-target no limit anywhere admits (Envoy's maximum is 96 KiB by default)
MANY = 5000
SMALL_VALUE = 4000  # bytes: below every proxy's default header buffer (nginx 8 KiB, HAProxy 16 KiB)
ORDINARY_COUNT = 60
LONG_TARGET = 7000  # RFC 9112 §3: recipients should support request-lines of at least 8000 octets


def refused_cases(key: str, listener: str) -> list[tuple[Case, tuple[int, ...]]]:
    def path(case: str) -> str:
        return case_path("limits", case, listener)

    return [
        (Case("a 1 MiB header", request("GET", path("huge-header"), key, "x-big: " + "a" * HUGE), path("huge-header")),
         (431,)),
        (Case(f"{MANY} headers", request("GET", path("many-headers"), key, *(f"x-h{i}: v" for i in range(MANY))),
              path("many-headers")), (431,)),
        (Case("a 1 MiB request-target", request("GET", path("huge-target") + "?q=" + "a" * HUGE, key),
              path("huge-target")), (414, 431)),
    ]


def ordinary_cases(key: str, listener: str) -> list[Case]:
    def path(case: str) -> str:
        return case_path("limits", case, listener)

    target = path("long-target")
    return [
        Case(f"a {SMALL_VALUE}-byte header", request("GET", path("big-header"), key, "x-big: " + "b" * SMALL_VALUE,
                                                     "Connection: close"), path("big-header")),
        Case(f"{ORDINARY_COUNT} headers", request("GET", path("headers"), key,
                                                  *(f"x-h{i}: v" for i in range(ORDINARY_COUNT)), "Connection: close"),
             path("headers")),
        Case(f"a {LONG_TARGET}-byte request-target", request("GET", target + "?q=" + "c" * (LONG_TARGET - len(target)),
                                                             key, "Connection: close"), target),
    ]


@conformance(
    short_name="MeshHardeningLimits",
    description=f"Sent to the client's outbound listener and, over TLS with a mesh-issued client certificate, the "
                f"backend's inbound listener: a request with a 1 MiB header and one with {MANY} headers are each "
                f"refused with one 431 (SPEC §6, RFC 6585 §5), a 1 MiB request-target with one 414 or 431, and "
                f"nothing of them arrives at the app; a {SMALL_VALUE}-byte header, {ORDINARY_COUNT} headers and a "
                f"{LONG_TARGET}-byte request-target (RFC 9112 §3's 8000-octet minimum) are each answered 200 and "
                f"arrive once; a good request afterwards is answered 200. Deterministic: fixed bytes, one "
                f"connection each, read until the proxy closes or {CLOSE_WAIT_S:.1f} s.",
    features=[Feature.HARDENING_LIMITS], profile=Profile.HARDENING, level=Level.CORE)
def test_limits(mesh, hardening_mesh, scenario, evidence):
    key = new_key()
    problems, seen = [], {}
    for listener in listeners(mesh, hardening_mesh, scenario):
        refused = [(case, allowed, exchange(listener, case.data))
                   for case, allowed in refused_cases(key, listener.name)]
        ordinary = [(case, exchange(listener, case.data)) for case in ordinary_cases(key, listener.name)]
        good_path, good = still_serves(listener, key, "limits")
        arrivals, arrived = arrivals_after_good(hardening_mesh, key, good_path)
        for case, allowed, got in refused:
            seen[f"{listener.name}/{case.name}"] = got.describe()
            problems += judge_case(listener.name, case, got, arrivals, refuse=True, allowed=allowed)
        for case, got in ordinary:
            seen[f"{listener.name}/{case.name}"] = got.describe()
            mine = sum(1 for a in arrivals if a["path"] == case.path)
            if got.statuses != [200] or mine != 1:
                problems.append(f"{listener.name} listener, {case.name}: an ordinary request got {got.describe()} "
                                f"and arrived {mine} times (want 200, once)")
        seen[f"{listener.name}/good-afterwards"] = good.describe()
        problems += judge_good(listener.name, good, arrived)
    evidence["answers"] = seen
    evidence.samples = len(seen)
    assert not problems, "request limits: " + "; ".join(problems)
