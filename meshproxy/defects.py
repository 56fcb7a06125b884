"""Deliberate defects, so tests can prove each conformance check fails against a broken mesh.

The reference mesh reads them from the environment variable ``MESHPROXY_DEFECTS``: a JSON object
``{defect_name: parameter}`` (``true`` for a defect without a parameter). Nothing is broken unless a
test asks: an unset or empty variable means a correct mesh. The list of defects is in
docs/architecture.md; an unknown name is an error so a typo cannot silently test a correct mesh. In the
code they are one typed value, :class:`Defects`, passed to what honours them and read by name.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

ENV = "MESHPROXY_DEFECTS"

KNOWN = frozenset({
    "inbound_accepts_plaintext", "inbound_cert_optional", "extra_trust", "ignore_cert_time",
    "skip_trust_domain_check", "ignore_authz", "spoof_xfcc", "plaintext_between_sidecars",
    "no_rotation", "ca_two_uri_sans", "ca_leaf_is_ca", "ca_ttl_multiplier",
    "permissive_as_strict", "authz_deny_all",
    "weights", "retries_delta", "retry_any_status", "backoff", "ignore_timeout", "fault_percent_delta",
    "ignore_header_match", "ignore_path_prefix", "no_route_status",
    "rr_bias", "lr_random", "ring_not_sticky", "ring_remap_all", "random_bias",
    # circuit breaking and outlier detection (suites/breaking)
    "breaker_ignored", "breaker_limit_delta", "pending_limit_delta", "overflow_queued", "no_overload_marker",
    "retry_breaker_ignored",
    "ejection_never_ends", "ejection_not_multiplied", "max_ejection_percent_ignored", "eject_late",
    # active health checks (suites/health)
    "health_check_ignored", "healthy_threshold_ignored",
    # chaos (suites/chaos): a refused connection is not retried; per-try timeouts never fire; an endpoint
    # that left a caller's set (a restarted sidecar) is never used by that caller again; a sidecar throws
    # its configuration away when its config watch fails (the control plane is away)
    "connect_failure_not_retried", "ignore_per_try_timeout", "endpoint_never_readmitted",
    "config_dropped_without_controlplane",
    # chaos, the control plane's outage: a sidecar whose certificate renewal failed never tries again
    # (rotation stops for good after an outage); a sidecar whose config watch failed never watches again
    "rotation_stops_after_outage", "config_watch_stops_after_outage",
    # chaos: a sidecar started while the control plane is away reports ready before it has joined
    "ready_without_controlplane",
    # performance (suites/performance): a fixed delay per outbound request (param: ms), config applied
    # late (param: seconds), memory kept per outbound request (param: bytes)
    "hop_delay_ms", "slow_config_apply", "leak_per_request",
    # hardening (suites/hardening), in meshproxy/sidecar/http1.py: a request with Content-Length and
    # Transfer-Encoding read by its chunks and the connection kept open (what follows is a request of its
    # own); trailer fields merged into the headers; a second Host line accepted and forwarded; CONNECT
    # forwarded like any request; a listener that refused bad input refuses every connection afterwards
    "forward_cl_te", "merge_trailers", "accept_duplicate_host", "accept_connect", "wedged_after_bad_input",
    # hardening, resources (http1.py, limits.py, inbound.py): request headers may trickle in for ever; a
    # declared body may stall for ever; any number and size of request headers is forwarded; a TLS
    # handshake may stall for ever; a closed connection's slot is never freed (param: the connection cap)
    "no_header_timeout", "no_body_timeout", "no_header_limits", "no_handshake_timeout", "leak_connection_slots",
    # observability (suites/observability), in meshproxy/sidecar/telemetry.py and outbound.py: retried tries
    # missing from the retry counter and the destination reporter; traceparent/B3 not forwarded upstream;
    # the inbound span parented on the app's span instead of the outbound's; no access-log line for
    # answers >= 500; istio_requests_total crediting another workload as the source
    "metrics_miss_retries", "drop_traceparent", "span_wrong_parent", "access_log_skips_errors",
    "graph_wrong_source",
})


class Defects(dict):
    """The deliberate defects of one mesh process: names checked against :data:`KNOWN` when made and
    when read. Read them one way, ``active(name)`` (is it on?) or ``param(name, default)`` (its
    parameter); a misspelt name is a KeyError, never a silently correct mesh. Never changed once made."""

    __slots__ = ()

    def __init__(self, values: Mapping[str, Any] | None = None):
        values = dict(values or {})
        unknown = sorted(set(values) - KNOWN)
        if unknown:
            raise ValueError(f"unknown defects: {', '.join(unknown)} (known: {', '.join(sorted(KNOWN))})")
        super().__init__(values)

    @classmethod
    def of(cls, values: "Mapping[str, Any] | Defects | None") -> "Defects":
        return values if isinstance(values, Defects) else cls(values)

    def active(self, name: str) -> bool:
        if name not in KNOWN:
            raise KeyError(f"no defect named {name!r}")
        return bool(self.get(name))

    def param(self, name: str, default: Any = None) -> Any:
        if name not in KNOWN:
            raise KeyError(f"no defect named {name!r}")
        return self.get(name, default)

    def __reduce__(self):
        return (Defects, (dict(self),))

    def _frozen(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Defects cannot change once made")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _frozen  # type: ignore[assignment]


NONE = Defects()


def parse(text: str | None) -> Defects:
    if not text:
        return NONE
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{ENV} must be a JSON object of defect names")
    unknown = sorted(set(value) - KNOWN)
    if unknown:
        raise ValueError(f"{ENV} names unknown defects: {', '.join(unknown)}")
    return Defects(value)


def from_env(environ: Mapping[str, str] = os.environ) -> Defects:
    return parse(environ.get(ENV))


_ACTIVE: Defects | None = None


def current() -> Defects:
    """The defects of this process (read once from the environment)."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = from_env()
    return _ACTIVE


def encode(defects: Mapping[str, Any]) -> str:
    """The environment value for a set of defects (validated)."""
    return json.dumps(dict(Defects.of(defects)))
