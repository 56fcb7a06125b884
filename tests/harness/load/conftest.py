"""Fixtures: real aiohttp servers (see load_servers.py) on the test's own loop."""

from __future__ import annotations

import ssl

import pytest
from load_servers import Behaviour, start_server_on_random_ip


@pytest.fixture
async def server():
    """(behaviour, "IP:PORT") of a plain HTTP server."""
    behaviour = Behaviour()
    runner, address = await start_server_on_random_ip(behaviour)
    yield behaviour, address
    await runner.cleanup()


@pytest.fixture
async def start_server():
    """Start more servers (e.g. with TLS); all are cleaned up after the test."""
    runners = []

    async def start(behaviour: Behaviour, ssl_context: ssl.SSLContext | None = None) -> str:
        runner, address = await start_server_on_random_ip(behaviour, ssl_context)
        runners.append(runner)
        return address

    yield start
    for runner in runners:
        await runner.cleanup()
