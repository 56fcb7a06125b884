"""The lease of a proxy (a fault proxy or a tap) interposed on a hop."""

from __future__ import annotations

import threading
from typing import Any, Callable


class InterposedHop:
    """``heal()`` points callers back at the real inbound, once, however often it is called."""

    def __init__(self, workload: str, proxy: Any, restore: Callable[[], None]):
        self.workload = workload
        self.proxy = proxy
        self._restore = restore
        self._lock = threading.Lock()
        self.healed = False

    def heal(self) -> None:
        with self._lock:
            if self.healed:
                return
            self.healed = True
        self._restore()
