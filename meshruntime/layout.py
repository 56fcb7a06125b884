"""Where each process of a local mesh listens (docs/architecture.md, "Addresses").

A run owns one loopback block ``127.A.B.0/24`` (A in 1..254, so 127.0.0.1 is never used): the control
plane is on ``.1:15010`` and workload *i* (in ``Scenario.workloads()`` order) on ``.(10+i)`` with fixed
ports, so at most 245 workloads fit in one block.
"""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass
from typing import Callable

from meshscenario import Scenario

CONTROLPLANE_PORT = 15010
APP_PORT = 8080
ECHO_CONTROL_PORT = 9000
OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
ADMIN_PORT = 15000

FIRST_WORKLOAD_HOST = 10
MAX_WORKLOADS = 254 - FIRST_WORKLOAD_HOST + 1


@dataclass(frozen=True)
class WorkloadAddresses:
    ip: str

    @property
    def app(self) -> str:
        return f"{self.ip}:{APP_PORT}"

    @property
    def echo_control(self) -> str:
        return f"{self.ip}:{ECHO_CONTROL_PORT}"

    @property
    def inbound(self) -> str:
        return f"{self.ip}:{INBOUND_PORT}"

    @property
    def outbound(self) -> str:
        return f"{self.ip}:{OUTBOUND_PORT}"

    @property
    def admin(self) -> str:
        return f"{self.ip}:{ADMIN_PORT}"


@dataclass(frozen=True)
class Layout:
    block: str  # "127.A.B"
    workloads: dict[str, WorkloadAddresses]

    @property
    def controlplane_ip(self) -> str:
        return f"{self.block}.1"

    @property
    def controlplane(self) -> str:
        return f"{self.controlplane_ip}:{CONTROLPLANE_PORT}"


def plan(scenario: Scenario, block: str) -> Layout:
    """Addresses of every workload of ``scenario`` inside ``block`` ("127.A.B" or "127.A.B.0/24")."""
    block = normalise_block(block)
    workloads = scenario.workloads()
    if len(workloads) > MAX_WORKLOADS:
        raise ValueError(f"{len(workloads)} workloads do not fit one /24 block (at most {MAX_WORKLOADS})")
    return Layout(block, {w.name: WorkloadAddresses(f"{block}.{FIRST_WORKLOAD_HOST + i}")
                          for i, w in enumerate(workloads)})


def normalise_block(block: str) -> str:
    parts = block.removesuffix("/24").split(".")
    if len(parts) == 4 and parts[3] == "0":  # "127.A.B.0" names the same block as "127.A.B"
        parts = parts[:3]
    if len(parts) != 3 or parts[0] != "127" or not all(p.isdigit() for p in parts):
        raise ValueError(f"{block!r} is not a loopback block like 127.A.B.0/24")
    a, b = int(parts[1]), int(parts[2])
    if not (1 <= a <= 254 and 0 <= b <= 255):
        raise ValueError(f"{block!r}: A must be in 1..254 and B in 0..255")
    return f"127.{a}.{b}"


def random_block(rng: random.Random | None = None, *, attempts: int = 50,
                 free: Callable[[str], bool] | None = None) -> str:
    """A random block that ``free(block)`` finds unused right now (default: its control-plane address is
    free); tries up to ``attempts`` blocks.

    Checking a port is a cheap guard against a collision with another run; it cannot reserve the
    block, but with 64,770 blocks two runs picking the same one at once is unlikely.
    """
    rng = rng or random.SystemRandom()
    free = free or (lambda block: port_is_free(f"{block}.1", CONTROLPLANE_PORT))
    for _ in range(attempts):
        block = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}"
        if free(block):
            return block
    raise RuntimeError(f"no free 127.A.B.0/24 block found in {attempts} tries")


def port_is_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                return False
            raise
    return True
