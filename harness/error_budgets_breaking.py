"""A first estimate of the breaking suite's timing rules under the noise models of
:mod:`harness.error_budgets` (issue 14, not yet a guard): an event simulation of the
MeshCircuitBreakerMaxPendingRequests sweep (the check's threads, schedule and limits; Envoy's admission:
``max_connections`` requests at the upstream, ``max_pending_requests`` waiting FIFO, the rest answered
503 at once), judged by the check's rule on accepted latency (no accepted request over
``PENDING_MAX_OK_MS``) and its overflow-median rule. Every leg of a request (client → sidecar, sidecar →
echo, echo → sidecar, sidecar → client) takes one overhead draw of the model.
"""

from __future__ import annotations

import heapq

import numpy as np

from harness.error_budgets import Model


def simulate_pending_sweep(model: Model, runs: int, seed: int, *, connections: int = 2, pending: int = 2,
                           levels=(2, 4, 8, 16), hold_s: float = 0.2, step_s: float = 1.0, period_s: float = 0.2,
                           max_ok_s: float = 0.5, overload_p50_s: float = 0.1) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    totals = {"max_ok_latency": 0, "overflow_slow": 0, "any": 0, "runs": runs}
    for _ in range(runs):
        ok_fail = slow_fail = False
        for level in levels:
            o = iter(model.overhead(rng, (4 * 1200,)))
            events: list = []  # (time, kind, thread, sent)
            for j in range(level):
                heapq.heappush(events, (j * period_s / level, 0, j, 0.0))
            busy, queue, overflow = 0, [], []
            next_send = {j: j * period_s / level for j in range(level)}
            while events:
                t, kind, j, sent = heapq.heappop(events)
                if kind == 0:  # the thread sends
                    if t >= step_s:
                        continue
                    heapq.heappush(events, (t + next(o), 1, j, t))
                elif kind == 1:  # the request reaches the sidecar
                    if busy < connections:
                        busy += 1
                        heapq.heappush(events, (t + next(o) + hold_s + next(o), 2, j, sent))
                    elif len(queue) < pending:
                        queue.append((j, sent))
                    else:
                        heapq.heappush(events, (t + next(o), 3, j, sent))  # 503 at once
                elif kind == 2:  # the upstream answer is back at the sidecar: the connection frees
                    busy -= 1
                    heapq.heappush(events, (t + next(o), 4, j, sent))
                    if queue:
                        qj, qsent = queue.pop(0)
                        busy += 1
                        heapq.heappush(events, (t + next(o) + hold_s + next(o), 2, qj, qsent))
                else:  # the answer is at the client: 3 overflow, 4 accepted
                    if kind == 4 and t - sent > max_ok_s:
                        ok_fail = True
                    if kind == 3:
                        overflow.append(t - sent)
                    next_send[j] += period_s
                    heapq.heappush(events, (max(next_send[j], t), 0, j, 0.0))
            if overflow and float(np.median(overflow)) > overload_p50_s:
                slow_fail = True
        totals["max_ok_latency"] += ok_fail
        totals["overflow_slow"] += slow_fail
        totals["any"] += ok_fail or slow_fail
    return totals
