"""Child processes of a local mesh, started so that none can outlive its owner (SPEC §3).

Every child:
- runs in its own session (``start_new_session``), so one ``killpg`` reaches it and anything it forks;
- carries ``MESHCONFORM_RUN_ID`` and ``MESHCONFORM_OWNER`` (``"<pid>/<start ticks>"`` of the owner) in
  its environment, so :mod:`meshruntime.sweep` can find it (psutil) if the owner vanished;
- gets ``PR_SET_PDEATHSIG = SIGKILL``, so the kernel kills it when the owner dies, even by SIGKILL.

The kernel delivers the parent-death signal when the *thread* that forked the child exits, not the
process. So children are always forked from a thread that lives as long as the process: the main thread
or, when called from another thread, one long-lived spawner thread.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import subprocess
import threading
import time
import queue
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Mapping, Sequence

import psutil

RUN_ID_ENV = "MESHCONFORM_RUN_ID"
OWNER_ENV = "MESHCONFORM_OWNER"

_PR_SET_PDEATHSIG = 1
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_libc = ctypes.CDLL(None, use_errno=True)
_spawn_requests: "queue.SimpleQueue[tuple[Future, tuple]]" = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (psutil): tells a pid from a reused one."""
    try:
        return round((psutil.Process(pid).create_time() - psutil.boot_time()) * _TICKS_PER_SECOND)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds its pid until its parent reaps it)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def children_of(pid: int) -> set[int]:
    """The direct children of ``pid`` (empty if it is gone)."""
    try:
        return {c.pid for c in psutil.Process(pid).children()}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads); raises ProcessLookupError if it is gone.
    Resolution is one clock tick (``SC_CLK_TCK``, 10 ms here): sample over seconds."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        raise ProcessLookupError(pid) from None
    return times.user + times.system


def owner_token(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{pid}/{process_start_ticks(pid)}"


def owner_alive(token: str) -> bool:
    pid_text, _, ticks = token.partition("/")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return str(process_start_ticks(pid)) == ticks


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec
        if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(127)
    return preexec


def _popen(argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: str | None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()), close_fds=True,
        )


def _spawn_on_lasting_thread(*args) -> subprocess.Popen:
    if threading.current_thread() is threading.main_thread():
        return _popen(*args)
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            # a daemon thread is never joined at interpreter shutdown, so it outlives atexit's stop()
            _spawner = threading.Thread(target=_serve_spawn_requests, name="meshconform-spawner", daemon=True)
            _spawner.start()
    done: Future = Future()
    _spawn_requests.put((done, args))
    return done.result()


def _serve_spawn_requests() -> None:
    while True:
        done, args = _spawn_requests.get()
        try:
            done.set_result(_popen(*args))
        except BaseException as exc:  # handed to the caller, who raises it
            done.set_exception(exc)


class ManagedProcess:
    """One child process of a run: its command line, log file and process group."""

    def __init__(self, name: str, argv: Sequence[str], *, run_id: str, log_path: Path,
                 env: Mapping[str, str] | None = None, cwd: str | None = None):
        self.name = name
        self.argv = list(argv)
        self.run_id = run_id
        self.log_path = Path(log_path)
        self.cwd = cwd
        base = dict(os.environ if env is None else env)
        base[RUN_ID_ENV] = run_id
        base[OWNER_ENV] = owner_token()
        self.env = base
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> "ManagedProcess":
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.popen = _spawn_on_lasting_thread(self.argv, self.env, self.log_path, self.cwd)
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group; a group that is gone is not an error."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds, and reap the child. Idempotent."""
        stop_all([self], grace)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def stop_all(processes: Sequence[ManagedProcess], grace: float = 3.0) -> None:
    """Stop many children in parallel: one shared grace period, not one per child."""
    for proc in processes:
        if proc.popen is None:
            continue
        proc.signal_group(signal.SIGTERM)
        proc.signal_group(signal.SIGCONT)  # a paused (SIGSTOPped) child only acts on SIGTERM once resumed
    deadline = time.monotonic() + grace
    for proc in processes:
        if proc.popen is None:
            continue
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # SIGKILL the group even when the leader exited: a grandchild may still hold the group
        proc.signal_group(signal.SIGKILL)
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05,
               abort: Callable[[], str | None] = lambda: None) -> None:
    """Poll ``condition`` every ``interval`` s until it is true or ``timeout`` s have passed.

    ``abort`` is checked on every round and returns a reason to give up early (e.g. the process
    we are waiting for has exited); both failures raise TimeoutError naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        reason = abort()
        if reason:
            raise TimeoutError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.1f} s")
        time.sleep(interval)  # the pace of polling, not a synchronisation


def wait_ready(proc: ManagedProcess, what: str, deadline: float, ready: Callable[[], bool], *,
               interval: float = 0.05) -> None:
    """Poll ``ready`` until it is true, the monotonic ``deadline`` passes, or ``proc`` exits; the
    TimeoutError names ``what`` and carries the last lines of the process's log."""
    def exited() -> str | None:
        code = proc.exit_code()
        return None if code is None else f"exited with code {code}"
    try:
        wait_until(ready, timeout=max(0.0, deadline - time.monotonic()), what=what, interval=interval,
                   abort=exited)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n--- last lines of {proc.log_path} ---\n{proc.log_tail()}") from None


def http_ok(hostport: str, path: str, timeout: float = 1.0) -> bool:
    """True when a plain-HTTP GET of ``path`` answers 200 (readiness probes)."""
    host, _, port = hostport.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
