"""What every shipped locustfile's users have in common (Locust side only).

A :class:`MeshUser` plays the application of the plan's calling workload: Locust's ``--host`` is that
workload's outbound listener, and each request carries the destination service as its Host header,
which is how an app reaches a service through its sidecar. Each user sends ``rate_per_user`` requests
a second (Locust's ``constant_throughput``; 0: back to back). :meth:`MeshUser.send` checks the answer —
status, and that the version answering is one the route declares — and counts which version answered.
"""

from __future__ import annotations

from typing import Callable

from locust import FastHttpUser, constant_throughput

from harness.locust import arguments, recorder
from harness.locust.plan import RouteTraffic, TrafficPlan

Check = Callable[[int, "str | None"], "str | None"]  # (status, answering version) -> failure reason


class MeshUser(FastHttpUser):
    abstract = True
    plan: TrafficPlan

    def on_start(self) -> None:
        self.plan = arguments.plan(self.environment)
        rate = self.plan.rate_per_user
        self._pace = constant_throughput(rate) if rate > 0 else None

    def wait_time(self) -> float:
        return self._pace(self) if self._pace else 0.0

    def send(self, route: RouteTraffic, *, key: str | None = None, check: Check | None = None) -> int:
        """One request along ``route``; returns the status (0 when no HTTP answer came)."""
        headers = {"Host": route.destination, **route.headers}
        if key:
            headers["x-echo-key"] = key
        with self.client.get(route.path, headers=headers, name=route.label, catch_response=True) as response:
            status = response.status_code or 0
            version = _answering_version(response) if status == 200 else None
            reason = (check or expected_answer(route))(status, version)
            if reason:
                response.failure(reason)
            else:
                response.success()
            if version:
                recorder.count(f"{route.label} → {version}")
            return status


def expected_answer(route: RouteTraffic) -> Check:
    """200 from a version the route declares with a weight above 0 (or the route's own injected abort)."""
    def check(status: int, version: str | None) -> str | None:
        if route.abort_status is not None and status == route.abort_status:
            return None
        if status != 200:
            return f"{route.label}: HTTP {status or 'no answer'}"
        if version not in route.versions:
            return f"{route.label}: answered by version {version!r}, declared {', '.join(route.versions)}"
        return None
    return check


def _answering_version(response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("version") if isinstance(body, dict) else None
