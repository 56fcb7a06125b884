"""Weight shift (SPEC §4 Routing): a new split takes effect within a measured convergence time.

The route ``/shift`` starts at v1 100 / v2 0. While 8 threads keep sending to it, the check applies
v1 0 / v2 100 and restores the suite's scenario afterwards. With weights 100/0 and 0/100 every answer
is deterministic, so no statistics are needed:

- convergence time = from the start of ``apply`` to the send time of the first request from which on
  every request (by send time) was answered by v2, confirmed by ``CONFIRM`` consecutive v2 answers;
- it must be at most ``MAX_CONVERGENCE_S``; no request sent after ``apply`` returned (the adapter's "in
  effect") may still reach v1; errors (no HTTP answer, or a 5xx) are held to the routing suite's errors
  rule (``_support.ERRORS``: tolerated up to 0.1% of requests; a correct mesh fails it with probability
  ≤ 0.01%), and any other non-echo answer fails at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from harness.adapters.base import HttpRequest
from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import CLIENT, DESTINATION, ERRORS, THREADS, describe, is_error, version_of
from .conftest import SCENARIO

PATH = "/shift"
CONFIRM = 200  # consecutive v2 answers that show the new split holds (a 1% v1 leak survives 200 with p 13%)
MAX_CONVERGENCE_S = 5.0  # tolerance: the reference mesh converges in one config push (~0.1 s)
RUN_LIMIT_S = 12.0  # bound of the whole check (a converging mesh needs ~1 s of it)


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request was sent
    version: str | None
    detail: str
    error: bool = False  # no HTTP answer or a 5xx: the errors rule's count


def _shifted(scenario):
    """The suite's scenario with the /shift route's weights swapped to v1 0 / v2 100."""
    routes = [r.model_copy(update={"backends": [b.model_copy(update={"weight": 100 - b.weight})
                                                for b in r.backends]})
              if r.match.path_prefix == PATH else r for r in scenario.routes]
    return scenario.model_copy(update={"routes": routes})


class _Traffic:
    """``THREADS`` senders to ``PATH`` until stopped or ``RUN_LIMIT_S`` passed; answers by send time."""

    def __init__(self, mesh):
        self.mesh = mesh
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.began = time.monotonic()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _run(self):
        request = HttpRequest(host=DESTINATION, path=PATH)
        while not self.stop.is_set() and time.monotonic() - self.began < RUN_LIMIT_S:
            sent = time.monotonic()
            response = self.mesh.send(CLIENT, request)
            with self._lock:
                self.answers.append(Answer(sent, version_of(response), describe(response), is_error(response)))

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return sorted(self.answers, key=lambda a: a.sent)

    def wait(self, condition, what: str) -> list[Answer]:
        """Poll the answers (every 10 ms) until ``condition(answers)``; AssertionError at the limit."""
        while True:
            answers = self.snapshot()
            if condition(answers):
                return answers
            if time.monotonic() - self.began >= RUN_LIMIT_S:
                raise AssertionError(f"{what} not seen within {RUN_LIMIT_S} s ({len(answers)} answers)")
            time.sleep(0.01)  # polling interval of an observable condition


def _converged_from(answers: list[Answer], since: float) -> int | None:
    """Index of the first answer sent after ``since`` from which on all are v2, if ``CONFIRM`` follow."""
    start = None
    for i, a in enumerate(answers):
        if a.sent < since:
            continue
        if a.version != "v2":
            start = None
        elif start is None:
            start = i
    return start if start is not None and len(answers) - start >= CONFIRM else None


@conformance(
    short_name="MeshWeightShift",
    description=f"Shifting a route from v1 100/v2 0 to v1 0/v2 100 under constant load takes effect "
                f"within {MAX_CONVERGENCE_S:.0f} s of apply (measured, reported), confirmed by {CONFIRM} "
                f"consecutive v2 answers; none sent after apply returned reaches v1; errors rule: "
                f"{ERRORS.describe()}; any other non-echo answer fails it.",
    features=[Feature.WEIGHT_SHIFT, Feature.WEIGHTED_ROUTING], profile=Profile.ROUTING, level=Level.CORE)
def test_weight_shift(mesh, routing_mesh, evidence):
    with _Traffic(mesh) as traffic:
        before = traffic.wait(lambda a: len(a) >= 50, "50 answers before the shift")
        old = {a.version for a in before}
        evidence["versions_before_shift"] = sorted(map(str, old))
        assert old == {"v1"}, f"before the shift /shift was answered by {old}, want only v1"
        applied_at = time.monotonic()
        try:
            apply_s = mesh.apply(_shifted(SCENARIO))
            in_effect_at = applied_at + apply_s
            answers = traffic.wait(lambda a: _converged_from(a, applied_at) is not None,
                                   f"{CONFIRM} consecutive v2 answers after the shift")
        finally:
            traffic.stop.set()
            mesh.apply(SCENARIO)  # restore the suite's scenario for the other checks
    start = _converged_from(answers, applied_at)
    convergence = max(0.0, answers[start].sent - applied_at)
    after = [a for a in answers if a.sent >= applied_at]
    failed = [a.detail for a in answers if a.version is None and a.error]
    wrong = [a.detail for a in answers if a.version is None and not a.error]
    late_v1 = [a for a in answers if a.sent >= in_effect_at and a.version == "v1"]
    evidence.samples = len(answers)
    evidence.measure("convergence_time", round(convergence, 4), unit="s")
    evidence.measure("apply_reported_in_effect", round(apply_s, 4), unit="s")
    evidence["answers_after_apply"] = {v: sum(a.version == v for a in after) for v in ("v1", "v2")}
    evidence["failed_requests"] = len(failed)
    evidence["errors_rule"] = ERRORS.describe()
    evidence.note(ERRORS.verdict(len(failed), len(answers)))
    evidence["v1_after_in_effect"] = len(late_v1)
    step = max(1, len(answers) // 400)  # a readable plot: at most ~400 points
    evidence.plot("weight shift: version answering, by send time", kind="line", xlabel="s since apply",
                  ylabel="1 = v2", data={"x": [round(a.sent - applied_at, 4) for a in answers[::step]],
                                         "series": {"v2": [int(a.version == "v2") for a in answers[::step]]}})
    assert not wrong, f"{len(wrong)} request(s) got a non-echo answer during the shift, e.g. {wrong[0]}"
    assert not ERRORS.exceeded(len(failed), len(answers)), (
        f"{len(failed)} request(s) failed during the shift, more than a correct mesh gives "
        f"({ERRORS.describe()}): {ERRORS.verdict(len(failed), len(answers))}, e.g. {failed[0]}")
    assert not late_v1, (f"{len(late_v1)} request(s) sent after apply returned (in effect at "
                         f"{apply_s:.3f} s) still reached v1")
    assert convergence <= MAX_CONVERGENCE_S, f"convergence took {convergence:.3f} s > {MAX_CONVERGENCE_S} s"
