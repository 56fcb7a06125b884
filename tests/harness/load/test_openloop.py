"""The meter against real aiohttp servers with known behaviour (delays, a stall, errors, mTLS)."""

from __future__ import annotations

import socket
import ssl

import trustme

from harness.load import ClosedLoop, LoadResult, OpenLoop, Target, TlsClient, measure_async

from load_servers import Behaviour, random_loopback_ip

MS = 1000  # µs


def count_at_least(result: LoadResult, micros: int) -> int:
    histogram = result.latency_histogram()
    return sum(item.count_at_value_iterated_to for item in histogram.get_recorded_iterator()
               if item.value_iterated_to >= micros)


async def test_p50_is_the_injected_delay(server):
    behaviour, address = server
    behaviour.delay_s = 0.020
    result = await measure_async(Target(address), OpenLoop(rate=200, duration_s=2))
    assert result.errors == 0 and result.count == 400
    # never faster than the delay (HdrHistogram keeps 3 digits: -0.1%); at most 3 ms of machinery
    assert 20 * MS * 0.999 <= result.p50_us <= 40 * MS, result.p50_us  # upper bound: room for a busy machine
    assert result.min_us >= 20 * MS * 0.999


async def test_a_stall_is_charged_to_every_request_due_during_it(server):
    """Coordinated omission check: 200 ms stall at 1,000 req/s; ~200 requests fall due during it,
    the first ~100 of them wait 100-200 ms, so p99 (the worst 20 of 2,000) is at least 150 ms."""
    behaviour, address = server
    behaviour.stall_after, behaviour.stall_s = 500, 0.200
    # enough warm connections for the ~200 requests held by the stall: no TCP connect during it, so
    # a kernel accept queue (and its 1 s SYN retry) cannot blur what is measured here
    result = await measure_async(Target(address), OpenLoop(rate=1000, duration_s=2, warm_connections=300))
    assert behaviour.stalled_at, "the stall never happened"
    assert result.errors == 0 and result.count == 2000
    assert 150 * MS <= result.p99_us <= 1000 * MS, result.p99_us  # the lower bound is the property
    assert 200 * MS * 0.999 <= result.max_us <= 1500 * MS, result.max_us
    # ideally the 100 requests due in the stall's first 100 ms; more because the server then drains a
    # backlog of ~200 requests on ~200 new connections (measured 111-120 alone, up to 320 on a busy VM)
    assert 85 <= count_at_least(result, 100 * MS) <= 1000
    assert result.send_lag_p99_us < 50 * MS  # kept sending on schedule through the 200 ms stall


async def test_closed_loop_hides_the_same_stall(server):
    """The comparison the issue asks for: one connection back to back sees the stall once."""
    behaviour, address = server
    behaviour.stall_after, behaviour.stall_s = 500, 0.200
    result = await measure_async(Target(address), ClosedLoop(connections=1, count=2000))
    assert behaviour.stalled_at and result.count == 2000
    assert count_at_least(result, 100 * MS) == 1
    assert result.p99_us < 100 * MS  # far below the 200 ms stall an open loop charges to ~100 requests
    assert result.max_us >= 200 * MS * 0.999


async def test_achieved_rate_is_the_target_within_5_percent(server):
    _, address = server
    result = await measure_async(Target(address), OpenLoop(rate=1000, duration_s=2))
    assert result.sent == 2000 and result.errors == 0
    assert abs(result.achieved_rate - 1000) <= 50, result.achieved_rate
    assert abs(result.throughput - 1000) <= 50, result.throughput
    assert 1.9 <= result.elapsed_s <= 3.0


async def test_count_bounds_an_open_loop_run(server):
    behaviour, address = server
    result = await measure_async(Target(address, path="/x?key=a"), OpenLoop(rate=500, count=123, duration_s=60))
    assert result.sent == 123 == behaviour.arrivals
    assert result.elapsed_s < 2.0


async def test_closed_loop_keeps_n_connections_busy(server):
    behaviour, address = server
    result = await measure_async(Target(address), ClosedLoop(connections=3, count=300))
    assert result.sent == result.count == behaviour.arrivals == 300
    assert result.connections_opened == 3
    assert result.statuses == {"200": 300}


async def test_5xx_are_errors_and_not_latencies(server):
    behaviour, address = server
    behaviour.status = 503
    result = await measure_async(Target(address), OpenLoop(rate=500, count=100))
    assert result.errors == 100 and result.count == 0
    assert result.statuses == {"503": 100}
    assert result.latency_histogram().get_total_count() == 0


async def test_a_refused_connection_is_an_error_and_the_run_still_ends():
    ip = random_loopback_ip()
    with socket.socket() as probe:  # a port that was just free and now has no listener
        probe.bind((ip, 0))
        port = probe.getsockname()[1]
    result = await measure_async(Target(f"{ip}:{port}"), OpenLoop(rate=200, count=40, warm_connections=2))
    assert result.errors == 40 and result.count == 0
    result = await measure_async(Target(f"{ip}:{port}"), ClosedLoop(connections=1, count=25))
    assert result.errors == 25 and result.count == 0


def _mtls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("server.test").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def test_meter_speaks_mtls_to_a_port_that_requires_a_client_cert(start_server, tmp_path):
    ca = trustme.CA()
    behaviour = Behaviour()
    address = await start_server(behaviour, _mtls_server_context(ca))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))

    with_cert = TlsClient(ca_file=str(tmp_path / "ca.pem"), cert_file=str(tmp_path / "client.pem"),
                          key_file=str(tmp_path / "client.key"))
    result = await measure_async(Target(address, tls=with_cert), OpenLoop(rate=200, count=50))
    assert result.count == 50 == behaviour.arrivals and result.errors == 0

    without_cert = TlsClient(ca_file=str(tmp_path / "ca.pem"))
    result = await measure_async(Target(address, tls=without_cert), OpenLoop(rate=200, count=20))
    assert result.count == 0 and result.errors == 20
    assert behaviour.arrivals == 50  # nothing got through without a certificate


async def test_results_of_parallel_meters_merge(server):
    _, address = server
    a = await measure_async(Target(address), OpenLoop(rate=300, count=150))
    b = await measure_async(Target(address), ClosedLoop(connections=1, count=100))
    merged = LoadResult.merge([a, b])
    assert merged.count == 250 and merged.sent == 250
    assert merged.latency_histogram().get_total_count() == 250
    assert min(a.min_us, b.min_us) == merged.min_us and max(a.max_us, b.max_us) == merged.max_us
    assert LoadResult.from_dict(merged.to_dict()) == merged


async def test_a_series_runs_each_load_on_its_own_in_one_meter_process(server):
    import asyncio

    from harness.load import measure_series

    behaviour, address = server
    behaviour.delay_s = 0.002
    loads = [(Target(address), OpenLoop(rate=400, count=100)), (Target(address), ClosedLoop(connections=1, count=30)),
             (Target(address), OpenLoop(rate=200, count=50))]
    results = await asyncio.to_thread(measure_series, loads)
    assert [r.count for r in results] == [100, 30, 50]
    assert [r.mode for r in results] == ["open", "closed", "open"]
    assert all(r.errors == 0 and r.min_us >= 2 * MS * 0.999 for r in results)
    assert [r.latency_histogram().get_total_count() for r in results] == [100, 30, 50]
