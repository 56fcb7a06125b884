import statistics

import pytest
from fault_helpers import mean_round_trip_s, round_trips_s

from harness.faults import Latency


async def test_latency_adds_its_delay_to_each_round_trip(proxy):
    baseline = await mean_round_trip_s(proxy.address)
    with proxy.fault(Latency(0.05)):
        delayed = await mean_round_trip_s(proxy.address)
    assert 0.04 <= delayed - baseline <= 0.06, (baseline, delayed)
    assert await mean_round_trip_s(proxy.address) < 0.01  # healed


async def test_latency_on_both_directions_adds_up(proxy):
    baseline = await mean_round_trip_s(proxy.address)
    proxy.add(Latency(0.03), "upstream")
    proxy.add(Latency(0.02), "downstream")
    assert 0.04 <= await mean_round_trip_s(proxy.address) - baseline <= 0.06


async def test_jitter_spreads_round_trips_within_bounds(proxy):
    proxy.add(Latency(0.05, jitter_s=0.02))
    samples = await round_trips_s(proxy.address, trips=30)
    assert all(0.029 <= s <= 0.08 for s in samples), samples
    assert statistics.stdev(samples) > 0.005  # uniform ±20 ms has a stdev of ~11.5 ms


def test_latency_refuses_negative_values():
    with pytest.raises(ValueError):
        Latency(-0.1)
