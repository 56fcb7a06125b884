"""Conformance checks as data: a value (short name, features, profile, level) beside its test function.

    @conformance(
        short_name="MeshStrictRejectsPlaintext",
        description="Plaintext to a STRICT inbound gets no application response and no echo arrival.",
        features=[Feature.MTLS_STRICT],
        profile=Profile.SECURITY,
        level=Level.CORE,
    )
    def test_strict_rejects_plaintext(mesh, evidence): ...

The decorator only attaches data (a :class:`ConformanceCheck` and a ``conformance`` marker); the
pytest plugin registers every collected check in the session's :class:`CheckRegistry`, which refuses a
second check with the same short name and names both places. Registering per session (not at import)
keeps re-imports and nested pytest runs from colliding with themselves.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

import pytest

from harness.features import Feature, Level, Profile

_SHORT_NAME_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MARKER = "conformance"
ATTRIBUTE = "__conformance__"

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class ConformanceCheck:
    short_name: str  # stable CamelCase name, used by --run-test / --skip-tests and in reports
    description: str
    features: frozenset[Feature]  # all must be supported, else the check is NOT_SUPPORTED
    profile: Profile
    level: Level
    location: str = ""  # "path/to/test_file.py:LINE (function)" where it was declared

    def __post_init__(self) -> None:
        if not self.short_name or self.short_name[0] not in _SHORT_NAME_FIRST or not self.short_name.isalnum():
            raise ValueError(f"short_name {self.short_name!r} must be CamelCase letters and digits")
        if not isinstance(self.profile, Profile) or not isinstance(self.level, Level):
            raise TypeError("profile must be a Profile and level a Level (declared, never guessed)")
        bad = [f for f in self.features if not isinstance(f, Feature)]
        if bad:
            raise TypeError(f"features must be Feature members, got {bad!r}")


def conformance(*, short_name: str, description: str, features: Iterable[Feature], profile: Profile,
                level: Level) -> Callable[[F], F]:
    """Declare the decorated test function a conformance check (see the module docstring)."""

    def mark(fn: F) -> F:
        check = ConformanceCheck(short_name=short_name, description=description.strip(),
                                 features=frozenset(features), profile=profile, level=level,
                                 location=_location_of(fn))
        setattr(fn, ATTRIBUTE, check)
        return getattr(pytest.mark, MARKER).with_args(check)(fn)

    return mark


def check_of(obj: object) -> ConformanceCheck | None:
    """The check declared on a test function, or on a pytest item's function."""
    fn = getattr(obj, "function", obj)
    return getattr(fn, ATTRIBUTE, None)


class DuplicateCheck(ValueError):
    pass


class CheckRegistry:
    """Checks by short name; adding a second check under a taken name raises :class:`DuplicateCheck`."""

    def __init__(self) -> None:
        self._checks: dict[str, ConformanceCheck] = {}

    def add(self, check: ConformanceCheck) -> None:
        known = self._checks.get(check.short_name)
        if known is not None and known != check:
            raise DuplicateCheck(f"conformance short name {check.short_name!r} is declared twice: at "
                                 f"{known.location} and at {check.location}")
        self._checks[check.short_name] = check

    def get(self, short_name: str) -> ConformanceCheck | None:
        return self._checks.get(short_name)

    def __contains__(self, short_name: object) -> bool:
        return short_name in self._checks

    def __iter__(self) -> Iterator[ConformanceCheck]:
        return iter(sorted(self._checks.values(), key=lambda c: (c.profile.value, c.short_name)))

    def __len__(self) -> int:
        return len(self._checks)


def _location_of(fn: Callable) -> str:
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__qualname__", repr(fn))
    return f"{code.co_filename}:{code.co_firstlineno} ({fn.__qualname__})"
