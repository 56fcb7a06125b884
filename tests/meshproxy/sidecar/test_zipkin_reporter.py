"""ZipkinReporter: batches, a bounded queue that drops and counts, and a collector that hangs never
blocks ``report`` (a stub collector on loopback is the test double)."""

import asyncio
import json
import random
import time

from aiohttp import web

from meshproxy.sidecar.metrics import Metrics
from meshproxy.sidecar.zipkin import ZipkinReporter

DEADLINE_S = 5.0


def span(i: int) -> dict:
    return {"traceId": "%032x" % (i + 1), "id": "%016x" % (i + 1), "kind": "CLIENT"}


async def until(predicate, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)  # polling pace, bounded by DEADLINE_S
    raise AssertionError(what)


def block() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 250)}"


async def test_spans_are_posted_in_batches_of_at_most_batch():
    batches: list[list] = []

    async def post(request: web.Request) -> web.Response:
        assert request.headers["Content-Type"] == "application/json"
        batches.append(json.loads(await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/api/v2/spans", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ip = block()
    await web.TCPSite(runner, ip, 9411).start()
    metrics = Metrics()
    reporter = ZipkinReporter(metrics, asyncio.get_running_loop(), batch=10, flush_s=0.05)
    try:
        for i in range(25):
            reporter.report(f"{ip}:9411", span(i))
        await until(lambda: metrics.spans_reported == 25, "25 spans reported")
        assert max(len(b) for b in batches) <= 10
        assert [s["id"] for b in batches for s in b] == [span(i)["id"] for i in range(25)]  # in order
    finally:
        await reporter.close()
        await runner.cleanup()


async def test_a_hanging_collector_fills_the_bounded_queue_and_drops_without_blocking():
    held: list[asyncio.StreamWriter] = []

    async def hang(reader, writer):
        held.append(writer)

    ip = block()
    server = await asyncio.start_server(hang, ip, 9411)
    metrics = Metrics()
    reporter = ZipkinReporter(metrics, asyncio.get_running_loop(), max_queue=20, batch=5, flush_s=0.01,
                              post_timeout_s=0.3)
    try:
        reporter.report(f"{ip}:9411", span(0))
        await until(lambda: held, "the first POST reached the collector")
        started = time.perf_counter()
        for i in range(1, 100):
            reporter.report(f"{ip}:9411", span(i))
        assert time.perf_counter() - started < 0.05  # report() never waits for the collector
        assert metrics.spans_dropped >= 99 - 20  # the queue holds at most 20
        await until(lambda: metrics.spans_failed >= 1, "the hung POST is cut and counted")
    finally:
        await reporter.close()
        for w in held:
            w.close()
        server.close()


async def test_a_collector_that_is_down_counts_failures():
    metrics = Metrics()
    reporter = ZipkinReporter(metrics, asyncio.get_running_loop(), flush_s=0.01)
    try:
        reporter.report(f"{block()}:9", span(0))
        await until(lambda: metrics.spans_failed == 1, "a refused POST counted")
        assert metrics.spans_reported == 0
    finally:
        await reporter.close()
