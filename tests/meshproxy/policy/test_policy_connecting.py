"""When the pool opens connections for waiting requests (meshproxy/policy/connecting.py)."""

from meshproxy.policy.connecting import moving_average, opens_to_start

FAST_HOLD, OPEN = 0.0005, 0.005


def test_nothing_lent_opens_for_the_waiters_up_to_the_cap():
    assert opens_to_start(waiting=1, connecting=0, lent=0, hold_s=0, open_s=OPEN, max_connecting=4) == 1
    assert opens_to_start(waiting=60, connecting=0, lent=0, hold_s=0, open_s=OPEN, max_connecting=4) == 4
    assert opens_to_start(waiting=60, connecting=4, lent=0, hold_s=0, open_s=OPEN, max_connecting=4) == 0
    assert opens_to_start(waiting=3, connecting=3, lent=0, hold_s=0, open_s=OPEN, max_connecting=4) == 0


def test_a_burst_on_a_fast_upstream_waits_for_the_lent_connections():
    # 20 waiters, 4 connections back every 0.5 ms: all served in 2.5 ms, sooner than a 5 ms open
    assert opens_to_start(waiting=20, connecting=0, lent=4, hold_s=FAST_HOLD, open_s=OPEN, max_connecting=4) == 0


def test_a_slow_or_hung_upstream_gets_new_connections():
    # the same 20 waiters behind connections held 200 ms (or loans 200 ms old): open, 4 at once
    assert opens_to_start(waiting=20, connecting=0, lent=4, hold_s=0.2, open_s=OPEN, max_connecting=4) == 4
    assert opens_to_start(waiting=20, connecting=2, lent=4, hold_s=0.2, open_s=OPEN, max_connecting=4) == 2
    assert opens_to_start(waiting=2, connecting=0, lent=1, hold_s=0.2, open_s=OPEN, max_connecting=4) == 2
    assert opens_to_start(waiting=2, connecting=0, lent=1, hold_s=FAST_HOLD, oldest_loan_s=0.06, open_s=OPEN,
                          max_connecting=4) == 2  # hung: its loan only grows older


def test_a_fast_upstream_whose_loans_came_back_late_is_not_slow():
    """A 10 ms hiccup of the machine: the average hold rose to 8 ms, loans are 11 ms old; opening would
    only add handshakes to the backlog, so the lent connections serve it (and the wait budget)."""
    hiccup = dict(waiting=22, connecting=0, lent=4, hold_s=0.008, oldest_loan_s=0.011, open_s=OPEN, max_connecting=2)
    assert opens_to_start(**hiccup) == 0
    assert opens_to_start(**hiccup, waits_since_open=64) == 1


def test_for_a_slow_upstream_the_rule_is_the_drain_time_against_the_open_time():
    # 10 waiters over 20 lent held 25 ms: drain 10 * 25 / 20 = 12.5 ms against a 12 / 13 ms open
    assert opens_to_start(waiting=10, connecting=0, lent=20, hold_s=0.025, open_s=0.013, max_connecting=4) == 0
    assert opens_to_start(waiting=10, connecting=0, lent=20, hold_s=0.025, open_s=0.012, max_connecting=4) == 4


def test_moving_average_starts_at_the_first_sample():
    assert moving_average(None, 0.004) == 0.004
    assert moving_average(0.005, 0.010) == 0.005 * 0.8 + 0.010 * 0.2


def test_a_steady_demand_pays_for_one_more_connection_every_64_waits():
    fast = dict(waiting=12, connecting=0, lent=4, hold_s=FAST_HOLD, open_s=OPEN, max_connecting=2)
    assert opens_to_start(**fast, waits_since_open=63) == 0
    assert opens_to_start(**fast, waits_since_open=64) == 1
    assert opens_to_start(**{**fast, "connecting": 2}, waits_since_open=500) == 0  # the cap still holds
