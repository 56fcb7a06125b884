"""A slow network (SPEC §4 Chaos, §3 TCP faults): the mesh's timeouts fire as declared over a slow hop.

Destination ``slow`` has one instance. A fault proxy on the hop to it (``HopInterposer``) delays every
chunk the instance sends back by a latency toxic, so the upstream answers at once but its answer (and
the server half of every TLS handshake on that hop) arrives ``latency`` later. Nothing in the echo is
slow: the journal shows each try arrive, and only the network keeps the answer from the mesh. Ground
truth: the client's send and answer times and the journal's arrival times, on one CLOCK_MONOTONIC.

Tolerances as in the resilience suite (suites/resilience/test_timeouts.py): a timeout at T must end
with T − 5 ms ≤ elapsed ≤ T + 150 ms at the client; a per-try timer starts when the try is sent, before
it reaches the echo, so a try may end up to 80 ms sooner than T after its arrival. A per-try timeout
abandons its connection, so the next try opens a new one whose handshake crosses the slow hop: how long
after a cut the next try arrives is connection setup, reported but not judged; the last try's cut is
timed from its arrival, and every earlier one must come no sooner than the per-try timeout. A request
whose connection handshake alone outlasts the route timeout never reaches the echo: the route-timeout
check therefore allows 0 or 1 arrival per request (never more: no retries on that route).
"""

from __future__ import annotations

import uuid

from harness.adapters.base import HopInterposer
from harness.checks import conformance
from harness.faults.bandwidth import Bandwidth
from harness.faults.hop import proxy_on_hop
from harness.faults.latency import Latency
from harness.features import Feature, Level, Profile
from suites.conftest import require

from ._decisions import judge_per_try_timeout, judge_route_timeout
from ._support import arrival_times, journal_mark, send, send_together, workload
from .conftest import SCENARIO

SERVICE = "slow"
ENDPOINT = workload(SERVICE)
EARLY_S = 0.005
GAP_EARLY_S = 0.080
LATE_S = 0.150


def _route(name: str):
    return next(r for r in SCENARIO.routes if r.name == name)


T = _route("slow-timeout").timeout
PER_TRY = _route("slow-per-try").retries
TRIES = PER_TRY.attempts + 1
TIMEOUT_LATENCY_S = 2 * T  # the hop's added latency in the route-timeout check: an answer could come at 2·T
PER_TRY_LATENCY_S = 0.3  # ... in the per-try check: each try's answer would come 300 ms after it was sent
TIMEOUT_REQUESTS = 10
BANDWIDTH_BYTES_PER_S = 48_000  # the bandwidth check's hop: the instance's answers at 48 kB/s
BODY_BYTES = 48_000  # ... and an answer body that takes 1 s to cross it (TLS records add a little)
BANDWIDTH_REQUESTS = 5
PER_TRY_REQUESTS = 3  # one after another: concurrent new connections over the slow hop would queue


def _control(shot, latency_s: float) -> list[str]:
    """The plain route over the same hop must answer 200, no sooner than the toxic allows."""
    if shot.status != 200:
        return [f"the plain route over the slowed hop got {shot.status} ({shot.error}), want 200"]
    if shot.latency_s < latency_s - EARLY_S:
        return [f"the plain route answered in {shot.latency_s * 1e3:.0f} ms over a hop adding "
                f"{latency_s * 1e3:.0f} ms: the latency fault was not on the hop"]
    return []


@conformance(
    short_name="MeshChaosSlowNetworkRouteTimeout",
    description=f"A latency toxic adds {TIMEOUT_LATENCY_S * 1e3:.0f} ms to every answer on the hop to the only "
                f"instance; a route with timeout T = {T * 1e3:.0f} ms: each of {TIMEOUT_REQUESTS} concurrent requests "
                f"arrives at most once at the echo and gets the mesh's 504 with T − {EARLY_S * 1e3:.0f} ms ≤ elapsed ≤ T + "
                f"{LATE_S * 1e3:.0f} ms at the client, while a request on a route without timeout over the same hop "
                f"gets 200 no sooner than the added latency. Deterministic; false failures only from timing.",
    features=[Feature.CHAOS_SLOW_NETWORK, Feature.REQUEST_TIMEOUT], profile=Profile.CHAOS, level=Level.CORE)
def test_slow_network_route_timeout(mesh, chaos_mesh, evidence):
    problems = measure_route_timeout(mesh, chaos_mesh, evidence)
    assert not problems, "route timeout over a slow hop wrong: " + "; ".join(problems)


def measure_route_timeout(mesh, chaos_mesh, evidence) -> list[str]:
    require(mesh, HopInterposer, "slow down the hop to the destination")
    keys = [uuid.uuid4().hex for _ in range(TIMEOUT_REQUESTS)]
    control_key = uuid.uuid4().hex
    mark = journal_mark(chaos_mesh, ENDPOINT)
    with proxy_on_hop(mesh, ENDPOINT) as proxy:
        proxy.add(Latency(TIMEOUT_LATENCY_S))  # downstream: the instance's answers and handshakes
        shots = send_together(mesh, SERVICE, [("/timeout", k) for k in keys] + [("/plain", control_key)])
    shots, control = shots[:-1], shots[-1]
    arrivals = [len(arrival_times(chaos_mesh, ENDPOINT, mark, k)) for k in keys]
    elapsed = [s.latency_s for s in shots]
    evidence.samples = len(shots)
    evidence["statuses"] = [s.status for s in shots]
    evidence["elapsed_ms"] = [round(e * 1e3, 2) for e in elapsed]
    evidence["arrivals_per_request"] = arrivals
    evidence.measure("elapsed_min", min(elapsed), unit="s")
    evidence.measure("elapsed_max", max(elapsed), unit="s")
    evidence.measure("control_elapsed", round(control.latency_s, 4), unit="s")
    evidence.interval("allowed_elapsed", T - EARLY_S, T + LATE_S, confidence=1.0, method="tolerance")
    problems = judge_route_timeout(elapsed, [s.status for s in shots], timeout_s=T, early_s=EARLY_S, late_s=LATE_S,
                                   hop_latency_s=TIMEOUT_LATENCY_S)
    if any(n > 1 for n in arrivals):
        problems.append(f"arrivals at the echo per request were {arrivals}, want at most 1 each (no retries)")
    return problems + _control(control, TIMEOUT_LATENCY_S)


@conformance(
    short_name="MeshChaosSlowNetworkPerTryTimeout",
    description=f"A latency toxic adds {PER_TRY_LATENCY_S * 1e3:.0f} ms to every answer on the hop to the only "
                f"instance; a route with per_try_timeout {PER_TRY.per_try_timeout * 1e3:.0f} ms, attempts="
                f"{PER_TRY.attempts} on reset: for each of {PER_TRY_REQUESTS} sequential requests the echo sees exactly "
                f"{TRIES} tries, each try after the first arrives no sooner than per_try_timeout − "
                f"{GAP_EARLY_S * 1e3:.0f} ms after the one before ({GAP_EARLY_S * 1e3:.0f} ms for a try's transit to "
                f"the echo), and the client gets 504 within per_try_timeout −{GAP_EARLY_S * 1e3:.0f}/+"
                f"{LATE_S * 1e3:.0f} ms of the last try's arrival. Deterministic; false failures only from timing.",
    features=[Feature.CHAOS_SLOW_NETWORK, Feature.PER_TRY_TIMEOUT], profile=Profile.CHAOS, level=Level.CORE)
def test_slow_network_per_try_timeout(mesh, chaos_mesh, evidence):
    problems = measure_per_try_timeout(mesh, chaos_mesh, evidence)
    assert not problems, "per-try timeout over a slow hop wrong: " + "; ".join(problems)


def measure_per_try_timeout(mesh, chaos_mesh, evidence) -> list[str]:
    require(mesh, HopInterposer, "slow down the hop to the destination")
    keys = [uuid.uuid4().hex for _ in range(PER_TRY_REQUESTS)]
    mark = journal_mark(chaos_mesh, ENDPOINT)
    with proxy_on_hop(mesh, ENDPOINT) as proxy:
        proxy.add(Latency(PER_TRY_LATENCY_S))
        shots = [send(mesh, SERVICE, "/per-try", k) for k in keys]
    arrivals = [arrival_times(chaos_mesh, ENDPOINT, mark, k) for k in keys]
    gaps = [round((b - a) / 1e6, 1) for ts in arrivals for a, b in zip(ts, ts[1:])]
    last = [round((s.done_ns - ts[-1]) / 1e6, 1) for s, ts in zip(shots, arrivals) if ts]
    evidence.samples = len(shots)
    evidence["statuses"] = [s.status for s in shots]
    evidence["tries_per_request"] = [len(ts) for ts in arrivals]
    evidence["gaps_between_tries_ms"] = gaps
    evidence["last_try_to_answer_ms"] = last
    if gaps:
        evidence.measure("gap_min", min(gaps) / 1e3, unit="s")
        evidence.measure("gap_max", max(gaps) / 1e3, unit="s")
    evidence.interval("allowed_last_try", PER_TRY.per_try_timeout - GAP_EARLY_S, PER_TRY.per_try_timeout + LATE_S,
                      confidence=1.0, method="tolerance")
    return judge_per_try_timeout([(s.status, s.done_ns, ts) for s, ts in zip(shots, arrivals)],
                                 per_try_s=PER_TRY.per_try_timeout, tries=TRIES, early_s=GAP_EARLY_S, late_s=LATE_S)


@conformance(
    short_name="MeshChaosSlowNetworkBandwidthTimeout",
    description=f"A bandwidth toxic limits the answers on the hop to the only instance to "
                f"{BANDWIDTH_BYTES_PER_S / 1e3:.0f} kB/s and the echo answers {BODY_BYTES / 1e3:.0f} kB (1 s on that "
                f"hop); a route with timeout T = {T * 1e3:.0f} ms, which spans the whole answer (Envoy: until the "
                f"response is complete): each of {BANDWIDTH_REQUESTS} concurrent requests ends with T − "
                f"{EARLY_S * 1e3:.0f} ms ≤ elapsed ≤ T + {LATE_S * 1e3:.0f} ms, as the mesh's 504 or, for a mesh that "
                f"had begun to stream the answer, a cut one — never a complete 200; a request on a route without "
                f"timeout over the same hop gets the whole body, no sooner than the bandwidth allows. "
                f"Deterministic; false failures only from timing.",
    features=[Feature.CHAOS_SLOW_NETWORK, Feature.REQUEST_TIMEOUT], profile=Profile.CHAOS, level=Level.EXTENDED)
def test_slow_network_bandwidth_timeout(mesh, chaos_mesh, evidence):
    problems = measure_bandwidth_timeout(mesh, chaos_mesh, evidence)
    assert not problems, "route timeout over a narrow hop wrong: " + "; ".join(problems)


def measure_bandwidth_timeout(mesh, chaos_mesh, evidence) -> list[str]:
    require(mesh, HopInterposer, "narrow the hop to the destination")
    keys = [uuid.uuid4().hex for _ in range(BANDWIDTH_REQUESTS)]
    control_key = uuid.uuid4().hex
    echo = chaos_mesh.echo(ENDPOINT)
    for key in [*keys, control_key]:
        echo.program_sync(key, [], default={"body_bytes": BODY_BYTES})
    transfer_s = BODY_BYTES / BANDWIDTH_BYTES_PER_S
    with proxy_on_hop(mesh, ENDPOINT) as proxy:
        proxy.add(Bandwidth(BANDWIDTH_BYTES_PER_S))  # downstream: the instance's answers and handshakes
        shots = send_together(mesh, SERVICE, [("/timeout", k) for k in keys] + [("/plain", control_key)])
    shots, control = shots[:-1], shots[-1]
    elapsed = [s.latency_s for s in shots]
    # a cut stream (no complete answer) counts as the timeout's answer, as the mesh's 504 does
    statuses = [504 if s.status is None else s.status for s in shots]
    evidence.samples = len(shots)
    evidence["statuses"] = [s.status for s in shots]
    evidence["errors"] = [s.error for s in shots if s.error]
    evidence["elapsed_ms"] = [round(e * 1e3, 2) for e in elapsed]
    evidence.measure("elapsed_min", min(elapsed), unit="s")
    evidence.measure("elapsed_max", max(elapsed), unit="s")
    evidence.measure("control_elapsed", round(control.latency_s, 4), unit="s")
    evidence.interval("allowed_elapsed", T - EARLY_S, T + LATE_S, confidence=1.0, method="tolerance")
    return (judge_route_timeout(elapsed, statuses, timeout_s=T, early_s=EARLY_S, late_s=LATE_S,
                                hop_latency_s=transfer_s)
            + _control(control, transfer_s))
