"""A mesh's request counters, normalised so a check compares any mesh with the ground truth.

``requests`` counts answered requests per :class:`RequestKey` as the mesh reports them (Istio's
``istio_requests_total``: ``reporter`` "source" counts at the caller's proxy once per request the app
sent, with its final code; "destination" at the destination's proxy once per request that reached it,
so each retry try counts). ``destinations`` holds the per-destination counters of the caller's proxy
(Envoy's cluster stats). A snapshot is cumulative since the proxy started: checks use :meth:`minus`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

UNKNOWN = "unknown"


@dataclass(frozen=True, order=True)
class RequestKey:
    reporter: str  # "source" | "destination"
    source_workload: str
    destination_workload: str  # "unknown" when no endpoint was chosen (no route, overflow)
    response_code: int  # 0 when no answer was sent

    def label(self) -> str:
        return f"{self.reporter}: {self.source_workload} -> {self.destination_workload} {self.response_code}"


@dataclass(frozen=True)
class DestinationCounters:
    upstream_requests: int = 0  # every try sent upstream
    retries: int = 0
    overflows: int = 0  # breaker overflows (pending or requests)
    ejections: int = 0  # outlier ejections enforced
    health_check_failures: int = 0
    timeouts: int = 0

    def minus(self, other: "DestinationCounters") -> "DestinationCounters":
        return DestinationCounters(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MetricsSnapshot:
    requests: Mapping[RequestKey, int] = field(default_factory=dict)
    destinations: Mapping[str, DestinationCounters] = field(default_factory=dict)

    def minus(self, before: "MetricsSnapshot") -> "MetricsSnapshot":
        requests = {k: n - before.requests.get(k, 0) for k, n in self.requests.items()}
        destinations = {d: c.minus(before.destinations.get(d, DestinationCounters()))
                        for d, c in self.destinations.items()}
        return MetricsSnapshot({k: n for k, n in requests.items() if n},
                               {d: c for d, c in destinations.items() if any(c.to_json().values())})

    def plus(self, other: "MetricsSnapshot") -> "MetricsSnapshot":
        requests = dict(self.requests)
        for k, n in other.requests.items():
            requests[k] = requests.get(k, 0) + n
        destinations = dict(self.destinations)
        for d, c in other.destinations.items():
            base = destinations.get(d, DestinationCounters())
            destinations[d] = DestinationCounters(**{f.name: getattr(base, f.name) + getattr(c, f.name)
                                                     for f in fields(c)})
        return MetricsSnapshot(requests, destinations)


def request_count_problems(got: Mapping[RequestKey, int], want: Mapping[RequestKey, int]) -> list[str]:
    """Every key whose count differs (exact: a counter has no error to allow for)."""
    problems = []
    for key in sorted(set(got) | set(want)):
        if got.get(key, 0) != want.get(key, 0):
            problems.append(f"{key.label()}: mesh counted {got.get(key, 0)}, ground truth {want.get(key, 0)}")
    return problems
