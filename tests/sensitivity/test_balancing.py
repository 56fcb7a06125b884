"""Every balancing check fails against a reference mesh broken in the way it is meant to catch.

Each test is a real ``pytest suites/balancing --mesh=reference`` run with defects (see conftest). The
power of the statistical checks against these defects is simulated in
tests/harness/test_balancing_power.py; here one run each must fail, naming the problem.
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge

SUITE = "balancing"


def test_round_robin_biased_six_points_fails(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshLbRoundRobinEven"], {"rr_bias": 6})
    assert_fails(entries["MeshLbRoundRobinEven"], "round robin not even", "SPRT accepts")


def test_random_biased_six_points_fails(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshLbRandomUniform"], {"random_bias": 6})
    assert_fails(entries["MeshLbRandomUniform"], "random not even", "SPRT accepts")


def test_least_request_picking_at_random_fails(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshLbLeastRequestAvoidsSlow"], {"lr_random": True})
    assert_fails(entries["MeshLbLeastRequestAvoidsSlow"], "load-blind", "does not avoid the slow endpoint")


def test_ring_hash_not_sticky_fails(tmp_path):
    # 5% of keyed picks ignore the key: about 2·0.05·2/3 of the keys (~65 of 1,000) see two endpoints
    entries = judge(tmp_path, SUITE, ["MeshLbRingHashSticky"], {"ring_not_sticky": 0.05})
    assert_fails(entries["MeshLbRingHashSticky"], "ring hash not sticky", "more than one endpoint")


def test_ring_remapping_every_key_fails(tmp_path):
    entries = judge(tmp_path, SUITE, ["MeshLbRingHashMinimalRemap"], {"ring_remap_all": True})
    assert_fails(entries["MeshLbRingHashMinimalRemap"], "ring hash remap wrong", "not on the leaving endpoint moved")
