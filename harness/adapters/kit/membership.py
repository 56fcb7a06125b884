"""The lease of :class:`harness.adapters.base.EndpointMembership`: a withdrawn endpoint, put back once."""

from __future__ import annotations

from typing import Callable

from harness.adapters.kit.lease import Lease


class Withdrawal(Lease):
    """``heal()`` puts the withdrawn endpoint back (``readmit``), once, however often it is called."""

    def __init__(self, workload: str, readmit: Callable[[], None], seconds: float):
        super().__init__(workload, readmit)
        self.seconds = seconds  # from the withdrawal until every caller had the smaller endpoint set
