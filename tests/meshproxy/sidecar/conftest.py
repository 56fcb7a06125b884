import pytest
import uvloop

from sidecar_testkit import Kit


def pytest_asyncio_loop_factories(config, item):
    """Run the sidecar tests on uvloop, as the sidecar process does."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def kit(tmp_path):
    k = Kit(tmp_path)
    try:
        yield k
    finally:
        await k.close()
