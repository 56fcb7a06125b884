"""ProcessControl once, for every local runtime: kill, pause, resume and restart of a named component.

Component names are the harness's (``harness.adapters.base.ProcessControl``): ``"controlplane"``,
``"<workload>"`` (its sidecar or proxy) and ``"<workload>/echo"``. A runtime gives the
:class:`ProcessControlled` mixin two things: the :class:`~meshruntime.processes.ManagedProcess` behind
a name (``component_process``) and how to bring a stopped component back and wait until it is ready
(``start_component``). Kill is SIGKILL of the component's process group (it stays down until
``restart``); pause and resume are SIGSTOP and SIGCONT of the group, so a proxy's workers stop too.
"""

from __future__ import annotations

import signal
import time

from meshruntime.processes import ManagedProcess

KILL_REAP_TIMEOUT_S = 5.0


def split_component(component: str) -> tuple[str, str | None]:
    """``"controlplane"`` → ("controlplane", None); ``"<w>"`` or ``"<w>/sidecar"`` → ("sidecar", w);
    ``"<w>/echo"`` → ("echo", w)."""
    if component == "controlplane":
        return "controlplane", None
    workload, _, part = component.partition("/")
    if workload and part in ("", "sidecar"):
        return "sidecar", workload
    if workload and part == "echo":
        return "echo", workload
    raise ValueError(f"unknown component {component!r}: use 'controlplane', '<workload>' or '<workload>/echo'")


class ProcessControlled:
    """kill / pause / resume / restart on top of ``component_process`` and ``start_component``."""

    def component_process(self, kind: str, workload: str | None) -> ManagedProcess:
        """The process of ``kind`` ("controlplane", "sidecar", "echo") of ``workload``; KeyError or
        ValueError naming what exists when there is none."""
        raise NotImplementedError

    def start_component(self, kind: str, workload: str | None, deadline: float) -> None:
        """Start a stopped component again and return once it is ready (and, for a proxy or the control
        plane, once the mesh's config is in effect again); raise by ``deadline`` (monotonic s)."""
        raise NotImplementedError

    def kill(self, component: str) -> None:
        proc = self.component_process(*split_component(component))
        proc.signal_group(signal.SIGKILL)
        proc.popen.wait(timeout=KILL_REAP_TIMEOUT_S)

    def pause(self, component: str) -> None:
        self.component_process(*split_component(component)).signal_group(signal.SIGSTOP)

    def resume(self, component: str) -> None:
        self.component_process(*split_component(component)).signal_group(signal.SIGCONT)

    def restart(self, component: str, timeout: float = 30.0) -> float:
        """Stop (gracefully if it still runs) and start a component; seconds until it is ready again."""
        kind, workload = split_component(component)
        began = time.monotonic()
        self.component_process(kind, workload).stop()
        self.start_component(kind, workload, began + timeout)
        return time.monotonic() - began
