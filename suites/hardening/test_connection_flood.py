"""MESH-HARDENING, a flood of idle connections (SPEC §6 "connection floods"): while many connections sit
open and silent, a listener still answers a good request promptly, and once they are closed it has
released them (a second flood is served as the first was).

The flood is plain TCP (no TLS handshake on the inbound either: the cheapest attack on a TLS listener
is to never start one). See suites/hardening/_timed.py for the bounds.
"""

from __future__ import annotations

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import arrivals_after_good, case_path, good_request, judge_good, listeners, new_key, still_serves
from ._timed import GOOD_BOUND_S, flood, release, timed_exchange

FLOOD = 500  # idle connections per listener, per round
ROUNDS = 2


@conformance(
    short_name="MeshHardeningConnectionFlood",
    description=f"{FLOOD} idle TCP connections (nothing sent, not even a TLS ClientHello) opened to the client's "
                f"outbound listener and, separately, the backend's inbound listener; while they are open a good "
                f"request on a new connection (TLS with a mesh-issued client certificate on the inbound) is "
                f"answered 200 within {GOOD_BOUND_S:.0f} s and arrives at the app; then all are closed, and a second "
                f"round of {FLOOD} is served the same way (the first round's connections were released: a proxy "
                f"that leaks their slots under a cap below {ROUNDS * FLOOD} fails), and a good request afterwards "
                f"is answered 200. Every flood connection must connect (the kernel's backlog takes them even "
                f"when the proxy does not accept). Deterministic; the bound is generous for a busy 2-core machine.",
    features=[Feature.HARDENING_CONNECTION_FLOOD], profile=Profile.HARDENING, level=Level.CORE)
def test_connection_flood(mesh, hardening_mesh, scenario, evidence):
    key = new_key()
    problems, seen = [], {}
    for listener in listeners(mesh, hardening_mesh, scenario):
        paths = []
        for round_ in range(1, ROUNDS + 1):
            socks, errors = flood(listener, FLOOD)
            try:
                path = case_path("flood", f"good-during-round-{round_}", listener.name)
                got, took = timed_exchange(listener, good_request(key, path))
                if got.statuses[:1] == [200]:
                    paths.append(path)  # answered: it must have arrived
            finally:
                release(socks)
            seen[f"{listener.name}/round-{round_}"] = (f"{len(socks)} of {FLOOD} connected; good request: "
                                                      f"{got.describe()} in {took:.2f} s")
            if errors:
                problems.append(f"{listener.name} listener, round {round_}: {len(errors)} of {FLOOD} flood "
                                f"connections failed ({errors[0]})")
            if got.statuses[:1] != [200] or took > GOOD_BOUND_S:
                problems.append(f"{listener.name} listener, round {round_}: with {len(socks)} idle connections open "
                                f"a good request got {got.describe()} in {took:.2f} s (want 200 within "
                                f"{GOOD_BOUND_S:.0f} s)")
        good_path, good = still_serves(listener, key, "flood")
        arrivals, arrived = arrivals_after_good(hardening_mesh, key, good_path)
        for path in paths:
            if not any(a["path"] == path for a in arrivals):
                problems.append(f"{listener.name} listener: the good request {path} was answered 200 but never "
                                f"arrived at the app")
        seen[f"{listener.name}/good-afterwards"] = good.describe()
        problems += judge_good(listener.name, good, arrived)
    evidence["answers"] = seen
    evidence.samples = len(seen)
    assert not problems, "connection flood: " + "; ".join(problems)
