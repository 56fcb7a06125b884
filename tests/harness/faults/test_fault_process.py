"""Process-fault leases (harness/faults/process.py) on a recording ProcessControl: the fault is applied on
entry and always undone on exit, once, whatever ended the block."""

from __future__ import annotations

import time

import pytest

from harness.adapters.base import ProcessControl
from harness.faults.process import killed, paused


class Recorder:
    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def _call(self, what: str, component: str) -> None:
        self.calls.append((what, component))
        if what == self.fail_on:
            raise RuntimeError(f"{what} failed")

    def kill(self, component: str) -> None:
        self._call("kill", component)

    def pause(self, component: str) -> None:
        self._call("pause", component)

    def resume(self, component: str) -> None:
        self._call("resume", component)

    def restart(self, component: str) -> None:
        self._call("restart", component)


def test_the_recorder_is_a_process_control():
    assert isinstance(Recorder(), ProcessControl)


def test_killed_restarts_on_exit_and_times_the_kill():
    mesh = Recorder()
    before = time.monotonic_ns()
    with killed(mesh, "b-v1-0/echo") as fault:
        assert mesh.calls == [("kill", "b-v1-0/echo")]
        assert before <= fault.at_ns <= time.monotonic_ns()
    assert mesh.calls == [("kill", "b-v1-0/echo"), ("restart", "b-v1-0/echo")]
    assert fault.healed_ns is not None and fault.healed_ns >= fault.at_ns


@pytest.mark.parametrize("error", [AssertionError, KeyboardInterrupt, RuntimeError])
def test_paused_resumes_on_any_exit(error):
    mesh = Recorder()
    with pytest.raises(error):
        with paused(mesh, "controlplane"):
            raise error("the check failed")
    assert mesh.calls == [("pause", "controlplane"), ("resume", "controlplane")]


def test_heal_is_idempotent_and_early():
    mesh = Recorder()
    with paused(mesh, "a-v1-0") as fault:
        fault.heal()
        fault.heal()
        assert mesh.calls[-1] == ("resume", "a-v1-0")
    assert mesh.calls == [("pause", "a-v1-0"), ("resume", "a-v1-0")]


def test_a_failing_undo_is_not_attempted_twice():
    mesh = Recorder(fail_on="restart")
    with pytest.raises(RuntimeError, match="restart failed"):
        with killed(mesh, "a-v1-0") as fault:
            pass
    fault.heal()
    assert mesh.calls == [("kill", "a-v1-0"), ("restart", "a-v1-0")]


def test_a_failing_pause_still_resumes():
    mesh = Recorder(fail_on="pause")
    with pytest.raises(RuntimeError):
        with paused(mesh, "a-v1-0"):
            pytest.fail("the block must not run when the pause failed")
    assert mesh.calls == [("pause", "a-v1-0"), ("resume", "a-v1-0")]
