"""What a fault-service proxy with no toxic adds to a request: p50/p99 direct vs through the proxy.

    python bench/bench_fault_service.py            # ~40 s: 5 interleaved repeats of 2 paths x 2 loads
    python bench/bench_fault_service.py --quick    # ~10 s

The upstream is the echo fixture (its app port on httptools); the proxy is made by a real
``meshconform faults serve`` process through its Toxiproxy API. harness.load's meter (its own process)
sends GET / open loop at 1,000 req/s and closed loop on one connection; added = proxied − direct within
a repeat; the table shows the median [min–max] over repeats. Target (Toxiproxy's FAQ figure): ≤ 100 µs
added at p50 with no toxic. The 1-minute load average is printed: rows from a busy machine are not evidence.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

import argparse
import json
import os
import random
from statistics import median

from fixtures.echo.process import EchoProcess
from harness.faults.client import FaultServiceClient
from harness.faults.served import FaultServiceProcess
from harness.load import ClosedLoop, OpenLoop, Target, measure_series

TARGET_P50_US = 100.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=_Path)
    args = parser.parse_args(argv)
    repeats, seconds = (2, 2.0) if args.quick else (5, 3.0)
    block = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"
    loads = {"open 1000/s": OpenLoop(rate=1000, duration_s=seconds, warm_connections=4),
             "closed 1 conn": ClosedLoop(connections=1, duration_s=seconds)}
    rows: dict[str, dict[str, list[float]]] = {name: {"p50": [], "p99": []} for name in loads}
    load1 = os.getloadavg()[0]
    with EchoProcess.start(f"{block}.10") as echo, FaultServiceProcess.start(f"{block}.20") as served:
        client = FaultServiceClient(served.url)
        hop = client.create_proxy("echo", f"{block}.10:8080", listen=f"{block}.21:0")
        direct, proxied = Target(f"{block}.10:8080"), Target(hop.listen)
        for repeat in range(repeats):
            order = [(direct, "direct"), (proxied, "proxied")]
            if repeat % 2:
                order.reverse()
            series = [(target, load) for _, load in loads.items() for target, _ in order]
            results = measure_series(series)
            for i, (name, _) in enumerate(loads.items()):
                pair = {order[0][1]: results[2 * i], order[1][1]: results[2 * i + 1]}
                for q in ("p50", "p99"):
                    rows[name][q].append(getattr(pair["proxied"], f"{q}_us") - getattr(pair["direct"], f"{q}_us"))
                errors = pair["proxied"].errors + pair["direct"].errors
                if errors:
                    print(f"repeat {repeat}: {name}: {errors} errors", file=_sys.stderr)
    load1_end = os.getloadavg()[0]
    print(f"added by a fault-service proxy with no toxic, µs (median [min-max] of {repeats} repeats); "
          f"load average {load1:.2f} → {load1_end:.2f}")
    for name, qs in rows.items():
        cells = "  ".join(f"{q} {median(v):7.0f} [{min(v):.0f}-{max(v):.0f}]" for q, v in qs.items())
        verdict = "meets" if median(qs["p50"]) <= TARGET_P50_US else "MISSES"
        print(f"  {name:14s} {cells}   {verdict} p50 ≤ {TARGET_P50_US:.0f} µs")
    if args.json:
        args.json.write_text(json.dumps({"load_average": [load1, load1_end], "repeats": repeats, "rows": rows},
                                        indent=2))
    return 0


if __name__ == "__main__":
    _sys.exit(main())
