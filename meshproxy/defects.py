"""Deliberate defects, so tests can prove each conformance check fails against a broken mesh.

The reference mesh reads them from the environment variable ``MESHPROXY_DEFECTS``: a JSON object
``{defect_name: parameter}`` (``true`` for a defect without a parameter). Nothing is broken unless a
test asks: an unset or empty variable means a correct mesh. The list of defects is in
docs/architecture.md; an unknown name is an error so a typo cannot silently test a correct mesh.
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
})


def parse(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{ENV} must be a JSON object of defect names")
    unknown = sorted(set(value) - KNOWN)
    if unknown:
        raise ValueError(f"{ENV} names unknown defects: {', '.join(unknown)}")
    return value


def from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    return parse(environ.get(ENV))


_ACTIVE: dict[str, Any] | None = None


def current() -> dict[str, Any]:
    """The defects of this process (read once from the environment)."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = from_env()
    return _ACTIVE


def active(name: str) -> bool:
    assert name in KNOWN, name
    return bool(current().get(name))


def param(name: str, default: Any = None) -> Any:
    assert name in KNOWN, name
    return current().get(name, default)


def encode(defects: Mapping[str, Any]) -> str:
    """The environment value for a set of defects (validated)."""
    text = json.dumps(dict(defects))
    parse(text)
    return text
