"""The control plane's endpoint table across restarts (meshproxy/controlplane/registry.py): a restarted
control plane pushes the endpoints it had while their sidecars register again, so no caller is handed
a partial set; a remembered workload still has to register before its config and acks are served."""

from __future__ import annotations

from meshproxy.controlplane.registry import Registry


def _fill(registry: Registry) -> None:
    registry.register("a-v1-0", "a", "default", "v1", 0, "127.9.9.11:15006", by_admin=False)
    registry.register("b-v1-0", "b", "default", "v1", 0, "127.9.9.12:15006", by_admin=False)
    registry.register("b-v1-0", "b", "default", "v1", 0, "127.9.9.50:40000", by_admin=True)  # a fault proxy


def test_a_restarted_registry_pushes_the_endpoints_it_had(tmp_path):
    path = tmp_path / "endpoints.json"
    first = Registry(path)
    _fill(first)
    again = Registry(path)
    assert again.endpoints() == first.endpoints()
    assert again.endpoints()["b-v1-0"]["address"] == "127.9.9.50:40000"  # the override survives too
    # remembered, not registered: a config or ack from them answers 409, status does not count them,
    # and an in-effect wait waits for them
    assert again.get("a-v1-0") is None and again.workloads_status() == {}
    assert again.lagging(1) == ["a-v1-0", "b-v1-0"]
    assert again.register("a-v1-0", "a", "default", "v1", 0, "127.9.9.11:15006", by_admin=False) is False
    assert again.get("a-v1-0") is not None and list(again.workloads_status()) == ["a-v1-0"]


def test_deregistration_is_kept_and_memory_only_registries_write_nothing(tmp_path):
    path = tmp_path / "endpoints.json"
    first = Registry(path)
    _fill(first)
    first.deregister("a-v1-0")
    assert list(Registry(path).endpoints()) == ["b-v1-0"]
    memory = Registry()
    _fill(memory)
    assert not (tmp_path / "other.json").exists() and list(tmp_path.iterdir()) == [path]


def test_a_damaged_table_starts_empty(tmp_path):
    path = tmp_path / "endpoints.json"
    path.write_text("{not json")
    assert Registry(path).endpoints() == {}
