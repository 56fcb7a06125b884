"""The typed names of what a mesh can do (SPEC §4), the profiles that group checks, and check levels.

A feature is what an adapter claims (``supported_features()``) and what a check needs (``features=``).
Each feature has a stable CamelCase value, used on the command line (``--supported-features``), in ini
files and in reports; the enum member name (``MTLS_STRICT``) is accepted too, case-insensitively.

Levels are declared by each check, never guessed from its features (Gateway API's own regret): a core
check is one every mesh is expected to pass, an extended one covers an optional capability.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable


class Profile(str, Enum):
    SECURITY = "MESH-SECURITY"
    ROUTING = "MESH-ROUTING"
    RESILIENCE = "MESH-RESILIENCE"
    CHAOS = "MESH-CHAOS"
    PERFORMANCE = "MESH-PERFORMANCE"
    OBSERVABILITY = "MESH-OBSERVABILITY"
    HARDENING = "MESH-HARDENING"


class Level(str, Enum):
    CORE = "core"
    EXTENDED = "extended"


class Feature(str, Enum):
    # security
    MTLS_STRICT = "MtlsStrict"
    MTLS_PERMISSIVE = "MtlsPermissive"
    AUTHZ = "Authorization"
    IDENTITY = "PeerIdentity"  # the destination sees the caller's true identity
    SVID = "X509Svid"
    CERT_ROTATION = "CertificateRotation"
    WIRE_ENCRYPTION = "WireEncryption"
    # routing
    WEIGHTED_ROUTING = "WeightedRouting"
    HEADER_MATCH = "HeaderMatch"
    PATH_MATCH = "PathPrefixMatch"
    WEIGHT_SHIFT = "WeightShift"
    LB_ROUND_ROBIN = "LbRoundRobin"
    LB_LEAST_REQUEST = "LbLeastRequest"
    LB_RING_HASH = "LbRingHash"
    LB_RANDOM = "LbRandom"
    HEALTH_CHECK_ACTIVE = "HealthCheckActive"
    HEALTH_CHECK_PASSIVE = "HealthCheckPassive"
    # resilience
    RETRIES = "Retries"
    RETRY_BACKOFF = "RetryBackoff"
    PER_TRY_TIMEOUT = "PerTryTimeout"
    REQUEST_TIMEOUT = "RequestTimeout"
    CIRCUIT_BREAKING = "CircuitBreaking"
    CIRCUIT_BREAKING_RETRIES = "CircuitBreakingRetries"  # a limit on concurrent retries (Envoy max_retries)
    OUTLIER_DETECTION = "OutlierDetection"
    FAULT_INJECTION_DELAY = "FaultInjectionDelay"
    FAULT_INJECTION_ABORT = "FaultInjectionAbort"
    # chaos: each needs the harness to act on the mesh (ProcessControl, HopInterposer)
    CHAOS_UPSTREAM_KILL = "ChaosUpstreamKill"
    CHAOS_SIDECAR_RESTART = "ChaosSidecarRestart"
    CHAOS_CONTROL_PLANE_KILL = "ChaosControlPlaneKill"
    CHAOS_SLOW_NETWORK = "ChaosSlowNetwork"  # latency / bandwidth toxics on a hop: the timeouts fire as declared
    CHAOS_PARTITION = "ChaosPartition"
    # performance
    LATENCY_OVERHEAD = "LatencyOverhead"
    THROUGHPUT = "Throughput"
    CONFIG_PROPAGATION = "ConfigPropagation"
    RESOURCE_USE = "ResourceUse"
    # observability
    METRICS = "Metrics"
    TRACING = "TracePropagation"
    ACCESS_LOGS = "AccessLogs"
    SERVICE_GRAPH = "ServiceGraph"
    # hardening (suites/hardening): bad input at a workload's listeners, judged by the echo's journal
    HARDENING_SMUGGLING = "HardeningSmuggling"  # CL+TE, obfuscated TE, conflicting Content-Length
    HARDENING_DUPLICATE_HOST = "HardeningDuplicateHost"  # two Host lines (or none in HTTP/1.1): 400
    HARDENING_TRAILERS = "HardeningTrailers"  # a chunked trailer never becomes a header
    HARDENING_CONNECT = "HardeningConnect"  # CONNECT refused, never tunnelled
    HARDENING_SLOW_CLIENTS = "HardeningSlowClients"  # slowloris headers, an idle declared body: closed in a bound
    HARDENING_CONNECTION_FLOOD = "HardeningConnectionFlood"  # 500 idle connections: still serving, slots released
    HARDENING_TLS_GARBAGE = "HardeningTlsGarbage"  # garbage, a truncated ClientHello, plaintext at a STRICT inbound
    HARDENING_LIMITS = "HardeningLimits"  # absurd request headers and targets: 431/414, normal large ones pass
    HARDENING_KEEPS_SERVING = "HardeningKeepsServing"  # after garbage the listener still answers

    @property
    def profile(self) -> Profile:
        """The profile whose checks usually cover this feature (for grouping; checks declare their own)."""
        return _HOME[self]


# The catalogue order above is grouped by profile; each group ends at the named feature.
_GROUP_ENDS = [
    (Feature.WIRE_ENCRYPTION, Profile.SECURITY),
    (Feature.HEALTH_CHECK_PASSIVE, Profile.ROUTING),
    (Feature.FAULT_INJECTION_ABORT, Profile.RESILIENCE),
    (Feature.CHAOS_PARTITION, Profile.CHAOS),
    (Feature.RESOURCE_USE, Profile.PERFORMANCE),
    (Feature.SERVICE_GRAPH, Profile.OBSERVABILITY),
    (Feature.HARDENING_KEEPS_SERVING, Profile.HARDENING),
]


def _home_profiles() -> dict[Feature, Profile]:
    homes, groups = {}, iter(_GROUP_ENDS)
    end, profile = next(groups)
    for feature in Feature:
        homes[feature] = profile
        if feature is end and feature is not _GROUP_ENDS[-1][0]:
            end, profile = next(groups)
    return homes


_HOME = _home_profiles()

_BY_NAME = {**{f.name.lower(): f for f in Feature}, **{f.value.lower(): f for f in Feature}}


class UnknownFeature(ValueError):
    pass


def parse_feature(text: str) -> Feature:
    """``"MtlsStrict"``, ``"mtls_strict"`` or ``"MTLS_STRICT"`` → ``Feature.MTLS_STRICT``."""
    try:
        return _BY_NAME[text.strip().lower()]
    except KeyError:
        known = ", ".join(f.value for f in Feature)
        raise UnknownFeature(f"unknown feature {text.strip()!r}; known features: {known}") from None


def parse_features(text: str | Iterable[str] | None) -> frozenset[Feature]:
    """A comma list (or an iterable of names) → a set of features; empty items are ignored."""
    if text is None:
        return frozenset()
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    return frozenset(parse_feature(i) for i in items if i.strip())


def features_of(profile: Profile) -> frozenset[Feature]:
    return frozenset(f for f in Feature if f.profile is profile)
