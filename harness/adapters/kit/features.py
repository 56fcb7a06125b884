"""Features are claimed, not assumed: an adapter lists what it supports, and everything else is
NOT_SUPPORTED with a reason. A new :class:`~harness.features.Feature` is therefore claimed by no adapter
until someone says it works there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from harness.features import Feature


@dataclass(frozen=True)
class FeatureClaims:
    adapter: str
    supported: frozenset[Feature]
    reasons: Mapping[Feature, str] = field(default_factory=dict)  # why a feature is not supported

    @classmethod
    def of(cls, adapter: str, supported: Iterable[Feature], reasons: Mapping[Feature, str]) -> "FeatureClaims":
        supported = frozenset(supported)
        both = supported & frozenset(reasons)
        if both:
            raise ValueError(f"{adapter}: claimed and given a reason not to be: {sorted(f.value for f in both)}")
        return cls(adapter, supported, dict(reasons))

    def reason(self, feature: Feature) -> str:
        if feature in self.supported:
            return f"{feature.value} is supported"
        return self.reasons.get(feature, f"the {self.adapter} adapter does not claim {feature.value}")
