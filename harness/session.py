"""One pytest session's conformance state: the check registry, the adapter, the results so far.

Nothing here starts a mesh on its own: the adapter is constructed (cheap) only once collection shows a
conformance check will run, and set up only when a test asks for the ``mesh`` fixture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Callable, Mapping

import pytest

from harness.adapters.base import Implementation, MeshAdapter
from harness.checks import CheckRegistry, ConformanceCheck
from harness.features import Feature
from harness.outcome import NotSupported, PhaseSummary
from harness.settings import Settings

ENTRY_POINT_GROUP = "meshconform.adapters"


@dataclass
class Tracked:
    check: ConformanceCheck
    phases: PhaseSummary = field(default_factory=PhaseSummary)
    evidence: dict[str, Any] = field(default_factory=dict)
    missing: frozenset[Feature] = frozenset()


class ConformanceSession:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CheckRegistry()
        self.tracked: dict[str, Tracked] = {}  # nodeid -> state, for selected conformance tests
        self.adapter: MeshAdapter | None = None
        self._implementation: Implementation | None = None
        self._set_up = False
        self._closed = False
        self.report_paths: list[str] = []
        self.report_errors: list[str] = []
        self.run = None  # the RunResult, once the session finished

    @property
    def active(self) -> bool:
        return self.adapter is not None

    # -- adapter lifecycle -------------------------------------------------------------------------
    def activate(self, factories: Mapping[str, Callable[..., MeshAdapter]]) -> None:
        """Construct the adapter named by --mesh (no processes start here)."""
        factory = factories.get(self.settings.mesh)
        if factory is None:
            known = ", ".join(sorted(factories)) or "none installed"
            raise pytest.UsageError(f"meshconform: no mesh adapter named {self.settings.mesh!r} ({known})")
        self.adapter = factory(options=dict(self.settings.mesh_options))

    @property
    def implementation(self) -> Implementation:
        if self._implementation is None:
            assert self.adapter is not None
            self._implementation = self.adapter.implementation()
        return self._implementation

    def set_up_mesh(self) -> MeshAdapter:
        assert self.adapter is not None, "the mesh fixture needs the plugin to be active"
        if not self._set_up:
            self._set_up = True  # a failed setup is still closed at the end: it may have started parts
            self.adapter.setup()
        return self.adapter

    def close_mesh(self) -> None:
        if self.adapter is not None and self._set_up and not self._closed:
            self._closed = True
            self.adapter.close()

    # -- features ------------------------------------------------------------------------------
    def supported_features(self) -> frozenset[Feature]:
        declared = self.settings.supported
        if declared is None:
            assert self.adapter is not None
            declared = frozenset(self.adapter.supported_features())
        return declared - self.settings.exempt

    def gate(self, nodeid: str) -> None:
        """Raise NotSupported unless every feature the check needs is supported and not exempt."""
        tracked = self.tracked.get(nodeid)
        if tracked is None:
            return
        missing = tracked.check.features - self.supported_features()
        if not missing:
            return
        tracked.missing = frozenset(missing)
        reasons = "; ".join(f"{f.value}: {self._why_unsupported(f)}" for f in sorted(missing, key=list(Feature).index))
        raise NotSupported(reasons)

    def _why_unsupported(self, feature: Feature) -> str:
        if feature in self.settings.exempt:
            return "exempt (--exempt-features)"
        if self.settings.supported is not None:
            return "not in --supported-features"
        assert self.adapter is not None
        try:
            return self.adapter.unsupported_reason(feature) or "not supported by the adapter"
        except Exception as exc:  # a reason is nice to have; its absence must not turn into an error
            return f"not supported by the adapter (no reason: {exc!r})"

    # -- results ---------------------------------------------------------------------------------
    def finish(self):
        """The RunResult of the tests that ran (kept in ``self.run``)."""
        from harness.report.model import CheckResult, RunResult

        results = tuple(
            CheckResult(check=t.check, nodeid=nodeid, outcome=t.phases.final(), duration_s=t.phases.duration_s,
                        reason=t.phases.reason, evidence=t.evidence, missing_features=t.missing)
            for nodeid, t in self.tracked.items() if t.phases.outcome is not None or t.phases.duration_s
        )
        declared = self.settings.supported
        if declared is None and self.adapter is not None:
            declared = frozenset(self.adapter.supported_features())
        self.run = RunResult(mesh=self.settings.mesh, implementation=self.implementation,
                             date=datetime.now(timezone.utc), meshconform_version=meshconform_version(),
                             results=results, declared_features=declared or frozenset(),
                             exempt_features=self.settings.exempt)
        return self.run

    def file_stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.settings.mesh)


def adapter_factories(config: pytest.Config) -> dict[str, Callable[..., MeshAdapter]]:
    """Entry points of ``meshconform.adapters``, then any ``pytest_meshconform_adapters`` hook results
    (which win, so a conftest can replace an installed adapter)."""
    factories: dict[str, Callable[..., MeshAdapter]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        factories[ep.name] = _lazy(ep)
    for mapping in reversed(config.hook.pytest_meshconform_adapters(config=config)):
        factories.update(mapping or {})
    return factories


def _lazy(ep: metadata.EntryPoint) -> Callable[..., MeshAdapter]:
    def load_and_construct(**kwargs: Any) -> MeshAdapter:
        try:
            cls = ep.load()
        except Exception as exc:
            raise pytest.UsageError(f"meshconform: cannot load mesh adapter {ep.name!r} ({ep.value}): {exc!r}")
        return cls(**kwargs)

    return load_and_construct


def meshconform_version() -> str:
    try:
        return metadata.version("meshconform")
    except metadata.PackageNotFoundError:
        return "unknown"
