"""A fault proxy on a mesh hop, as a lease: ``with proxy_on_hop(mesh, "backend-v1-0") as proxy: ...``.

The adapter (``HopInterposer``) re-points every caller of the workload's inbound listener at a
:class:`FaultProxy` in front of it; leaving the block first points the callers back and waits until
that is in effect, then stops the proxy. Healing is idempotent, and it happens on any exit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

from harness.faults.proxy import FaultProxy


@dataclass(frozen=True)
class _Started:
    proxy: FaultProxy
    address: str  # "IP:PORT", what HopInterposer.interpose expects


@contextlib.contextmanager
def proxy_on_hop(mesh: Any, dest_workload: str) -> Iterator[FaultProxy]:
    with contextlib.ExitStack() as stack:
        started: list[FaultProxy] = []

        def factory(real_address: str) -> _Started:
            ip, port = real_address.rsplit(":", 1)
            proxy = stack.enter_context(FaultProxy.running_in_thread((ip, 0), (ip, int(port))))
            started.append(proxy)
            host, bound = proxy.address
            return _Started(proxy, f"{host}:{bound}")

        lease = mesh.interpose(dest_workload, factory)
        stack.callback(lease.heal)  # runs before the proxy stops (ExitStack unwinds last-in first)
        yield started[0]
