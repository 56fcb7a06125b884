"""Outbound routing: Host header -> destination, request -> route, route -> weighted version.

Envoy semantics followed here:

- Virtual hosts: Istio's sidecar config gives each service the domains ``svc``, ``svc.ns``,
  ``svc.ns.svc``, ``svc.ns.svc.<cluster domain>``, each also with ``:port``. Host names are
  case-insensitive (RFC 9110 §4.2.3) and a trailing dot is ignored. Anything else gives ``None``; the
  sidecar answers 404 with ``x-meshproxy-no-route: 1``.
- Routes of one destination are tried in order and the first match wins (Envoy ``RouteConfiguration``).
  A route matches when the path starts with ``path_prefix`` (Envoy ``prefix``: a plain, case-sensitive
  string prefix, so ``/api`` also matches ``/apix``) and every header matcher matches. Header names are
  case-insensitive; values are compared case-sensitively. ``regex`` must match the whole value (Envoy
  ``safe_regex`` is a full match), ``present: true`` needs the header and ``present: false`` needs it
  absent (Envoy ``present_match``).
- Weighted clusters: a backend is chosen with probability ``weight / sum(weights)``; weight 0 is never
  chosen. A route with no backends spreads over all versions of the destination with equal weight.

Defect ``weights`` (a list of ints): replaces the weights of every route with two or more backends,
position by position; backends beyond the list keep their own weight. It must leave a positive weight.
Defects ``ignore_header_match`` / ``ignore_path_prefix``: header matchers / path prefixes are dropped
when the table is built, so they match every request (the first route whose other conditions hold wins).

All the work that does not depend on the request (host table, compiled regexes, cumulative weights) is
done once in the constructor: ``match`` + ``pick_version`` cost about 1 µs (bench/bench_policy.py).
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from itertools import accumulate
from typing import Callable, Mapping

from meshscenario import HeaderMatch, Route, Scenario
from meshproxy.defects import NONE, Defects

KUBERNETES_CLUSTER_DOMAIN = "cluster.local"

_HOST_CACHE_SIZE = 4096
_HeaderTest = Callable[[Mapping[str, str]], bool]


def _header_test(matcher: HeaderMatch) -> _HeaderTest:
    """A closure testing one header matcher against a mapping with lowercase names."""
    name = matcher.name.lower()
    if matcher.exact is not None:
        expected = matcher.exact
        return lambda headers: headers.get(name) == expected
    if matcher.prefix is not None:
        prefix = matcher.prefix
        return lambda headers: (value := headers.get(name)) is not None and value.startswith(prefix)
    if matcher.regex is not None:
        fullmatch = re.compile(matcher.regex).fullmatch
        return lambda headers: (value := headers.get(name)) is not None and fullmatch(value) is not None
    wanted = bool(matcher.present)
    return lambda headers: (name in headers) is wanted


class _CompiledRoute:
    __slots__ = ("route", "path_prefix", "header_tests", "versions", "cumulative", "total")

    def __init__(self, route: Route, all_versions: list[str], weights_override: list[int] | None,
                 defects: Defects):
        self.route = route
        # "" is a prefix of every path, and no header tests pass every request
        self.path_prefix = "" if defects.active("ignore_path_prefix") else route.match.path_prefix
        self.header_tests = () if defects.active("ignore_header_match") else \
            tuple(_header_test(h) for h in route.match.headers)
        if route.backends:
            versions = [b.version for b in route.backends]
            weights = [b.weight for b in route.backends]
        else:
            versions, weights = list(all_versions), [1] * len(all_versions)
        if weights_override is not None and len(weights) > 1:
            # defect "weights": replace position by position in every split (a single backend cannot
            # be split); backends beyond the list keep their own weight
            weights = [int(weights_override[i]) if i < len(weights_override) else w
                       for i, w in enumerate(weights)]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"route to {route.destination!r} has no positive weight: {weights}")
        self.versions = tuple(versions)
        self.cumulative = tuple(accumulate(weights))
        self.total = float(self.cumulative[-1])

    def pick(self, rng: random.Random) -> str:
        if len(self.versions) == 1:
            return self.versions[0]
        # bisect_right skips weight-0 entries: their cumulative value equals the previous one
        return self.versions[bisect_right(self.cumulative, rng.random() * self.total)]


class RouteTable:
    """The outbound routing decisions of one sidecar for one scenario (rebuild on a new scenario)."""

    def __init__(self, scenario: Scenario, defects: Defects = NONE):
        override = defects.param("weights")
        if override is not None and (not isinstance(override, list) or not override):
            raise ValueError(f"defect 'weights' must be a non-empty list of ints, got {override!r}")
        self._hosts: dict[str, str] = {}
        self._host_cache: dict[str, str | None] = {}  # Host header as sent -> destination
        self._routes: dict[str, tuple[_CompiledRoute, ...]] = {}
        self._by_route_id: dict[int, _CompiledRoute] = {}
        for service in scenario.services:
            for host in self._host_names(service.name, service.namespace):
                self._hosts[host] = service.name
            all_versions = [v.name for v in service.versions]
            compiled = tuple(_CompiledRoute(r, all_versions, override, defects)
                             for r in scenario.routes_for(service.name))
            self._routes[service.name] = compiled
            for c in compiled:
                self._by_route_id[id(c.route)] = c  # the table keeps each Route alive, so ids stay unique

    @staticmethod
    def _host_names(name: str, namespace: str) -> list[str]:
        return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                f"{name}.{namespace}.svc.{KUBERNETES_CLUSTER_DOMAIN}"]

    def destination_for_host(self, host: str) -> str | None:
        """The destination service named by a Host header (``backend``, ``backend.default:80``, ...)."""
        found = self._host_cache.get(host)
        if found is not None or host in self._host_cache:
            return found
        name, sep, port = host.rpartition(":")
        bare = name if sep and port.isdigit() else host
        found = self._hosts.get(bare.lower().removesuffix("."))
        if len(self._host_cache) < _HOST_CACHE_SIZE:  # bounded: Host headers come from clients
            self._host_cache[host] = found
        return found

    def routes(self, destination: str) -> list[Route]:
        """The routes of a destination in match order (the implicit catch-all if none were declared)."""
        return [c.route for c in self._routes.get(destination, ())]

    def match(self, destination: str, path: str, headers: Mapping[str, str]) -> Route | None:
        """The first route of ``destination`` matching the request, or None (unknown destination too).

        ``headers`` may use any case for names; a lowercased copy is made only when a route with
        header matchers is reached, and at most once per call.
        """
        lowered: Mapping[str, str] | None = None
        for compiled in self._routes.get(destination, ()):
            if not path.startswith(compiled.path_prefix):
                continue
            if compiled.header_tests:
                if lowered is None:
                    lowered = {k.lower(): v for k, v in headers.items()}
                if not all(test(lowered) for test in compiled.header_tests):
                    continue
            return compiled.route
        return None

    def pick_version(self, route: Route, rng: random.Random) -> str:
        """A backend version of ``route``, chosen with probability weight/sum (defect ``weights``)."""
        compiled = self._by_route_id.get(id(route))
        if compiled is None or compiled.route is not route:
            raise KeyError(f"route {route.name or route.destination!r} is not from this RouteTable")
        return compiled.pick(rng)
