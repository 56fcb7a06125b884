"""The meter-capacity search: its decisions as a pure function, the driver against a modelled meter,
and short real runs against a real server (and a port with no server)."""

from __future__ import annotations

import socket
import time

import pytest

from harness.load import LoadResult, OpenLoop, Target
from harness.load.capacity import (Capacity, Row, SearchPlan, Stop, StopReason, TargetNotAnswering, decide,
                                   meter_capacity, meter_capacity_async, verdict)

from load_servers import random_loopback_ip

PLAN = SearchPlan(lowest=1000, highest=32000, lag_p99_limit_us=200, resolution=0.1, max_steps=12)


def row(rate: float, lag_p99: int = 50, errors: int = 0, sent: int = 500, plan: SearchPlan = PLAN) -> Row:
    r = Row(rate=rate, send_lag_p50_us=10, send_lag_p99_us=lag_p99, achieved_rate=rate, sent=sent, errors=errors)
    return Row(**{**r.__dict__, "failed": verdict(r, plan)})


# -- decide: the search as a pure function ------------------------------------------------------------
def test_the_first_step_is_the_lowest_rate():
    assert decide([], PLAN) == 1000


def test_rates_double_while_steps_pass_and_stop_at_the_top_of_the_range():
    assert decide([row(1000)], PLAN) == 2000
    assert decide([row(1000), row(2000), row(4000), row(8000)], PLAN) == 16000
    rows = [row(r) for r in (1000, 2000, 4000, 8000, 16000)]
    assert decide(rows, PLAN) == 32000
    assert decide(rows + [row(32000)], PLAN) == Stop(StopReason.TOP_OF_RANGE, 32000)


def test_doubling_is_capped_at_the_highest_rate():
    plan = SearchPlan(lowest=1000, highest=3000)
    assert decide([row(1000), row(2000)], plan) == 3000


def test_after_the_first_failure_it_bisects_between_best_pass_and_lowest_fail():
    rows = [row(1000), row(2000), row(4000), row(8000, lag_p99=900)]
    assert decide(rows, PLAN) == 6000
    assert decide(rows + [row(6000)], PLAN) == 7000
    assert decide(rows + [row(6000, lag_p99=300)], PLAN) == 5000


def test_it_stops_when_pass_and_fail_are_within_the_resolution_with_the_failures_reason():
    rows = [row(4000), row(8000, lag_p99=900), row(6000, lag_p99=900), row(5000, lag_p99=900), row(4500)]
    assert decide(rows, PLAN) == 4750  # 5000 - 4500 > 10 % of 4500: one more step
    rows[-1] = row(4600)
    assert decide(rows, PLAN) == Stop(StopReason.LAG_LIMIT, 4600)  # 5000 - 4600 <= 10 % of 4600
    errors = [row(4000), row(4400, errors=3)]
    assert decide(errors, PLAN) == Stop(StopReason.ERRORS, 4000)


def test_a_lowest_rate_that_fails_means_capacity_below_the_range():
    assert decide([row(1000, lag_p99=5000)], PLAN) == Stop(StopReason.LAG_LIMIT, None)
    assert decide([row(1000, errors=1)], PLAN) == Stop(StopReason.ERRORS, None)


def test_the_search_is_bounded_in_steps_and_time():
    plan = SearchPlan(lowest=1000, highest=32000, max_steps=3)
    rows = [row(1000), row(2000), row(4000)]
    assert decide(rows, plan) == Stop(StopReason.STEPS, 4000)
    assert decide(rows[:2], PLAN, time_left_s=1.0, step_cost_s=1.5) == Stop(StopReason.DEADLINE, 2000)
    assert decide(rows[:2], PLAN, time_left_s=2.0, step_cost_s=1.5) == 4000
    assert decide([], PLAN, time_left_s=0.1, step_cost_s=1.0) == Stop(StopReason.DEADLINE, None)


def test_a_converged_search_says_so_even_on_its_last_allowed_step():
    plan = SearchPlan(lowest=4000, highest=32000, max_steps=2)
    assert decide([row(4000), row(4300, lag_p99=900)], plan) == Stop(StopReason.LAG_LIMIT, 4000)


def test_bisection_never_repeats_a_measured_rate():
    plan = SearchPlan(lowest=1, highest=100, resolution=0.01)
    assert decide([row(1), row(2, lag_p99=900)], plan) == Stop(StopReason.LAG_LIMIT, 1)


def test_verdict_errors_before_lag_and_within_the_error_limit():
    assert verdict(row(1000, lag_p99=900, errors=1), PLAN) is StopReason.ERRORS
    assert verdict(row(1000, sent=0), PLAN) is StopReason.ERRORS
    assert verdict(row(1000, lag_p99=201), PLAN) is StopReason.LAG_LIMIT
    assert verdict(row(1000, lag_p99=200), PLAN) is None
    lenient = SearchPlan(error_limit=0.01)
    assert verdict(row(1000, errors=5, sent=500, plan=lenient), lenient) is None
    assert verdict(row(1000, errors=6, sent=500, plan=lenient), lenient) is StopReason.ERRORS


@pytest.mark.parametrize("kwargs, field", [
    ({"lowest": 0}, "rates"), ({"lowest": 10, "highest": 5}, "rates"), ({"lag_p99_limit_us": 0}, "lag_p99_limit_us"),
    ({"resolution": 1.5}, "resolution"), ({"max_steps": 0}, "max_steps"), ({"error_limit": 1}, "error_limit"),
])
def test_a_bad_plan_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SearchPlan(**kwargs)


# -- the driver, against a modelled meter ------------------------------------------------------------
class ModelMeter:
    """A meter that sends on time up to ``capacity`` req/s per process and is late above it; records
    what it was asked to do. Stands in for the measurement only: the search is what is under test."""

    def __init__(self, capacity: float, answers: bool = True):
        self.capacity, self.answers, self.calls = capacity, answers, []

    def __call__(self, target: Target, load) -> LoadResult:
        self.calls.append(load)
        if not isinstance(load, OpenLoop):  # the probe
            n = 3
            return self._result(sent=n, count=n if self.answers else 0, errors=0 if self.answers else n, lag=5,
                                rate=None, statuses={"200": n} if self.answers else {})
        sent = round(load.rate * load.duration_s)
        return self._result(sent=sent, count=sent, errors=0, lag=40 if load.rate <= self.capacity else 5000,
                            rate=load.rate, statuses={"200": sent})

    @staticmethod
    def _result(sent, count, errors, lag, rate, statuses) -> LoadResult:
        return LoadResult(mode="open" if rate else "closed", target_rate=rate, sent=sent, count=count,
                          errors=errors, elapsed_s=0.5, achieved_rate=rate or 0.0, throughput=rate or 0.0,
                          p50_us=100, p90_us=150, p99_us=300, p99_9_us=400, max_us=500, min_us=50, mean_us=110.0,
                          send_lag_p50_us=10, send_lag_p99_us=lag, connections_opened=4, statuses=statuses)


def test_the_driver_finds_a_modelled_capacity_within_the_resolution():
    model = ModelMeter(capacity=5300)
    cap = meter_capacity(Target("127.0.0.1:1"), measure_fn=model)
    assert isinstance(cap, Capacity) and cap.reason is StopReason.LAG_LIMIT and cap.meter_limited
    assert 5300 / 1.1 <= cap.rate <= 5300
    assert [r.rate for r in cap.rows][:5] == [1000, 2000, 4000, 8000, 6000]
    assert len(cap.rows) <= 12 and all(r.failed is None for r in cap.rows if r.rate <= 5300)
    assert all(load.duration_s == 0.5 for load in model.calls[1:])  # step_s: each step is bounded in time


def test_with_two_processes_each_gets_half_the_rate_and_the_results_merge():
    model = ModelMeter(capacity=3000)  # per process
    cap = meter_capacity(Target("127.0.0.1:1"), processes=2, rates=(2000, 64000), measure_fn=model)
    steps = model.calls[1:]
    assert len(steps) == 2 * len(cap.rows)
    assert steps[0].rate == steps[1].rate == 1000
    assert cap.rows[0].sent == 2 * round(1000 * 0.5)  # merged: both processes' requests
    assert 6000 / 1.1 <= cap.rate <= 6000 and cap.per_process_rate == cap.rate / 2


def test_the_top_of_the_range_and_a_limit_below_the_range_are_reported():
    assert meter_capacity(Target("127.0.0.1:1"), rates=(500, 2000), measure_fn=ModelMeter(1e9)).reason \
        is StopReason.TOP_OF_RANGE
    below = meter_capacity(Target("127.0.0.1:1"), rates=(500, 2000), measure_fn=ModelMeter(100))
    assert below.rate is None and below.reason is StopReason.LAG_LIMIT and len(below.rows) == 1
    assert below.to_dict()["reason"] == "lag limit" and below.to_dict()["rows"][0]["failed"] == "lag limit"


class ScriptedMeter(ModelMeter):
    """On time, except the runs whose index (counting open-loop runs from 0) is in ``late`` (a pause of
    the whole machine: 5 ms of send lag) or in ``failing`` (one request failed)."""

    def __init__(self, late=(), failing=()):
        super().__init__(capacity=1e9)
        self.late, self.failing, self.runs = set(late), set(failing), 0

    def __call__(self, target, load):
        if not isinstance(load, OpenLoop):
            return super().__call__(target, load)
        i, self.runs = self.runs, self.runs + 1
        sent = round(load.rate * load.duration_s)
        return self._result(sent=sent, count=sent - (i in self.failing), errors=int(i in self.failing),
                            lag=5000 if i in self.late else 40, rate=load.rate, statuses={"200": sent})


def test_with_repeats_the_median_run_decides_the_lag_so_one_paused_run_of_three_does_not_end_the_search():
    cap = meter_capacity(Target("127.0.0.1:1"), rates=(1000, 4000), repeats=3, measure_fn=ScriptedMeter(late={0}))
    assert cap.reason is StopReason.TOP_OF_RANGE and cap.rate == 4000
    first = cap.rows[0]
    assert first.failed is None and first.repeats_send_lag_p99_us == (5000, 40, 40) and first.send_lag_p99_us == 40
    assert first.sent == 3 * 500  # every run's requests


def test_with_repeats_two_paused_runs_of_three_fail_the_step_on_lag():
    cap = meter_capacity(Target("127.0.0.1:1"), rates=(1000, 4000), repeats=3,
                         measure_fn=ScriptedMeter(late={0, 2}))
    assert cap.rate is None and cap.reason is StopReason.LAG_LIMIT and cap.rows[0].send_lag_p99_us == 5000


def test_with_repeats_a_failed_request_in_any_run_fails_the_step():
    cap = meter_capacity(Target("127.0.0.1:1"), rates=(1000, 4000), repeats=3, measure_fn=ScriptedMeter(failing={1}))
    assert cap.rate is None and cap.reason is StopReason.ERRORS and cap.rows[0].errors == 1


def test_a_target_that_does_not_answer_is_a_clear_error_before_any_step():
    model = ModelMeter(capacity=5000, answers=False)
    with pytest.raises(TargetNotAnswering, match="127.0.0.1:1 did not answer"):
        meter_capacity(Target("127.0.0.1:1"), measure_fn=model)
    assert len(model.calls) == 1


@pytest.mark.parametrize("kwargs, name", [({"step_s": 0}, "step_s"), ({"processes": 0}, "processes"),
                                          ({"deadline_s": -1}, "deadline_s"), ({"rates": (1, 2, 3)}, "rates"),
                                          ({"repeats": 0}, "repeats")])
def test_bad_driver_arguments_are_refused_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        meter_capacity(Target("127.0.0.1:1"), measure_fn=ModelMeter(1000), **kwargs)


# -- real meter processes --------------------------------------------------------------------------
async def test_a_real_search_against_a_real_server_climbs_to_the_top_of_a_low_range(server):
    behaviour, address = server
    started = time.monotonic()
    # a lag limit (1 s) no scheduler stall on a shared machine reaches at 200-800 req/s, so the path is
    # known: what is under test is that every step is a real meter run at the rate the search asked for
    cap = await meter_capacity_async(Target(address), lag_p99_limit_us=1_000_000, rates=(200, 800), step_s=0.3,
                                     deadline_s=10)
    assert cap.reason is StopReason.TOP_OF_RANGE and cap.rate == 800, cap
    assert [r.rate for r in cap.rows] == [200, 400, 800]
    for r in cap.rows:
        assert r.errors == 0 and r.sent == round(r.rate * 0.3)
        assert abs(r.achieved_rate - r.rate) <= 0.1 * r.rate
        assert 1 <= r.send_lag_p50_us <= r.send_lag_p99_us
    assert behaviour.arrivals == 3 + sum(r.sent for r in cap.rows)  # the probe, then every step's requests
    assert time.monotonic() - started < 10 + 5


async def test_a_real_search_with_an_impossible_lag_limit_stops_below_the_range(server):
    _, address = server
    cap = await meter_capacity_async(Target(address), lag_p99_limit_us=1, rates=(200, 800), step_s=0.3)
    assert cap.rate is None and cap.reason is StopReason.LAG_LIMIT and len(cap.rows) == 1
    assert cap.rows[0].send_lag_p99_us > 1


def test_a_real_port_with_no_server_is_a_clear_error():
    ip = random_loopback_ip()
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind((ip, 0))
        address = f"{ip}:{probe.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(TargetNotAnswering, match=f"{address} did not answer"):
            meter_capacity(Target(address))
    assert time.monotonic() - started < 5
