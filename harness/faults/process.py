"""Process faults as leases, on any adapter that offers ``ProcessControl`` (SPEC §3).

    with killed(mesh, "backend-v1-0/echo") as fault:    # SIGKILL now; restarted when the block ends
        fault.at_ns                                     # CLOCK_MONOTONIC just before the kill
    with paused(mesh, "backend-v1-0") as fault:         # SIGSTOP now; SIGCONT on any exit
        ...

A process fault heals itself when its block ends, whatever ended it (a failed assertion, an exception,
KeyboardInterrupt): a paused process is always resumed, a killed one always restarted. ``heal()`` may
also be called early and is idempotent. ``at_ns`` is read before the signal is sent, so nothing the
fault caused can carry an earlier timestamp (the echo journal and the harness share CLOCK_MONOTONIC).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator


class ProcessFault:
    """One applied process fault; ``heal()`` undoes it once, later calls do nothing."""

    def __init__(self, component: str, at_ns: int, undo: Callable[[], Any]):
        self.component = component
        self.at_ns = at_ns
        self.healed_ns: int | None = None  # when heal() returned (the component is back)
        self._undo = undo

    def heal(self) -> None:
        if self.healed_ns is not None:
            return
        self.healed_ns = -1  # taken before the undo runs: a failing undo is not attempted twice
        try:
            self._undo()
        finally:
            self.healed_ns = time.monotonic_ns()


@contextlib.contextmanager
def killed(mesh: Any, component: str) -> Iterator[ProcessFault]:
    """SIGKILL ``component`` (``ProcessControl.kill``); restart it (and wait until ready) on exit."""
    at = time.monotonic_ns()
    mesh.kill(component)
    fault = ProcessFault(component, at, lambda: mesh.restart(component))
    try:
        yield fault
    finally:
        fault.heal()


@contextlib.contextmanager
def paused(mesh: Any, component: str) -> Iterator[ProcessFault]:
    """SIGSTOP ``component`` (``ProcessControl.pause``); SIGCONT it on any exit."""
    at = time.monotonic_ns()
    try:
        mesh.pause(component)
    except BaseException:
        mesh.resume(component)  # a signal half-delivered to a process group must not stay
        raise
    fault = ProcessFault(component, at, lambda: mesh.resume(component))
    try:
        yield fault
    finally:
        fault.heal()
