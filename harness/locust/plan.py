"""The traffic of a load run, as data: what each Locust user sends, where, and what it should get back.

Built from a scenario and where its workloads live (the state mapping of docs/architecture.md's "State
file", which every adapter's deployment carries): the calling workload and its outbound listener, and
for every destination that workload may call, each route with one request that this route — and no
route before it — matches, the route's declared weights and retries, and the echo control address of
every instance behind it (the retries locustfile injects faults there). The plan travels to the Locust
processes, workers on other hosts included, as JSON in a Locust custom option.

Pure: no I/O, no ``locust`` import (both sides of a run use it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from meshscenario import Route, Scenario

DEFAULT_RATE_PER_USER = 10.0  # requests per second each Locust user sends (Locust's constant_throughput)
_COVERS_503 = {"5xx", "gateway-error"}  # retry_on values under which an upstream 503 is retried


@dataclass(frozen=True)
class RouteTraffic:
    """One route and a request that reaches it."""

    label: str  # the Locust request name: "<destination>/<route name>" or "<destination>#<index>"
    destination: str  # sent as the Host header: the outbound listener picks the destination by it
    path: str
    headers: dict[str, str]  # lower-case names; what the route's header matches need
    weights: dict[str, int]  # declared weight of each backend version
    instances: int  # instances behind the versions with a weight above 0
    retries: int = 0  # retries after the first try (0: the route declares none)
    retries_cover_503: bool = False
    abort_status: int | None = None  # the route injects this status itself: an expected answer
    echo_controls: dict[str, list[str]] = field(default_factory=dict)  # version -> echo control addresses

    @property
    def versions(self) -> list[str]:
        """The versions that should answer (weight above 0)."""
        return [v for v, w in self.weights.items() if w > 0]

    @property
    def recovers_one_failure_per_instance(self) -> bool:
        """With every instance failing a request's first arrival, the retries still reach a success."""
        return self.retries_cover_503 and self.abort_status is None and 1 <= self.instances <= self.retries


@dataclass(frozen=True)
class TrafficPlan:
    source: str  # the workload whose application the Locust users play
    outbound: str  # its outbound listener, "IP:PORT" ("" in a plan built without addresses)
    routes: tuple[RouteTraffic, ...]
    rate_per_user: float = DEFAULT_RATE_PER_USER  # 0: no wait between a user's requests
    skipped: tuple[tuple[str, str], ...] = ()  # (route label, why no request can be sent to it)

    @property
    def canary(self) -> RouteTraffic | None:
        """The first route that splits traffic over two or more versions by weight."""
        return next((r for r in self.routes if len(r.versions) >= 2 and r.abort_status is None), None)

    @property
    def retrying(self) -> tuple[RouteTraffic, ...]:
        """Routes whose retries recover from one injected failure per instance."""
        return tuple(r for r in self.routes if r.recovers_one_failure_per_instance)

    def lacks(self, locustfile: str) -> str | None:
        """Why the shipped ``locustfile`` (canary, retries, routes) would have nothing to send, or None."""
        if locustfile == "canary" and self.canary is None:
            return "the scenario has no route that splits a destination over two or more versions by weight"
        if locustfile == "retries" and not self.retrying:
            return "the scenario has no route whose retries cover 503 and number at least the instances behind it"
        if locustfile == "routes" and not self.routes:
            return f"no route {self.source} can send to"
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrafficPlan":
        data = json.loads(text)
        routes = tuple(RouteTraffic(**r) for r in data.pop("routes"))
        skipped = tuple(tuple(s) for s in data.pop("skipped", ()))
        return cls(routes=routes, skipped=skipped, **data)


def build_plan(scenario: "Scenario", workloads: Mapping[str, Mapping[str, Any]] | None = None, *,
               source: str | None = None, rate_per_user: float = DEFAULT_RATE_PER_USER) -> TrafficPlan:
    """The plan for ``scenario``; ``workloads`` (state mapping by workload name) adds the addresses."""
    source = source or default_source(scenario)
    by_name = {w.name: w for w in scenario.workloads()}
    if source not in by_name:
        raise ValueError(f"no workload {source!r} in the scenario (has {', '.join(by_name)})")
    caller = by_name[source]
    routes: list[RouteTraffic] = []
    skipped: list[tuple[str, str]] = []
    for service in scenario.services:
        if service.name == caller.service or not _allows(scenario, service.name, caller.spiffe_id):
            continue
        declared = scenario.routes_for(service.name)
        for index, route in enumerate(declared):
            label = _label(route, index, len(declared))
            request = request_for(route)
            if isinstance(request, str):
                skipped.append((label, request))
                continue
            path, headers = request
            first = next(r for r in declared if r is route or matches(r, path, headers))
            if first is not route:
                taken_by = _label(first, declared.index(first), len(declared))
                skipped.append((label, f"its request is taken by an earlier route ({taken_by})"))
                continue
            routes.append(_traffic(scenario, route, label, path, headers, workloads or {}))
    outbound = str((workloads or {}).get(source, {}).get("outbound", ""))
    return TrafficPlan(source=source, outbound=outbound, routes=tuple(routes), rate_per_user=rate_per_user,
                       skipped=tuple(skipped))


def default_source(scenario: "Scenario") -> str:
    """The first workload of a service that no route points at (the client), else the first workload."""
    destinations = {r.destination for r in scenario.routes}
    workloads = scenario.workloads()
    return next((w.name for w in workloads if w.service not in destinations), workloads[0].name)


def request_for(route: "Route") -> tuple[str, dict[str, str]] | str:
    """(path, headers) that the route's match accepts, or why none can be made."""
    headers: dict[str, str] = {}
    for h in route.match.headers:
        name = h.name.lower()
        if h.exact is not None:
            headers[name] = h.exact
        elif h.prefix is not None:
            headers[name] = h.prefix
        elif h.present is not None:
            if h.present:
                headers[name] = "1"
        else:
            return f"header {h.name} matches a regex; write a locustfile that sends a matching value"
    return route.match.path_prefix, headers


def matches(route: "Route", path: str, headers: Mapping[str, str]) -> bool:
    """Whether a request with this path and these (lower-case) headers matches ``route``."""
    if not path.startswith(route.match.path_prefix):
        return False
    for h in route.match.headers:
        value = headers.get(h.name.lower())
        if h.present is not None:
            ok = (value is not None) == h.present
        elif value is None:
            ok = False
        elif h.exact is not None:
            ok = value == h.exact
        elif h.prefix is not None:
            ok = value.startswith(h.prefix)
        else:
            ok = re.fullmatch(h.regex or "", value) is not None
        if not ok:
            return False
    return True


def _traffic(scenario: "Scenario", route: "Route", label: str, path: str, headers: dict[str, str],
             workloads: Mapping[str, Mapping[str, Any]]) -> RouteTraffic:
    versions = {v.name: v.instances for v in scenario.service(route.destination).versions}
    # a route with no backends spreads over every version with equal weight (meshproxy/policy/router.py)
    weights = {b.version: b.weight for b in route.backends} or {v: 1 for v in versions}
    retries = route.retries
    covers = bool(retries) and (bool({r.value for r in retries.retry_on} & _COVERS_503)
                                or 503 in retries.retriable_status_codes)
    abort = route.fault.abort if route.fault else None
    controls: dict[str, list[str]] = {}
    for name, w in workloads.items():
        if w.get("service") == route.destination and "echo_control" in w:
            controls.setdefault(str(w["version"]), []).append(str(w["echo_control"]))
    return RouteTraffic(
        label=label, destination=route.destination, path=path, headers=headers, weights=weights,
        instances=sum(versions.get(v, 0) for v, weight in weights.items() if weight > 0),
        retries=retries.attempts if retries else 0, retries_cover_503=covers,
        abort_status=abort.http_status if abort else None, echo_controls=controls)


def _label(route: "Route", index: int, count: int) -> str:
    if route.name:
        return f"{route.destination}/{route.name}"
    return route.destination if count == 1 else f"{route.destination}#{index}"


def _allows(scenario: "Scenario", destination: str, caller: str) -> bool:
    authz = scenario.policy(destination).authz
    principals = authz.allowed_principals if authz else None
    return principals is None or caller in principals or "*" in principals
