"""The scenario as one workload's proxy sees it: a plain view model the config templates render.

Everything a template needs is computed here, once, in Python (weights, timeouts in milliseconds,
which retry conditions the proxy can name, SAN patterns), so the Jinja templates stay declarative and
the same view feeds the HAProxy and the nginx renderer. Addresses follow docs/architecture.md: the
workload's own IP, inbound 15006, outbound 15001, admin 15000, app 8080.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from meshscenario import Backend, MtlsMode, Retries, Route, Scenario, Workload


@dataclass(frozen=True)
class Server:
    name: str  # workload name
    address: str  # "IP:PORT" of its inbound (or of a proxy interposed on the hop)
    version: str
    weight: int
    spiffe_id: str


@dataclass(frozen=True)
class HeaderCondition:
    name: str  # lower-case
    kind: str  # exact | prefix | regex | present
    value: str | None


@dataclass(frozen=True)
class RouteView:
    id: str  # "r0", "r1", ... unique within one config
    name: str
    destination: str
    path_prefix: str
    headers: tuple[HeaderCondition, ...]
    servers: tuple[Server, ...]
    tls: bool  # the destination's inbound speaks mTLS (its mode is not DISABLE)
    expected_spiffe_id: str
    server_name: str  # the CN every server of the destination has (see identity.py)
    timeout_ms: int | None  # each try is cut after this (per-try timeout, else the route timeout)
    route_timeout_ms: int | None
    retries: int  # retries after the first try
    retry_on: tuple[str, ...]  # the scenario's conditions, Envoy names
    retry_codes: tuple[int, ...]  # statuses to retry on
    per_try_timeout_ms: int | None
    abort_status: int | None
    abort_per_million: int  # percentage × 10,000
    lb_policy: str
    hash_header: str | None
    health_path: str | None
    health_interval_ms: int | None
    health_timeout_ms: int | None
    health_fall: int
    health_rise: int
    # circuit breaker thresholds of the destination (None: the policy sets none)
    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None


@dataclass(frozen=True)
class DestinationView:
    service: str
    namespace: str
    hosts: tuple[str, ...]  # Host header values (port stripped) that select it
    routes: tuple[RouteView, ...]


@dataclass(frozen=True)
class ProxyView:
    """Everything one workload's proxy config says."""

    workload: str
    service: str
    spiffe_id: str
    trust_domain: str
    ip: str
    inbound_port: int
    outbound_port: int
    admin_port: int
    app: str
    mode: str  # STRICT | PERMISSIVE | DISABLE
    allowed_principals: tuple[str, ...] | None  # None: everybody; "*": any authenticated caller
    known_principals: tuple[str, ...]  # every SPIFFE ID of the scenario, for XFCC
    destinations: tuple[DestinationView, ...]
    generation: int
    work_dir: str
    svid_path: str  # PEM: certificate then key (one file, so a rename swaps both at once)
    bundle_path: str
    access_log: bool = False  # scenario.telemetry.access_log: JSON lines (thirdparty/access_log.py)


INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT, APP_PORT = 15006, 15001, 15000, 8080


def server_name(service: str, namespace: str) -> str:
    """The name a caller verifies on the destination's certificate (its subject CN)."""
    return f"{service}.{namespace}.svc"


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, math.ceil(seconds * 1000))


def _server_weights(route_backends: list[tuple[str, int]], instances: Mapping[str, int]) -> dict[str, int]:
    """Per-server weight so each version's share is weight / total whatever its instance count."""
    common = math.lcm(*[instances[v] for v, _ in route_backends]) if route_backends else 1
    return {v: w * common // instances[v] for v, w in route_backends}


def _route_view(rid: str, route: Route, scenario: Scenario, addresses: Mapping[str, str]) -> RouteView:
    dest = scenario.service(route.destination)
    policy = scenario.policy(dest.name)
    instances = {v.name: v.instances for v in dest.versions}
    weights = _server_weights([(b.version, b.weight) for b in route.backends], instances)
    servers = tuple(
        Server(name=w.name, address=addresses[w.name], version=w.version, weight=weights[w.version],
               spiffe_id=w.spiffe_id)
        for w in scenario.workloads()
        if w.service == dest.name and w.version in weights and w.name in addresses)  # absent: withdrawn
    retries: Retries | None = route.retries
    per_try = retries.per_try_timeout if retries else None
    timeout = min(t for t in (per_try, route.timeout) if t is not None) if (per_try or route.timeout) else None
    abort = route.fault.abort if route.fault else None
    hc = policy.load_balancing.health_check
    cb = policy.circuit_breaker
    return RouteView(
        id=rid, name=route.name or rid, destination=dest.name, path_prefix=route.match.path_prefix,
        headers=tuple(HeaderCondition(h.name.lower(), kind, getattr(h, kind) if kind != "present" else None)
                      for h in route.match.headers
                      for kind in ("exact", "prefix", "regex", "present") if getattr(h, kind) is not None),
        servers=servers, tls=policy.mtls.mode is not MtlsMode.DISABLE,
        expected_spiffe_id=scenario.spiffe_id(dest.name), server_name=server_name(dest.name, dest.namespace),
        timeout_ms=_ms(timeout), route_timeout_ms=_ms(route.timeout),
        retries=retries.attempts if retries else 0,
        retry_on=tuple(r.value for r in retries.retry_on) if retries else (),
        retry_codes=tuple(retries.retriable_status_codes) if retries else (),
        per_try_timeout_ms=_ms(per_try),
        abort_status=abort.http_status if abort else None,
        abort_per_million=round(abort.percentage * 10_000) if abort else 0,
        lb_policy=policy.load_balancing.policy.value, hash_header=policy.load_balancing.hash_header,
        health_path=hc.path if hc else None, health_interval_ms=_ms(hc.interval) if hc else None,
        health_timeout_ms=_ms(hc.timeout) if hc else None,
        health_fall=hc.unhealthy_threshold if hc else 1, health_rise=hc.healthy_threshold if hc else 1,
        max_connections=cb.max_connections if cb else None,
        max_pending_requests=cb.max_pending_requests if cb else None,
        max_requests=cb.max_requests if cb else None)


def proxy_view(scenario: Scenario, workload: Workload, *, ip: str, addresses: Mapping[str, str],
               generation: int, work_dir: Path, bundle_path: Path) -> ProxyView:
    """The view of ``workload``'s proxy. ``addresses`` maps every workload to the inbound address its
    callers should use (normally ``IP:15006``; a hop interposer substitutes its proxy); a workload
    missing from it is withdrawn from its service's servers."""
    policy = scenario.policy(workload.service)
    destinations = []
    rid = 0
    for svc in scenario.services:
        routes = []
        for route in scenario.routes_for(svc.name):
            if not route.backends:  # a route naming no backends spreads evenly over every version
                route = route.model_copy(update={"backends": [Backend(version=v.name) for v in svc.versions]})
            routes.append(_route_view(f"r{rid}", route, scenario, addresses))
            rid += 1
        hosts = (svc.name, f"{svc.name}.{svc.namespace}", f"{svc.name}.{svc.namespace}.svc",
                 f"{svc.name}.{svc.namespace}.svc.cluster.local")
        destinations.append(DestinationView(service=svc.name, namespace=svc.namespace, hosts=hosts, routes=tuple(routes)))
    authz = policy.authz.allowed_principals if policy.authz else None
    return ProxyView(
        workload=workload.name, service=workload.service, spiffe_id=workload.spiffe_id,
        trust_domain=scenario.trust_domain, ip=ip, inbound_port=INBOUND_PORT, outbound_port=OUTBOUND_PORT,
        admin_port=ADMIN_PORT, app=f"{ip}:{APP_PORT}", mode=policy.mtls.mode.value,
        allowed_principals=tuple(authz) if authz is not None else None,
        known_principals=tuple(sorted({scenario.spiffe_id(s.name) for s in scenario.services} | set(authz or ())
                                      - {"*"})),
        destinations=tuple(destinations), generation=generation, work_dir=str(work_dir),
        svid_path=str(Path(work_dir) / "svid.pem"), bundle_path=str(bundle_path),
        access_log=scenario.telemetry.access_log)



def with_weights_capped(view: ProxyView, cap: int, policies: tuple[str, ...] | None = None) -> ProxyView:
    """Routes whose server weights exceed ``cap`` scaled down proportionally (rounded; a non-zero weight
    stays at least 1), only for routes whose LB policy is in ``policies`` (all when None)."""
    destinations = []
    for d in view.destinations:
        routes = []
        for r in d.routes:
            top = max((s.weight for s in r.servers), default=0)
            if top > cap and (policies is None or r.lb_policy in policies):
                r = dataclasses.replace(r, servers=tuple(
                    dataclasses.replace(s, weight=max(1 if s.weight else 0, round(s.weight * cap / top)))
                    for s in r.servers))
            routes.append(r)
        destinations.append(dataclasses.replace(d, routes=tuple(routes)))
    return dataclasses.replace(view, destinations=tuple(destinations))
