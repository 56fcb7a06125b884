"""Configuration propagation (SPEC §4 Performance): time from apply to effect, seen at the echo.

Route ``canary-flip`` sends everything to v1 (scenario.yaml). While two threads keep calling canary
through client's outbound side, the check applies 0/100, then 100/0, ... ``CHANGES`` times (an even
number, so the suite's scenario is back at the end; it is re-applied in a ``finally`` anyway). One
change's propagation time runs from just before ``apply`` is called to the echo journal's arrival time
of the first request the newly weighted version served (``time.monotonic_ns`` on both sides: one
system-wide clock). The adapter's own "in effect" time (``apply``'s return) is reported beside it.
"""

from __future__ import annotations

import threading
import time
import uuid

from harness.adapters.base import HttpRequest
from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import CLIENT
from .conftest import SCENARIO

CHANGES = 10
SENDERS = 2
SERVICE = "canary"
KEY_HEADER = "x-echo-key"
POLL_S = 0.02
RUN_LIMIT_S = 120.0  # bound of the sending threads, whatever happens


def _weighted(scenario, to_v2: bool):
    routes = [r.model_copy(update={"backends": [b.model_copy(update={"weight": (100 if (b.version == "v2") == to_v2
                                                                                 else 0)})
                                                for b in r.backends]})
              if r.destination == SERVICE else r for r in scenario.routes]
    return scenario.model_copy(update={"routes": routes})


class _Traffic:
    """``SENDERS`` threads calling canary one request after the other until stopped (or RUN_LIMIT_S)."""

    def __init__(self, mesh, key: str):
        self.mesh, self.key = mesh, key
        self.stop = threading.Event()
        self.sent = self.failed = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SENDERS)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _run(self):
        began = time.monotonic()
        request = HttpRequest(host=SERVICE, path="/flip", headers={KEY_HEADER: self.key}, timeout_s=5.0)
        while not self.stop.is_set() and time.monotonic() - began < RUN_LIMIT_S:
            response = self.mesh.send(CLIENT, request)
            with self._lock:
                self.sent += 1
                self.failed += response.status != 200


def nearest_rank(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (p99 of 10 values is the largest: no interpolation invents a value)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-int(q * 100) * len(ordered) // 100) - 1))]


@conformance(
    short_name="MeshConfigPropagation",
    description=f"{CHANGES} route changes (canary 100/0 -> 0/100 -> 100/0 ...) applied while {SENDERS} threads call "
                "canary through client's outbound side; each change's time runs from just before apply to the echo "
                "journal's arrival of the first request the newly weighted version served. Passes when every "
                "change took effect and the p99 (nearest rank: the slowest of 10) is within --propagation-budget "
                "(default 5 s); p50 and the adapter's own apply-to-in-effect time are reported. Deterministic "
                "weights (100/0): no statistics; false failures only from timing.",
    features=[Feature.CONFIG_PROPAGATION], profile=Profile.PERFORMANCE, level=Level.CORE)
def test_config_propagation(mesh, perf_mesh, budgets, evidence):
    problems = measure_propagation(mesh, perf_mesh, evidence, budget_s=budgets.propagation_budget_s)
    assert not problems, "configuration propagation: " + "; ".join(problems)


def measure_propagation(mesh, perf_mesh, evidence, *, budget_s: float) -> list[str]:
    key = uuid.uuid4().hex
    echoes = {"v1": perf_mesh.echo("canary-v1-0"), "v2": perf_mesh.echo("canary-v2-0")}
    marks = {v: e.journal_page_sync(key=key)[1] for v, e in echoes.items()}
    seen_s, adapter_s, problems = [], [], []
    wait_s = max(2 * budget_s, budget_s + 1.0)  # then the change counts as not in effect
    try:
        with _Traffic(mesh, key) as traffic:
            for i in range(CHANGES):
                to_v2 = i % 2 == 0
                version = "v2" if to_v2 else "v1"
                t0 = time.monotonic_ns()
                adapter_s.append(mesh.apply(_weighted(SCENARIO, to_v2)))
                first = None
                deadline = time.monotonic() + wait_s
                while first is None and time.monotonic() < deadline:
                    arrivals, marks[version] = echoes[version].journal_page_sync(key=key, since=marks[version])
                    first = next((a["t_ns"] for a in arrivals if a["t_ns"] >= t0), None)
                    if first is None:
                        time.sleep(POLL_S)  # polling the journal (an observable), bounded by the deadline
                if first is None:
                    problems.append(f"change {i + 1} (all to {version}) not in effect {wait_s:.1f} s after apply: "
                                    f"{version} served no request")
                    break
                seen_s.append((first - t0) / 1e9)
                other = "v1" if to_v2 else "v2"  # skip what the other version served meanwhile
                marks[other] = echoes[other].journal_page_sync(key=uuid.uuid4().hex, since=marks[other])[1]
            sent, failed = traffic.sent, traffic.failed
    finally:
        mesh.apply(SCENARIO)
    if seen_s:
        p50, p99 = nearest_rank(seen_s, 0.50), nearest_rank(seen_s, 0.99)
        evidence.measure("propagation_p50", round(p50, 4), unit="s")
        evidence.measure("propagation_p99", round(p99, 4), unit="s")
        evidence.measure("adapter_in_effect_p50", round(nearest_rank(adapter_s, 0.5), 4), unit="s")
        evidence.measure("budget_p99", budget_s, unit="s")
        evidence.measure("requests_during_changes", sent)
        evidence.measure("failed_requests_during_changes", failed)
        evidence.samples = len(seen_s)
        evidence.plot("time from apply to the first request served by the new route", kind="bar",
                      ylabel="s", data={"labels": [f"change {i + 1}" for i in range(len(seen_s))], "values": seen_s})
        if len(seen_s) == CHANGES and p99 > budget_s:
            problems.append(f"p99 propagation time is {p99:.3f} s (slowest of {CHANGES} changes), over the budget of "
                            f"{budget_s:g} s (p50 {p50:.3f} s)")
    return problems
