"""The route deadline and each try's timeout inside it (Envoy router timeouts).

Envoy: the route ``timeout`` is "an outer time limit for a request, including any retries", so it
spans every try and every backoff; when it passes the client gets 504 and nothing is retried. A try's
own limit is ``per_try_timeout`` cut to what is left of the route timeout (Envoy arms the per-try timer
only when it is shorter than the remaining global one). A timeout of 0 disables it, as in Envoy.
The per-try timer starts when the try is sent on a ready connection (Envoy arms it at pool-ready,
envoy#4903): connecting is bounded by the connect timeout and what is left of the route timeout only.
Defect ``ignore_timeout``: no route deadline at all (per-try timeouts still apply); defect
``ignore_per_try_timeout``: no per-try timeout (the route deadline still applies).
"""

from __future__ import annotations

from meshproxy.defects import NONE, Defects


class Deadline:
    """The deadline of one request, started at ``now`` (monotonic seconds from the sidecar's clock)."""

    __slots__ = ("at", "_no_per_try")

    def __init__(self, route_timeout: float | None, now: float, defects: Defects = NONE):
        if route_timeout is None or route_timeout <= 0 or defects.active("ignore_timeout"):
            self.at: float | None = None
        else:
            self.at = now + route_timeout
        self._no_per_try = bool(defects) and defects.active("ignore_per_try_timeout")

    def remaining(self, now: float) -> float | None:
        """Seconds left (0 once passed), or None without a route timeout."""
        if self.at is None:
            return None
        return max(0.0, self.at - now)

    def per_try(self, per_try_timeout: float | None, now: float) -> float | None:
        """The timeout of a try starting at ``now``: min(per_try_timeout, remaining), None if neither."""
        remaining = self.remaining(now)
        if per_try_timeout is None or per_try_timeout <= 0 or self._no_per_try:
            return remaining
        if remaining is None:
            return per_try_timeout
        return min(per_try_timeout, remaining)

    def expired(self, now: float) -> bool:
        return self.at is not None and now >= self.at
