import pytest

from harness.checks import CheckRegistry, ConformanceCheck, DuplicateCheck, check_of, conformance
from harness.features import Feature, Level, Profile


def declare(name="SplitHolds", fn_name="test_split"):
    def fn():
        pass
    fn.__name__ = fn.__qualname__ = fn_name
    return conformance(short_name=name, description="  the split holds  ", features=[Feature.WEIGHTED_ROUTING],
                       profile=Profile.ROUTING, level=Level.CORE)(fn)


def test_decorator_attaches_the_check_and_a_marker():
    fn = declare()
    check = check_of(fn)
    assert check == ConformanceCheck("SplitHolds", "the split holds", frozenset({Feature.WEIGHTED_ROUTING}),
                                     Profile.ROUTING, Level.CORE, check.location)
    assert "test_checks.py:" in check.location and "(test_split)" in check.location
    marks = [m for m in fn.pytestmark if m.name == "conformance"]
    assert marks[0].args == (check,)


def test_check_is_frozen_and_validated():
    check = check_of(declare())
    with pytest.raises(AttributeError):
        check.short_name = "Other"
    with pytest.raises(ValueError, match="CamelCase"):
        declare(name="not-camel")
    with pytest.raises(TypeError, match="Profile"):
        ConformanceCheck("X", "d", frozenset(), "MESH-ROUTING", Level.CORE)
    with pytest.raises(TypeError, match="Feature"):
        ConformanceCheck("X", "d", frozenset({"MtlsStrict"}), Profile.ROUTING, Level.CORE)


def test_registry_refuses_a_second_check_with_the_same_name_naming_both_places():
    registry = CheckRegistry()
    first = check_of(declare(fn_name="test_one"))
    registry.add(first)
    registry.add(first)  # the same declaration seen twice (a re-import) is fine
    with pytest.raises(DuplicateCheck, match=r"'SplitHolds' is declared twice: at .*\(test_one\) and at .*\(test_two\)"):
        registry.add(check_of(declare(fn_name="test_two")))
    assert len(registry) == 1 and "SplitHolds" in registry and registry.get("SplitHolds") is first
