"""Per-call cost of the sidecar's policy decisions on the request path, in ns per call.

Run: ``python bench/bench_policy.py [--calls N]``. Prints one row per decision: the best of 5 runs of
N calls each (the minimum is the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Callable

from meshscenario import LoadBalancing, Retries, parse_scenario
from meshproxy.policy.balancer import make_balancer
from meshproxy.policy.fault import decide_fault
from meshproxy.policy.outlier import OutlierDetector
from meshproxy.policy.retry import RetryPolicy, response_outcome
from meshproxy.policy.router import RouteTable
from meshproxy.policy.timeout import Deadline

SCENARIO = parse_scenario({
    "services": [{"name": "client"},
                 {"name": "backend", "versions": [{"name": "v1", "instances": 3}, {"name": "v2"}]}],
    "routes": [
        {"destination": "backend", "match": {"path_prefix": "/admin",
                                             "headers": [{"name": "x-role", "exact": "admin"}]},
         "backends": [{"version": "v2"}]},
        {"destination": "backend", "match": {"path_prefix": "/"},
         "backends": [{"version": "v1", "weight": 95}, {"version": "v2", "weight": 5}],
         "retries": {"attempts": 2}, "timeout": "1s"},
    ],
})
HEADERS = {"host": "backend.default:80", "user-agent": "bench", "accept": "*/*", "x-user": "u-42"}
ENDPOINTS = [f"127.1.2.{i}:15006" for i in range(11, 14)]


def _ns_per_call(fn: Callable[[], object], calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    calls = parser.parse_args().calls

    rng = random.Random(1)
    table = RouteTable(SCENARIO)
    route = table.match("backend", "/api", HEADERS)
    retries = Retries(attempts=2)
    outlier = OutlierDetector(None, time.monotonic)

    def route_request():
        dest = table.destination_for_host(HEADERS["host"])
        r = table.match(dest, "/api/items?id=1", HEADERS)
        return table.pick_version(r, rng)

    def retry_policy():
        policy = RetryPolicy(retries, rng)
        return policy.should_retry(response_outcome(503)) and policy.backoff()

    rows = [
        ("router: destination_for_host + match + pick_version", route_request),
        ("router: match + pick_version", lambda: table.pick_version(table.match("backend", "/api", HEADERS), rng)),
        ("retry: RetryPolicy(...) creation", lambda: RetryPolicy(retries, rng)),
        ("retry: creation + should_retry(503) + backoff()", retry_policy),
        ("timeout: Deadline(...) + per_try()", lambda: Deadline(1.0, 0.0).per_try(0.25, 0.1)),
        ("fault: decide_fault(None)", lambda: decide_fault(route.fault, rng)),
        ("outlier: available(3 endpoints), none ejected", lambda: outlier.available(ENDPOINTS)),
    ]
    for policy in ("round_robin", "least_request", "random"):
        balancer = make_balancer(LoadBalancing(policy=policy))
        rows.append((f"balancer: {policy}.pick (3 endpoints)", lambda b=balancer: b.pick(ENDPOINTS, rng)))
    ring = make_balancer(LoadBalancing(policy="ring_hash", hash_header="x-user"))
    rows.append(("balancer: ring_hash.pick (3 endpoints, key)", lambda: ring.pick(ENDPOINTS, rng, "u-42")))

    width = max(len(name) for name, _ in rows)
    print(f"{'decision':<{width}}  ns/call   (best of 5 x {calls:,} calls)")
    for name, fn in rows:
        print(f"{name:<{width}}  {_ns_per_call(fn, calls):7.0f}")


if __name__ == "__main__":
    main()
