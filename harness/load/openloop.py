"""The open-loop latency meter: constant-rate HTTP/1.1 load timed from each request's intended send
time, recorded in µs in an HdrHistogram (SPEC §4 Performance).

    from harness.load.openloop import measure, Target, OpenLoop, ClosedLoop
    result = measure(Target("127.9.3.11:8080"), OpenLoop(rate=2000, duration_s=5))
    result.p99_us, result.achieved_rate, result.histogram  # encoded; merge with LoadResult.merge

Each run happens in a fresh process (``python -m harness.load.openloop``, spec as JSON on stdin,
result as JSON on stdout) running uvloop with a pool of keep-alive connections (asyncio Protocols,
httptools parsing): a meter sharing a loop or a GIL with the server under test would measure itself.
Measured on this 2-vCPU VM it sends 5,000 req/s on time; the process costs ~0.3 s to start, which is
outside the timed window. ``measure`` blocks; ``measure_async`` awaits the process, so a server on the
caller's own loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from typing import Any

from harness.load.spec import (ClosedLoop, LoadResult, OpenLoop, Target, TlsClient, load_from_dict,
                               load_to_dict)

__all__ = ["ClosedLoop", "LoadResult", "MeterError", "OpenLoop", "Target", "TlsClient", "measure",
           "measure_async", "measure_series"]

# Beyond the load's own bound: interpreter start, warm connections, drain, JSON out.
_PROCESS_SLACK_S = 30.0


class MeterError(RuntimeError):
    """The meter process failed (its stderr is in the message)."""


def _spec_json(target: Target, load: OpenLoop | ClosedLoop) -> bytes:
    return json.dumps({"target": target.to_dict(), "load": load_to_dict(load)}).encode()


def _process_timeout(load: OpenLoop | ClosedLoop) -> float:
    if isinstance(load, OpenLoop):
        by_count = load.count / load.rate if load.count is not None else None
        span = min(t for t in (by_count, load.duration_s) if t is not None)
    else:
        span = load.duration_s if load.duration_s is not None else 600.0
    return span + load.drain_timeout_s + _PROCESS_SLACK_S


def _command() -> list[str]:
    return [sys.executable, "-m", "harness.load.openloop"]


def _parse_output(returncode: int, stdout: bytes, stderr: bytes) -> LoadResult:
    if returncode != 0:
        raise MeterError(f"meter exited with {returncode}: {stderr.decode(errors='replace')[-2000:]}")
    return LoadResult.from_dict(json.loads(stdout))


def measure(target: Target, load: OpenLoop | ClosedLoop) -> LoadResult:
    """Run ``load`` against ``target`` in a meter process and return what it measured."""
    proc = subprocess.run(_command(), input=_spec_json(target, load), capture_output=True,
                          timeout=_process_timeout(load))
    return _parse_output(proc.returncode, proc.stdout, proc.stderr)


async def measure_async(target: Target, load: OpenLoop | ClosedLoop) -> LoadResult:
    """As ``measure``, without blocking the caller's event loop."""
    proc = await asyncio.create_subprocess_exec(*_command(), stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(_spec_json(target, load)),
                                                _process_timeout(load))
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return _parse_output(proc.returncode, stdout, stderr)


def measure_series(runs: list[tuple[Target, OpenLoop | ClosedLoop]]) -> list[LoadResult]:
    """Several loads one after the other in ONE meter process (e.g. interleaved repeats of two paths):
    the interpreter start (~0.3 s here) is paid once, not per run. Each run opens its own connections
    and is timed on its own, exactly as with ``measure``."""
    if not runs:
        return []
    spec = json.dumps({"series": [{"target": t.to_dict(), "load": load_to_dict(load)} for t, load in runs]})
    timeout = sum(_process_timeout(load) - _PROCESS_SLACK_S for _, load in runs) + _PROCESS_SLACK_S
    proc = subprocess.run(_command(), input=spec.encode(), capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise MeterError(f"meter exited with {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return [LoadResult.from_dict(d) for d in json.loads(proc.stdout)]


def run_spec(spec: dict[str, Any]) -> LoadResult:
    """Run a JSON spec in this process (the meter process's body)."""
    import uvloop

    from harness.load.engine import run_here

    target, load = Target.from_dict(spec["target"]), load_from_dict(spec["load"])
    # a collector pause would be charged to the server; the run is bounded, so garbage can wait
    gc.collect()
    gc.disable()
    return uvloop.run(run_here(target, load))


def main() -> None:
    spec = json.loads(sys.stdin.buffer.read())
    if "series" in spec:
        out: Any = [run_spec(one).to_dict() for one in spec["series"]]
    else:
        out = run_spec(spec).to_dict()
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
