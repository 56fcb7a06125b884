"""Sensitivity of the routing checks: each fails against a reference mesh broken in its way.

The defect ``weights`` replaces the weights of every route with two or more backends position by
position. The routing scenario lists v1 first, so:

- ``[76, 24]`` turns the declared 70/30 into 76/24 (and 50/50 into 76/24);
- ``[97, 3]`` turns the declared 95/5 into 97/3: the canary gets 3% instead of 5%, the 2-point
  deviation of SPEC §4 (``[3, 97]`` would swap the versions, a far coarser break);
- ``[100, 0]`` pins every split to v1, so the weight shift to v1 0 / v2 100 never takes effect and the
  80/10/10 route becomes 100/0/10.

The split checks are statistical: their power against these skews is 99.33% for 97/3 on 95/5 and
99.996% for 76/24 on 70/30 (exact, tests/harness/test_split_power.py; 100/0/10 gives v2 nothing, 10
points off its declared 10%, far beyond the 3 points the 80/10/10 check is built to catch), so each
test here fails spuriously (the broken mesh passes) with probability < 0.7%.

MeshHeaderMatch, MeshPathPrefixMatch and MeshNoRouteAnswer are proven in test_matching.py.
"""

from __future__ import annotations

from tests.sensitivity.conftest import assert_fails, judge


def test_split_70_30_fails_when_the_mesh_sends_76_24(tmp_path):
    entries = judge(tmp_path, "routing", ["MeshWeightedSplit70x30", "MeshWeightedSplit50x50"],
                    {"weights": [76, 24]})
    assert_fails(entries["MeshWeightedSplit70x30"], "split 70/30 deviates", "share")
    assert_fails(entries["MeshWeightedSplit50x50"], "split 50/50 deviates", "share")


def test_split_95_5_fails_when_the_canary_gets_3_percent(tmp_path):
    entries = judge(tmp_path, "routing", ["MeshWeightedSplit95x5"], {"weights": [97, 3]})
    assert_fails(entries["MeshWeightedSplit95x5"], "split 95/5 deviates", "share")


def test_shift_and_three_way_split_fail_when_weights_are_pinned(tmp_path):
    entries = judge(tmp_path, "routing", ["MeshWeightShift", "MeshWeightedSplit80x10x10"],
                    {"weights": [100, 0]})
    assert_fails(entries["MeshWeightShift"], "consecutive v2 answers", "not seen")
    assert_fails(entries["MeshWeightedSplit80x10x10"], "split 80/10/10 deviates")
