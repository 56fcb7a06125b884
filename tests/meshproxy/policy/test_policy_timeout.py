"""Deadline: the route timeout spans all tries; each try gets min(per_try, remaining)."""

import pytest

from meshproxy.defects import Defects
from meshproxy.policy.timeout import Deadline


def test_remaining_counts_down_to_zero():
    deadline = Deadline(2.0, now=100.0)
    assert deadline.remaining(100.0) == 2.0
    assert deadline.remaining(101.5) == pytest.approx(0.5)
    assert deadline.remaining(105.0) == 0.0


def test_expired_at_the_deadline():
    deadline = Deadline(2.0, now=100.0)
    assert not deadline.expired(101.999)
    assert deadline.expired(102.0) and deadline.expired(150.0)


def test_per_try_is_cut_to_what_is_left_of_the_route_timeout():
    deadline = Deadline(1.0, now=0.0)
    assert deadline.per_try(0.3, now=0.0) == 0.3
    # after two 0.3 s tries and backoffs the third try only gets what is left
    assert deadline.per_try(0.3, now=0.85) == pytest.approx(0.15)
    assert deadline.per_try(None, now=0.4) == pytest.approx(0.6)


@pytest.mark.parametrize("route_timeout", [None, 0])
def test_no_route_timeout(route_timeout):
    deadline = Deadline(route_timeout, now=5.0)
    assert deadline.remaining(1e9) is None and not deadline.expired(1e9)
    assert deadline.per_try(0.25, now=1e9) == 0.25
    assert deadline.per_try(None, now=1e9) is None


def test_per_try_zero_means_unset():
    assert Deadline(1.0, now=0.0).per_try(0, now=0.25) == pytest.approx(0.75)


def test_defect_ignore_timeout_drops_the_route_deadline():
    deadline = Deadline(1.0, now=0.0, defects=Defects({"ignore_timeout": True}))
    assert not deadline.expired(10.0) and deadline.remaining(10.0) is None
    assert deadline.per_try(0.2, now=10.0) == 0.2  # per-try timeouts still apply


def test_defects_are_named_when_made_and_when_read():
    with pytest.raises(ValueError, match="unknown defects: ignore_timout"):
        Defects({"ignore_timout": True})
    with pytest.raises(KeyError, match="no defect named 'ignore_timout'"):
        Defects().active("ignore_timout")
    with pytest.raises(TypeError):
        Defects({"ignore_timeout": True})["ignore_timeout"] = False
