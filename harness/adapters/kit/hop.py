"""The lease of a proxy (a fault proxy or a tap) interposed on a hop."""

from __future__ import annotations

from typing import Any, Callable

from harness.adapters.kit.lease import Lease


class InterposedHop(Lease):
    """``heal()`` points callers back at the real inbound, once, however often it is called."""

    def __init__(self, workload: str, proxy: Any, restore: Callable[[], None]):
        super().__init__(workload, restore)
        self.proxy = proxy
