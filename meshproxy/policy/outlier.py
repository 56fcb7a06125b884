"""Passive health: Envoy's consecutive_5xx outlier detection for the endpoints of one destination.

Envoy semantics (outlier_detection_impl.cc, arch overview "Outlier detection"):

- A failure is a 5xx response or an error the router would answer with a 5xx on the upstream's behalf
  (reset, connect failure, timeout). A success resets the host's consecutive count.
- When the count reaches ``consecutive_5xx`` the host is ejected at once (not at the next interval),
  and the count restarts from 0 whether or not the ejection was allowed.
- An ejection is allowed if ``100 · (ejected + 1) / hosts <= max_ejection_percent``, or if no host is
  ejected yet and ``always_eject_one_host`` is set. Envoy before 1.31 always ejected at least one host;
  since 1.31 that is opt-in, so with the default 10 % cap and fewer than 10 hosts nothing is ejected.
- The n-th consecutive ejection of a host lasts ``base_ejection_time · n``, capped at
  ``max_ejection_time`` (Envoy's default 300 s). Un-ejection happens only in ``tick()``, which the sidecar calls every
  ``interval``; so a host comes back between its time and one interval later. Each tick a host spends
  un-ejected lowers its multiplier by one (Envoy decrements it while the host stays healthy).
- Ejected hosts are left out of ``available()``. If every host is ejected the list is empty and the
  sidecar answers 503 ``no healthy upstream``. Envoy would instead enter panic mode below 50 % healthy
  hosts and spread load over all of them; we follow Istio, which sets ``healthy_panic_threshold`` to its
  ``minHealthPercent`` (default 0: panic mode off).

``config=None`` disables detection: nothing is ever ejected.
"""

from __future__ import annotations

from typing import Callable, Sequence

from meshproxy.defects import NONE, Defects
from meshscenario import OutlierDetection


class _Host:
    __slots__ = ("consecutive_failures", "times_ejected", "ejected_until")

    def __init__(self) -> None:
        self.consecutive_failures = 0
        self.times_ejected = 0  # Envoy's ejection-time multiplier
        self.ejected_until: float | None = None


class OutlierDetector:
    """Consecutive-failure ejection of endpoints (``"IP:PORT"`` strings or any hashable name)."""

    def __init__(self, config: OutlierDetection | None, clock: Callable[[], float], defects: Defects = NONE):
        self.config = config
        self._defects = defects
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._ejected: set[str] = set()
        self._host_count = 0  # size of the host set; from available()/set_hosts(), else hosts seen
        self.ejections_total = 0
        self.ejections_overflow = 0  # ejections refused by max_ejection_percent

    @property
    def ejected(self) -> frozenset[str]:
        return frozenset(self._ejected)

    def set_hosts(self, endpoints: Sequence[str]) -> None:
        """The destination's current host set; state of hosts that left is forgotten (as in Envoy)."""
        current = set(endpoints)
        for gone in [h for h in self._hosts if h not in current]:
            del self._hosts[gone]
            self._ejected.discard(gone)
        self._host_count = len(current)

    def record(self, endpoint: str, status: int | None, *, failure: bool) -> bool:
        """Record one try's result; True when this call ejected ``endpoint``.

        ``status`` is the upstream's status (None when there was no response); ``failure`` is True for
        a try that failed without a usable response (reset, connect failure, timeout). A 5xx status
        counts as a failure on its own.
        """
        if self.config is None:
            return False
        host = self._hosts.get(endpoint)
        if host is None:
            host = self._hosts[endpoint] = _Host()
        if not (failure or (status is not None and status >= 500)):
            host.consecutive_failures = 0
            return False
        if host.ejected_until is not None:
            return False  # already out; late answers of in-flight tries change nothing
        host.consecutive_failures += 1
        # defect "eject_late": one failure more than consecutive_5xx before the ejection
        threshold = self.config.consecutive_5xx + (1 if self._defects.active("eject_late") else 0)
        if host.consecutive_failures < threshold:
            return False
        host.consecutive_failures = 0
        if not self._ejection_allowed():
            self.ejections_overflow += 1
            return False
        host.times_ejected += 1
        multiplier = 1 if self._defects.active("ejection_not_multiplied") else host.times_ejected
        duration = min(self.config.base_ejection_time * multiplier, self.config.max_ejection_time)
        if self._defects.active("ejection_never_ends"):
            duration = float("inf")
        host.ejected_until = self._clock() + duration
        self._ejected.add(endpoint)
        self.ejections_total += 1
        return True

    def _ejection_allowed(self) -> bool:
        ejected = len(self._ejected)
        if self._defects.active("max_ejection_percent_ignored"):
            return True
        if ejected == 0 and self.config.always_eject_one_host:
            return True
        hosts = max(self._host_count, len(self._hosts), 1)
        return 100.0 * (ejected + 1) / hosts <= self.config.max_ejection_percent

    def tick(self) -> list[str]:
        """Un-eject hosts whose time is up; call every ``interval``. Returns the hosts brought back."""
        if self.config is None:
            return []
        now = self._clock()
        for host in self._hosts.values():
            if host.ejected_until is None and host.times_ejected > 0:
                host.times_ejected -= 1
        returned = [e for e in self._ejected if now >= self._hosts[e].ejected_until]
        for endpoint in returned:
            host = self._hosts[endpoint]
            host.ejected_until = None
            host.consecutive_failures = 0
            self._ejected.discard(endpoint)
        return sorted(returned)

    def is_ejected(self, endpoint: str) -> bool:
        return endpoint in self._ejected

    def available(self, endpoints: Sequence[str]) -> list[str]:
        """The endpoints not ejected, in the given order; may be empty (then: 503 no healthy upstream)."""
        self._host_count = len(endpoints)
        if not self._ejected:
            return list(endpoints)
        return [e for e in endpoints if e not in self._ejected]
