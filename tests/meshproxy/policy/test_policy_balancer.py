"""Balancers: round robin spread and random start, P2C least request, random, consistent ring hash."""

import random
from collections import Counter

import pytest
from scipy.stats import chisquare

from meshscenario import LoadBalancing
from meshproxy.policy.balancer import (
    LeastRequest,
    RandomPick,
    RingHash,
    RoundRobin,
    make_balancer,
    stable_hash,
)
from policy_helpers import FALSE_FAIL_RATE, binomial_interval

ENDPOINTS = [f"127.9.9.{i}:15006" for i in range(10, 15)]  # five endpoints
KEYS = [f"user-{i}" for i in range(10_000)]
PINNED_USER_1 = 0x9AAC5A8621EAE188  # blake2b(b"user-1", digest_size=8), big-endian


@pytest.mark.parametrize("lb,cls", [({}, RoundRobin), ({"policy": "least_request"}, LeastRequest),
                                    ({"policy": "random"}, RandomPick),
                                    ({"policy": "ring_hash", "hash_header": "x-user"}, RingHash)])
def test_make_balancer(lb, cls):
    assert isinstance(make_balancer(LoadBalancing(**lb)), cls)
    assert isinstance(make_balancer(None), RoundRobin)


@pytest.mark.parametrize("cls", [RoundRobin, LeastRequest, RandomPick, RingHash])
def test_no_endpoints_is_an_error_for_the_caller(cls):
    with pytest.raises(ValueError):
        cls().pick([], random.Random(1), "k")


def test_round_robin_spreads_exactly_evenly():
    balancer, rng = RoundRobin(), random.Random(1)
    counts = Counter(balancer.pick(ENDPOINTS, rng) for _ in range(5 * 200))
    assert set(counts.values()) == {200}


def test_round_robin_visits_in_turn():
    balancer, rng = RoundRobin(), random.Random(1)
    picks = [balancer.pick(ENDPOINTS, rng) for _ in range(10)]
    start = ENDPOINTS.index(picks[0])
    assert picks == [ENDPOINTS[(start + i) % 5] for i in range(10)]


def test_round_robin_starts_at_a_random_offset():
    firsts = Counter(RoundRobin().pick(ENDPOINTS, random.Random(seed)) for seed in range(200))
    assert set(firsts) == set(ENDPOINTS)  # P(some endpoint never first) = 5·0.8^200 ≈ 2e-19


def test_round_robin_keeps_even_when_an_endpoint_leaves():
    balancer, rng = RoundRobin(), random.Random(2)
    for _ in range(7):
        balancer.pick(ENDPOINTS, rng)
    fewer = ENDPOINTS[:4]
    counts = Counter(balancer.pick(fewer, rng) for _ in range(400))
    assert set(counts) == set(fewer) and set(counts.values()) == {100}


def test_random_is_uniform():
    balancer, rng = RandomPick(), random.Random(3)
    counts = Counter(balancer.pick(ENDPOINTS, rng) for _ in range(10_000))
    assert chisquare([counts[e] for e in ENDPOINTS]).pvalue > FALSE_FAIL_RATE
    low, high = binomial_interval(10_000, 0.2)
    assert all(low <= counts[e] <= high for e in ENDPOINTS)


def test_least_request_picks_a_busy_endpoint_only_when_both_draws_hit_it():
    balancer, rng = LeastRequest(), random.Random(4)
    busy = ENDPOINTS[0]
    for _ in range(3):
        balancer.started(busy)
    n = 10_000
    chosen_busy = sum(balancer.pick(ENDPOINTS, rng) == busy for _ in range(n))
    low, high = binomial_interval(n, (1 / 5) ** 2)  # two draws with replacement, both the busy one
    assert low <= chosen_busy <= high


def test_least_request_prefers_a_fast_endpoint_over_a_slow_one():
    """Closed loop of 8 clients; the slow endpoint holds each request 10 ticks, the fast one 1 tick."""
    balancer, rng = LeastRequest(), random.Random(5)
    fast, slow = "fast:1", "slow:1"
    hold = {fast: 1, slow: 10}
    in_flight: list[tuple[int, str]] = []
    served = Counter()
    for tick in range(2000):
        for done in [f for f in in_flight if f[0] <= tick]:
            in_flight.remove(done)
            balancer.finished(done[1])
        while len(in_flight) < 8:
            endpoint = balancer.pick([fast, slow], rng)
            balancer.started(endpoint)
            served[endpoint] += 1
            in_flight.append((tick + hold[endpoint], endpoint))
    # P2C with replacement still sends the slow one every pick whose two draws are both slow (1/4):
    # about 3:1 here, where round robin or random would give 1:1
    assert served[fast] > 2 * served[slow]


def test_least_request_tracks_active_counts():
    balancer = LeastRequest()
    balancer.started("a")
    balancer.started("a")
    balancer.finished("a")
    assert balancer.active == {"a": 1}
    balancer.finished("a")
    assert balancer.active == {}
    with pytest.raises(RuntimeError):
        balancer.finished("a")


def test_least_request_with_one_endpoint():
    assert LeastRequest().pick(["only"], random.Random(1)) == "only"


def _owners(balancer, endpoints):
    rng = random.Random(0)
    return {key: balancer.pick(endpoints, rng, key) for key in KEYS}


def test_ring_hash_keeps_a_key_on_one_endpoint_across_instances_and_order():
    first = _owners(RingHash(), ENDPOINTS)
    assert _owners(RingHash(), list(reversed(ENDPOINTS))) == first


def test_ring_hash_spreads_keys_over_all_endpoints():
    counts = Counter(_owners(RingHash(), ENDPOINTS).values())
    # 160 virtual nodes per endpoint: each share within ±35 % of 1/N (measured spread ~±10 %)
    assert all(0.65 * 2000 <= counts[e] <= 1.35 * 2000 for e in ENDPOINTS), counts


@pytest.mark.parametrize("gone", range(5))
def test_ring_hash_moves_only_the_keys_of_a_removed_endpoint(gone):
    before = _owners(RingHash(), ENDPOINTS)
    remaining = [e for i, e in enumerate(ENDPOINTS) if i != gone]
    after = _owners(RingHash(), remaining)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == ENDPOINTS[gone] for k in moved)  # nobody else's keys move
    assert abs(len(moved) / len(KEYS) - 1 / 5) < 0.07  # about 1/N


def test_ring_hash_adding_an_endpoint_moves_about_one_nth():
    before = _owners(RingHash(), ENDPOINTS[:4])
    after = _owners(RingHash(), ENDPOINTS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == ENDPOINTS[4] for k in moved)
    assert abs(len(moved) / len(KEYS) - 1 / 5) < 0.07


def test_ring_hash_without_a_key_picks_at_random():
    balancer, rng = RingHash(), random.Random(6)
    counts = Counter(balancer.pick(ENDPOINTS, rng, None) for _ in range(5000))
    low, high = binomial_interval(5000, 0.2)
    assert all(low <= counts[e] <= high for e in ENDPOINTS)


def test_ring_hash_cache_stays_bounded():
    balancer, rng = RingHash(vnodes=4), random.Random(7)
    for i in range(40):
        balancer.pick([f"e{i}", f"e{i + 1}"], rng, "k")
    assert len(balancer._rings) <= 16


def test_stable_hash_is_64_bit_and_fixed():
    assert stable_hash("user-1") == stable_hash("user-1") != stable_hash("user-2")
    assert 0 <= stable_hash("x") < 2 ** 64
    # pinned: a different hash would move every key when sidecars of two versions share a ring
    assert stable_hash("user-1") == PINNED_USER_1
