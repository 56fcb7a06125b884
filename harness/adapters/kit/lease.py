"""A lease on a change the harness made to a running mesh: ``heal()`` undoes it, once, from any thread."""

from __future__ import annotations

import threading
from typing import Callable


class Lease:
    """``heal()`` runs ``undo`` the first time it is called and never again, however often or from how
    many threads it is called (a test's cleanup and an interrupted run's may both heal)."""

    def __init__(self, workload: str, undo: Callable[[], None]):
        self.workload = workload
        self._undo = undo
        self._lock = threading.Lock()
        self.healed = False

    def heal(self) -> None:
        with self._lock:
            if self.healed:
                return
            self.healed = True
        self._undo()
