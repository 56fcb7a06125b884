"""Address allocation: the control plane on .1, workload i on .(10+i), the fixed ports."""

import random

import pytest

from meshscenario import parse_scenario
from meshruntime.layout import (MAX_WORKLOADS, normalise_block, plan, port_is_free, random_block)

SCENARIO = parse_scenario({"services": [{"name": "client"},
                                        {"name": "backend", "versions": [{"name": "v1", "instances": 2},
                                                                         {"name": "v2"}]}]})


def test_plan_follows_workload_order():
    layout = plan(SCENARIO, "127.9.8.0/24")
    assert layout.controlplane == "127.9.8.1:15010"
    assert list(layout.workloads) == ["client-v1-0", "backend-v1-0", "backend-v1-1", "backend-v2-0"]
    backend1 = layout.workloads["backend-v1-1"]
    assert backend1.ip == "127.9.8.12"
    assert (backend1.app, backend1.echo_control, backend1.outbound, backend1.inbound, backend1.admin) == (
        "127.9.8.12:8080", "127.9.8.12:9000", "127.9.8.12:15001", "127.9.8.12:15006", "127.9.8.12:15000")


@pytest.mark.parametrize("bad", ["127.0.5", "10.1.2", "127.1", "127.255.1", "127.3.256.0/24", "127.a.b"])
def test_bad_blocks_are_refused(bad):
    with pytest.raises(ValueError):
        normalise_block(bad)


def test_too_many_workloads_for_one_block():
    big = parse_scenario({"services": [{"name": f"s{i}", "versions": [{"name": "v1", "instances": 32}]}
                                       for i in range(8)]})
    assert len(big.workloads()) > MAX_WORKLOADS
    with pytest.raises(ValueError, match="do not fit"):
        plan(big, "127.9.8")


def test_random_block_skips_a_block_in_use():
    import socket
    rng_seed = 1234
    # reproduce the first pick of the generator, then occupy its control-plane port
    first = random.Random(rng_seed)
    taken = f"127.{first.randint(1, 254)}.{first.randint(0, 255)}"
    with socket.socket() as holder:
        holder.bind((f"{taken}.1", 15010))
        holder.listen()
        assert not port_is_free(f"{taken}.1", 15010)
        chosen = random_block(random.Random(rng_seed))
    assert chosen != taken
    assert normalise_block(chosen) == chosen


def test_block_with_b_zero_is_a_block_not_a_prefix():
    # "127.66.0" once lost its last part to a suffix strip meant for "127.66.0.0"
    from meshruntime.layout import normalise_block

    assert normalise_block("127.66.0") == "127.66.0"
    assert normalise_block("127.66.0.0/24") == "127.66.0"
    assert normalise_block("127.66.7.0") == "127.66.7"
