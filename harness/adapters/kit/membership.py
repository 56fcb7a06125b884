"""The lease of :class:`harness.adapters.base.EndpointMembership`: a withdrawn endpoint, put back once."""

from __future__ import annotations

import threading
from typing import Callable


class Withdrawal:
    """``heal()`` puts the withdrawn endpoint back (``readmit``), once, however often it is called."""

    def __init__(self, workload: str, readmit: Callable[[], None], seconds: float):
        self.workload = workload
        self.seconds = seconds  # from the withdrawal until every caller had the smaller endpoint set
        self._readmit = readmit
        self._lock = threading.Lock()
        self.healed = False

    def heal(self) -> None:
        with self._lock:
            if self.healed:
                return
            self.healed = True
        self._readmit()
