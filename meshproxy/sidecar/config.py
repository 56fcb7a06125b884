"""Configuration of one sidecar: an immutable ``Snapshot`` per generation, and applying new ones.

Everything a request needs that does not depend on the request is computed once per generation here:
the route table, the effective inbound mTLS mode, the authz set, endpoint lists per (service, version)
and the per-destination state (kept across generations while a destination's policy is unchanged).
The request path reads ``ConfigStore.current`` once and uses that snapshot to the end.

Defects applied here: ``inbound_accepts_plaintext`` and ``plaintext_between_sidecars`` turn a STRICT
inbound into PERMISSIVE; ``permissive_as_strict`` turns a PERMISSIVE inbound into STRICT;
``ignore_authz`` (and ``plaintext_between_sidecars``: no identity on a plaintext hop) drops the
allow-list and ``authz_deny_all`` empties it (every caller gets 403). ``endpoint_never_readmitted``:
an endpoint that was in one generation and left in a later one is kept out of every generation after,
so a restarted sidecar that registers again never gets this caller's traffic back.
"""

from __future__ import annotations

import asyncio
from typing import Mapping

from meshscenario import MtlsMode, Scenario, parse_scenario
from meshproxy.policy.router import RouteTable
from meshproxy.sidecar.destinations import Destination
from meshproxy.sidecar.health import HealthProber
from meshproxy.sidecar.metrics import Metrics
from meshproxy.defects import Defects


class Snapshot:
    def __init__(self, generation: int, version: int, scenario: Scenario, endpoints: Mapping[str, Mapping],
                 own_service: str, destinations: dict[str, Destination], defects: Defects):
        self.generation = generation
        self.version = version
        self.scenario = scenario
        self.endpoints = dict(endpoints)
        policy = scenario.policy(own_service) if own_service in {s.name for s in scenario.services} else None
        mode = policy.mtls.mode if policy else MtlsMode.STRICT
        if mode is MtlsMode.STRICT and (defects.active("inbound_accepts_plaintext")
                                        or defects.active("plaintext_between_sidecars")):
            mode = MtlsMode.PERMISSIVE
        elif mode is MtlsMode.PERMISSIVE and defects.active("permissive_as_strict"):
            mode = MtlsMode.STRICT
        self.inbound_mode = mode
        principals = policy.authz.allowed_principals if policy and policy.authz else None
        if defects.active("ignore_authz") or defects.active("plaintext_between_sidecars"):
            # a plaintext hop carries no peer identity: a mesh that accepts it cannot enforce authz
            principals = None
        elif principals is not None and defects.active("authz_deny_all"):
            principals = ()  # an allow-list nobody is on: listed callers are refused too
        self.allowed: frozenset[str] | None = None if principals is None else frozenset(principals)
        self.routes = RouteTable(scenario, defects)
        by_version: dict[tuple[str, str], list[str]] = {}
        for name in sorted(endpoints):
            ep = endpoints[name]
            by_version.setdefault((ep["service"], ep["version"]), []).append(ep["address"])
        self._by_version = by_version
        self.destinations = destinations
        # telemetry (docs/architecture.md "Telemetry"): who is behind an address, what to report
        self.workload_at = {ep["address"]: name for name, ep in endpoints.items()}
        self.service_of = {w.name: w.service for w in scenario.workloads()}
        self.service_of.update((name, ep["service"]) for name, ep in endpoints.items())
        telemetry = scenario.telemetry
        self.access_log = telemetry.access_log
        self.zipkin = telemetry.tracing.zipkin if telemetry.tracing is not None else None
        self.sampling = telemetry.tracing.sampling if telemetry.tracing is not None else None
        self.telemetry_on = self.access_log or self.zipkin is not None

    def endpoints_of(self, service: str, version: str) -> list[str]:
        return self._by_version.get((service, version), [])

    def allows(self, peer_id: str | None) -> bool:
        allowed = self.allowed
        if allowed is None:
            return True
        return peer_id is not None and (peer_id in allowed or "*" in allowed)


class ConfigStore:
    """The current snapshot; ``apply`` builds the next one, reusing unchanged destination state."""

    def __init__(self, own_service: str, metrics: Metrics, defects: Defects, prober: HealthProber | None = None):
        self._own = own_service
        self._metrics = metrics
        self._defects = defects
        self._prober = prober  # active health checks of destinations that configure them (None: off)
        self.current: Snapshot | None = None
        self._never_readmit = defects.active("endpoint_never_readmitted")
        self._left: set[str] = set()  # defect "endpoint_never_readmitted": the endpoints once seen leaving

    def install(self, generation: int, version: int, scenario: Scenario | Mapping,
                endpoints: Mapping[str, Mapping]) -> Snapshot:
        """Install one generation of config (pushed by the control plane or static) as the new
        ``current`` snapshot. (``apply`` is the harness's word: a scenario applied to a whole mesh.)"""
        if not isinstance(scenario, Scenario):
            scenario = parse_scenario(dict(scenario))
        loop = asyncio.get_running_loop()
        if self._never_readmit:
            if self.current is not None:
                self._left |= set(self.current.endpoints) - set(endpoints)
            endpoints = {name: ep for name, ep in endpoints.items() if name not in self._left}
        old = self.current.destinations if self.current else {}
        destinations: dict[str, Destination] = {}
        for service in scenario.services:
            spiffe_id, policy = scenario.spiffe_id(service.name), scenario.policy(service.name)
            kept = old.get(service.name)
            if kept is not None and kept.same_as(spiffe_id, policy):
                destinations[service.name] = kept
            else:
                destinations[service.name] = Destination(service.name, spiffe_id, policy, loop,
                                                         self._metrics, self._defects, self._prober)
        for name, dest in old.items():
            if destinations.get(name) is not dest:
                dest.close()
        snapshot = Snapshot(generation, version, scenario, endpoints, self._own, destinations, self._defects)
        for name, dest in destinations.items():
            dest.set_hosts([ep["address"] for ep in endpoints.values() if ep["service"] == name])
        self.current = snapshot
        return snapshot

    def close(self) -> None:
        if self.current:
            for dest in self.current.destinations.values():
                dest.close()
