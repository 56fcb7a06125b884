"""The performance checks fail against reference meshes broken in the ways they are meant to catch.

Real ``pytest suites/performance --mesh=reference`` runs with defects (see conftest): ``hop_delay_ms``
(every outbound request waits 6 ms before its first try: 3 ms per hop, over the default 2 ms budget),
``slow_config_apply`` (each pushed generation applied 1 s late, against a 0.5 s budget) and
``leak_per_request`` (8 KiB kept per request: ~16 MB over each load of 2,000 requests).
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "performance"


def test_a_fixed_delay_per_request_fails_latency_and_throughput(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshLatencyOverhead", "MeshThroughput"], {"hop_delay_ms": 6},
                    "--latency-rates=500,2000")
    assert_fails(entries["MeshLatencyOverhead"], "added p99 per hop", "over the budget")
    assert_fails(entries["MeshThroughput"], "stays within 2 ms only up to 0 req/s")


def test_slow_propagation_fails_the_propagation_check(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshConfigPropagation"], {"slow_config_apply": 1.0},
                    "--propagation-budget=0.5")
    assert_fails(entries["MeshConfigPropagation"], "p99 propagation time", "over the budget of 0.5 s")


def test_memory_that_grows_per_request_fails_resource_use(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshResourceUse"], {"leak_per_request": 8192})
    assert_fails(entries["MeshResourceUse"], "grew by", "memory that grows per request")
