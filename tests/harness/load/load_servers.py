"""Real aiohttp servers on random 127.A.B.x addresses for the meter's tests.

The servers run on the test's own event loop; the meter runs in its own process (measure_async), so
the two never share a loop.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from dataclasses import dataclass, field

from aiohttp import web


def random_loopback_ip() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@dataclass
class Behaviour:
    """What the test server does; a test changes it before the run."""

    delay_s: float = 0.0
    status: int = 200
    stall_after: int | None = None  # the arrival that starts a stall (the server pauses for everyone)
    stall_s: float = 0.0
    arrivals: int = 0
    stall_until: float = 0.0
    stalled_at: list[float] = field(default_factory=list)


async def start_server_on_random_ip(behaviour: Behaviour, ssl_context: ssl.SSLContext | None = None):
    async def handle(request: web.Request) -> web.Response:
        behaviour.arrivals += 1
        now = time.monotonic()
        if behaviour.stall_after is not None and behaviour.arrivals == behaviour.stall_after:
            behaviour.stall_until = now + behaviour.stall_s
            behaviour.stalled_at.append(now)
        if now < behaviour.stall_until:
            # every request that arrives during the stall waits for its end, like a GC pause
            await asyncio.sleep(behaviour.stall_until - now)  # the simulated stall itself, not a wait
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)  # the server's programmed service time
        return web.Response(status=behaviour.status, text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for _ in range(20):  # a random address may, rarely, be taken by a parallel run
        ip = random_loopback_ip()
        site = web.TCPSite(runner, ip, 0, ssl_context=ssl_context, backlog=1024)
        try:
            await site.start()
            break
        except OSError:
            continue
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"{ip}:{port}"


