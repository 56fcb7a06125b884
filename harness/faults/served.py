"""A fault service for one run: ``meshconform faults serve`` as a child process that cannot outlive it.

    with FaultServiceProcess.start("127.0.9.1") as served:     # port 0: a free one
        client = FaultServiceClient(served.url)

Three ways it ends with its run: ``stop()`` (or leaving the block); ``--owner`` (the service exits
within 0.25 s of this process's death); and the run's tag (``MESHCONFORM_RUN_ID``), by which
``meshconform sweep`` finds it. Readiness is its ready line, polled with a deadline.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.faults.cli import READY_PREFIX
from meshruntime.processes import ManagedProcess

READY_TIMEOUT_S = 30.0


@dataclass
class FaultServiceProcess:
    process: ManagedProcess
    url: str

    @classmethod
    def start(cls, ip: str, port: int = 0, *, run_id: str | None = None, log_dir: Path | None = None,
              ready_timeout_s: float = READY_TIMEOUT_S) -> "FaultServiceProcess":
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="meshconform-faults-"))
        process = ManagedProcess(
            "faults", [sys.executable, "-m", "harness.cli", "faults", "serve", "--listen", f"{ip}:{port}",
                       "--owner", str(os.getpid())],
            run_id=run_id or uuid.uuid4().hex[:12], log_path=log_dir / "faults.log").start()
        deadline = time.monotonic() + ready_timeout_s
        while True:
            for line in process.log_path.read_text(errors="replace").splitlines() if process.log_path.exists() else ():
                if line.startswith(READY_PREFIX):
                    return cls(process, line[len(READY_PREFIX):].strip())
            if not process.running():
                raise RuntimeError(f"the fault service exited with {process.exit_code()}: {process.log_tail()}")
            if time.monotonic() > deadline:
                process.stop()
                raise TimeoutError(f"the fault service did not start within {ready_timeout_s:.0f} s: "
                                   f"{process.log_tail()}")
            time.sleep(0.02)  # polling pace of the ready line

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> "FaultServiceProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
