"""Process hygiene with real child processes: run-id tags, process groups, parent-death signal, sweep."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from meshruntime.processes import (OWNER_ENV, RUN_ID_ENV, ManagedProcess, owner_alive, owner_token,
                                     stop_all, wait_until)
from meshruntime.sweep import sweep, tagged_processes

# children that just stay alive (60 s bounds a leaked one); the tests poll their state, never sleep
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # a child that stays alive, bounded
IGNORES_TERM = [sys.executable, "-c",
                "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)"]  # stays alive, ignoring SIGTERM


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _run_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def test_child_is_tagged_in_its_own_session(tmp_path):
    run_id = _run_id()
    proc = ManagedProcess("sleeper", SLEEPER, run_id=run_id, log_path=tmp_path / "s.log").start()
    try:
        wait_until(lambda: any(p.pid == proc.pid for p in tagged_processes(run_id)), timeout=5, what="tag visible")
        assert os.getpgid(proc.pid) == proc.pid  # leader of its own group
        assert os.getsid(proc.pid) == proc.pid
        found = [p for p in tagged_processes(run_id) if p.pid == proc.pid][0]
        assert found.owner == owner_token() and not found.orphaned
    finally:
        proc.stop()
    assert not proc.running() and tagged_processes(run_id) == []


def test_stop_kills_a_child_that_ignores_sigterm_after_grace(tmp_path):
    proc = ManagedProcess("stubborn", IGNORES_TERM, run_id=_run_id(), log_path=tmp_path / "x.log").start()
    wait_until(lambda: "ready" in (tmp_path / "x.log").read_text(), timeout=10, what="child ready")
    began = time.monotonic()
    stop_all([proc], grace=0.5)
    elapsed = time.monotonic() - began
    assert proc.exit_code() == -signal.SIGKILL
    assert 0.4 < elapsed < 3.0


def test_stop_reaches_a_paused_child(tmp_path):
    proc = ManagedProcess("paused", SLEEPER, run_id=_run_id(), log_path=tmp_path / "p.log").start()
    proc.signal_group(signal.SIGSTOP)
    began = time.monotonic()
    proc.stop(grace=3.0)
    assert proc.exit_code() == -signal.SIGTERM  # SIGCONT let the pending SIGTERM act, no SIGKILL needed
    assert time.monotonic() - began < 2.5


def test_children_die_with_an_owner_killed_by_sigkill(tmp_path):
    """The owner is a separate process; after kill -9 its children go too (PR_SET_PDEATHSIG)."""
    run_id = _run_id()
    owner_script = textwrap.dedent(f"""
        import sys, threading
        from pathlib import Path
        from meshruntime.processes import ManagedProcess
        argv = {SLEEPER!r}
        procs = [ManagedProcess(f"c{{i}}", argv, run_id={run_id!r}, log_path=Path({str(tmp_path)!r}) / f"c{{i}}.log")
                 for i in range(3)]
        procs[0].start()
        # spawning from a short-lived thread must still tie the child to the process, not the thread
        t = threading.Thread(target=lambda: [p.start() for p in procs[1:]]); t.start(); t.join()
        print(" ".join(str(p.pid) for p in procs), flush=True)
        sys.stdin.read()
    """)
    owner = subprocess.Popen([sys.executable, "-c", owner_script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 3
        assert all(not _gone(pid) for pid in pids)
        assert {p.pid for p in tagged_processes(run_id)} == set(pids)
        owner.kill()
        owner.wait(timeout=5)
        wait_until(lambda: all(_gone(pid) for pid in pids), timeout=5, what="children of a SIGKILLed owner gone")
    finally:
        owner.kill()
        owner.wait(timeout=5)
        sweep(run_id)
    assert tagged_processes(run_id) == []


def test_a_paused_child_dies_with_an_owner_killed_by_sigkill(tmp_path):
    """A chaos run killed while it holds a process paused (SIGSTOP) leaves nothing: the parent-death
    SIGKILL ends a stopped process too."""
    run_id = _run_id()
    owner_script = textwrap.dedent(f"""
        import signal, sys
        from pathlib import Path
        from meshruntime.processes import ManagedProcess
        proc = ManagedProcess("paused", {SLEEPER!r}, run_id={run_id!r}, log_path=Path({str(tmp_path)!r}) / "p.log")
        proc.start()
        proc.signal_group(signal.SIGSTOP)
        print(proc.pid, flush=True)
        sys.stdin.read()
    """)
    owner = subprocess.Popen([sys.executable, "-c", owner_script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        pid = int(owner.stdout.readline())
        wait_until(lambda: _state(pid) == "T", timeout=5, what="child paused")
        owner.kill()
        owner.wait(timeout=5)
        wait_until(lambda: _gone(pid), timeout=5, what="paused child of a SIGKILLed owner gone")
    finally:
        owner.kill()
        owner.wait(timeout=5)
        sweep(run_id)
    assert tagged_processes(run_id) == []


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_sweep_kills_orphans_only(tmp_path):
    """A tagged process whose owner is gone is swept; one whose owner lives is left alone."""
    run_id = _run_id()
    dead_owner = "999999999/0"
    assert not owner_alive(dead_owner) and owner_alive(owner_token())
    env = dict(os.environ, **{RUN_ID_ENV: run_id, OWNER_ENV: dead_owner})
    orphan = subprocess.Popen(SLEEPER, env=env, start_new_session=True)
    alive = ManagedProcess("kept", SLEEPER, run_id=run_id, log_path=tmp_path / "k.log").start()
    try:
        wait_until(lambda: len(tagged_processes(run_id)) == 2, timeout=5, what="both tagged")
        swept = sweep(run_id, grace=2.0)
        assert [p.pid for p in swept] == [orphan.pid]
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        assert alive.running()
        assert sweep("some-other-run") == []
    finally:
        orphan.kill()
        orphan.wait()
        alive.stop()


def test_wait_until_gives_up_early_with_a_reason():
    began = time.monotonic()
    try:
        wait_until(lambda: False, timeout=10, what="never", abort=lambda: "process exited")
    except TimeoutError as exc:
        assert "never: process exited" in str(exc)
    else:
        raise AssertionError("wait_until returned for a condition that never held")
    assert time.monotonic() - began < 1.0
