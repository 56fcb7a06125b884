"""HAProxy as the mesh, for real: the security and routing suites in a subprocess (~40 s)."""

from __future__ import annotations

import shutil

import pytest

from harness.adapters.haproxy import HaproxyAdapter
from harness.features import Feature

from _suite_run import assert_definite, run_suites  # this directory is on sys.path under pytest

pytestmark = pytest.mark.slow


def test_declared_features_are_honest():
    adapter = HaproxyAdapter()
    assert Feature.RETRY_BACKOFF not in adapter.supported_features()
    assert "no backoff" in adapter.unsupported_reason(Feature.RETRY_BACKOFF)
    assert {Feature.MTLS_STRICT, Feature.AUTHZ, Feature.WEIGHTED_ROUTING, Feature.RETRIES} <= adapter.supported_features()
    for feature in set(Feature) - adapter.supported_features():
        assert adapter.unsupported_reason(feature) != f"{feature.value} is supported"


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="unknown haproxy mesh options: colour"):
        HaproxyAdapter(options={"colour": "red"})


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed")
def test_security_and_routing_suites_against_haproxy(tmp_path):
    result, report = run_suites("haproxy", tmp_path)
    tests = assert_definite(report, result.stdout)
    outcomes = {t["shortName"]: t["outcome"] for t in tests}
    # what HAProxy does express, it must do right: mTLS, identity and matches are deterministic
    for name in ("MeshStrictRejectsPlaintext", "MeshRejectsForeignTrustDomain", "MeshDestinationSeesCallerIdentity",
                 "MeshAuthzDeniesUnlistedPrincipal", "MeshHeaderMatch", "MeshPathPrefixMatch", "MeshNoRouteAnswer"):
        assert outcomes[name] == "PASSED", f"{name}: {next(t['reason'] for t in tests if t['shortName'] == name)}"
