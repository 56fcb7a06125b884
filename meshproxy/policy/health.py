"""Active health: Envoy's HTTP health-check state machine for the endpoints of one destination.

Pure: the sidecar (meshproxy/sidecar/health.py) sends the probes and feeds their results here; this
module decides which hosts are healthy and when the next probe is due. Envoy semantics
(health_checker_impl.cc ``ActiveHealthCheckSession``, upstream_impl.cc):

- A host starts **unhealthy, pending its first check** (Envoy: "If we are depending on a health
  checker, we initialize to unhealthy", ``FAILED_ACTIVE_HC``; a cluster warms up on the first round).
  The first check that passes makes it healthy at once, whatever ``healthy_threshold`` says ("this
  makes startup faster"). The sidecar probes a new host immediately, so a host that answers is in the
  endpoint set within one probe round trip; a host that fails its first check needs
  ``healthy_threshold`` passes like any unhealthy host.
- A probe passes only on status 200 (Envoy's default ``expected_statuses``).
- Another status is an *active* failure: the host is unhealthy at once, ``unhealthy_threshold`` does not
  apply ("the upstream host can return 503 if it wants to immediately notify downstream hosts to no
  longer forward traffic to it"). A timeout, a connect failure or a reset is a *network* failure: the
  host goes unhealthy at the ``unhealthy_threshold``-th consecutive one. Either kind resets the
  consecutive pass count; a pass resets the failure count.
- An unhealthy host is healthy again after ``healthy_threshold`` consecutive passes.
- Each probe is cut after ``timeout``; the next starts ``interval`` after the previous one ended (Envoy
  arms its interval timer when a result comes in; the unhealthy/edge intervals and jitter default to
  ``interval`` and 0). Envoy's ``no_traffic_interval`` (60 s until a cluster has had traffic) is not
  modelled: the scenario has no such field, so hosts are probed every ``interval`` from the start.
- Unhealthy hosts are left out of :meth:`HealthChecker.available`, which the outbound composes with
  ``OutlierDetector.available`` (Envoy: a host is used only if neither ejected nor failing active HC).
  No panic mode: with every host out the sidecar answers 503 ``no healthy upstream`` (Istio's
  ``minHealthPercent`` 0, as in meshproxy/policy/outlier.py).

``config=None`` disables active health checking: every host is healthy and nothing is probed.

Defects (meshproxy/defects.py): ``health_check_ignored``: probes run and the state is kept, but
``available`` never leaves a host out; ``healthy_threshold_ignored``: one passing probe brings an
unhealthy host back, whatever ``healthy_threshold`` says.
"""

from __future__ import annotations

from enum import Enum
from typing import Sequence

from meshproxy.defects import NONE, Defects
from meshscenario import HealthCheck

EXPECTED_STATUS = 200


class ProbeResult(str, Enum):
    PASSED = "passed"
    ACTIVE_FAILURE = "active_failure"  # the host answered, with a status other than 200
    NETWORK_FAILURE = "network_failure"  # timeout, connect failure, reset: no usable answer


def classify(status: int | None) -> ProbeResult:
    """The result of one probe: ``status`` of the answer, or None when there was none."""
    if status is None:
        return ProbeResult.NETWORK_FAILURE
    return ProbeResult.PASSED if status == EXPECTED_STATUS else ProbeResult.ACTIVE_FAILURE


class _Host:
    __slots__ = ("healthy", "first_check", "passes", "failures")

    def __init__(self) -> None:
        self.healthy = False  # Envoy's FAILED_ACTIVE_HC until the first check passes
        self.first_check = True
        self.passes = 0  # consecutive, while unhealthy
        self.failures = 0  # consecutive network failures, while healthy


class HealthChecker:
    """Health of the endpoints (``"IP:PORT"`` strings or any hashable name) of one destination."""

    def __init__(self, config: HealthCheck | None, defects: Defects = NONE):
        self.config = config
        self._hosts: dict[str, _Host] = {}
        self._unhealthy: set[str] = set()
        self._ignored = defects.active("health_check_ignored")
        self._one_pass_back = defects.active("healthy_threshold_ignored")
        self.transitions = 0  # healthy <-> unhealthy changes, first checks included

    @property
    def enabled(self) -> bool:
        return self.config is not None

    @property
    def unhealthy(self) -> frozenset[str]:
        return frozenset(self._unhealthy)

    def set_hosts(self, endpoints: Sequence[str]) -> list[str]:
        """The destination's current host set; returns the hosts new to it (probe them now). State of
        hosts that left is forgotten, so a host that comes back starts over, as in Envoy."""
        if self.config is None:
            return []
        current = list(dict.fromkeys(endpoints))
        keep = set(current)
        for gone in [h for h in self._hosts if h not in keep]:
            del self._hosts[gone]
            self._unhealthy.discard(gone)
        added = [h for h in current if h not in self._hosts]
        for host in added:
            self._hosts[host] = _Host()
            self._unhealthy.add(host)
        return added

    def record(self, endpoint: str, result: ProbeResult) -> bool:
        """Apply one probe's result; True when it changed the host's health. Unknown hosts (results of
        probes to a host that has left) change nothing."""
        host = self._hosts.get(endpoint)
        if self.config is None or host is None:
            return False
        first, host.first_check = host.first_check, False
        if result is ProbeResult.PASSED:
            host.failures = 0
            if host.healthy:
                return False
            host.passes += 1
            if not first and not self._one_pass_back and host.passes < self.config.healthy_threshold:
                return False
            host.healthy, host.passes = True, 0
            self._unhealthy.discard(endpoint)
        else:
            host.passes = 0
            if not host.healthy:
                return False
            host.failures += 1
            if result is ProbeResult.NETWORK_FAILURE and host.failures < self.config.unhealthy_threshold:
                return False
            host.healthy, host.failures = False, 0
            self._unhealthy.add(endpoint)
        self.transitions += 1
        return True

    def is_healthy(self, endpoint: str) -> bool:
        return endpoint not in self._unhealthy

    def next_probe_in(self) -> float:
        """Seconds from a probe's result (or timeout) to the next probe of that host."""
        return self.config.interval if self.config is not None else float("inf")

    def available(self, endpoints: Sequence[str]) -> list[str]:
        """The endpoints not failing active health checks, in the given order; may be empty."""
        if not self._unhealthy or self._ignored:
            return list(endpoints)
        return [e for e in endpoints if e not in self._unhealthy]
