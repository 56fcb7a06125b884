"""The mesh's own fault injection (Istio ``VirtualService.http[].fault``, Envoy fault filter).

Delay and abort are decided independently, each with probability ``percentage / 100`` (Istio: "delay
and abort faults are independent of one another"); a request can be both delayed and aborted, in which
case the sidecar waits first and then answers the abort status itself (Envoy applies the delay, then
the abort). Defect ``fault_percent_delta`` adds that many points to both percentages, clamped to 0..100.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from meshscenario import FaultInjection
from meshproxy.defects import NONE, Defects


@dataclass(frozen=True, slots=True)
class FaultDecision:
    delay_s: float | None = None
    abort_status: int | None = None

    @property
    def injects(self) -> bool:
        return self.delay_s is not None or self.abort_status is not None


NO_FAULT = FaultDecision()


def _clamped(percentage: float, delta: float) -> float:
    return min(100.0, max(0.0, percentage + delta))


def decide_fault(fault: FaultInjection | None, rng: random.Random, defects: Defects = NONE) -> FaultDecision:
    """The faults one request gets. Draws one random number per configured fault (delay, then abort)."""
    if fault is None:
        return NO_FAULT
    delta = float(defects.param("fault_percent_delta", 0.0))
    delay_s = abort_status = None
    if fault.delay is not None and rng.random() * 100.0 < _clamped(fault.delay.percentage, delta):
        delay_s = fault.delay.fixed_delay
    if fault.abort is not None and rng.random() * 100.0 < _clamped(fault.abort.percentage, delta):
        abort_status = fault.abort.http_status
    if delay_s is None and abort_status is None:
        return NO_FAULT
    return FaultDecision(delay_s, abort_status)
