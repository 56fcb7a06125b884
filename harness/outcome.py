"""The outcome of one conformance check, and how pytest's phase reports map onto it.

NOT_SUPPORTED is an outcome of its own (SPEC §2): raised as :class:`NotSupported`, a subclass of
pytest's skip exception so pytest stops the test, but reported apart from SKIPPED and never counted
as PASSED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import re

import pytest

_SKIP_PREFIX = re.compile(r"^[\w.]*(Skipped|NotSupported): ")


class Outcome(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"  # setup or teardown failed: the check could not judge the mesh


class NotSupported(pytest.skip.Exception):  # type: ignore[misc, name-defined]
    """The mesh lacks a feature the check needs; the message says which and why."""


@dataclass
class PhaseSummary:
    """Folds the setup/call/teardown reports of one test into one outcome, reason and duration."""

    outcome: Outcome | None = None
    reason: str | None = None
    duration_s: float = 0.0

    def add(self, when: str, passed: bool, failed: bool, skipped: bool, *, not_supported: bool,
            reason: str | None, duration_s: float, xfail: bool = False) -> None:
        self.duration_s += duration_s
        if failed:
            # the first failure explains the test; a teardown error after a failed call adds nothing new
            if self.outcome not in (Outcome.FAILED, Outcome.ERROR):
                self.outcome = Outcome.FAILED if when == "call" else Outcome.ERROR
                self.reason = reason
        elif skipped:
            if self.outcome is None:
                self.outcome = Outcome.NOT_SUPPORTED if not_supported else Outcome.SKIPPED
                self.reason = ("expected failure: " if xfail else "") + (reason or "")
        elif passed and when == "call" and self.outcome is None:
            self.outcome = Outcome.PASSED

    def final(self) -> Outcome:
        # a test whose call never ran and was not skipped (interrupted) did not pass
        return self.outcome or Outcome.ERROR


def reason_of(report: pytest.TestReport) -> str | None:
    """The one-line why of a failed or skipped report: the assertion message or the skip reason."""
    longrepr = report.longrepr
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, lineno, "Type: reason")
        return _SKIP_PREFIX.sub("", str(longrepr[2]))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message.removeprefix("AssertionError: ")
    return str(longrepr).strip().splitlines()[-1] if str(longrepr).strip() else None
