import pytest

from harness.features import Feature, Profile, UnknownFeature, features_of, parse_feature, parse_features


def test_every_profile_has_features_and_every_feature_one_profile():
    groups = [features_of(p) for p in Profile]
    assert all(groups)
    assert sum(len(g) for g in groups) == len(Feature)
    assert Feature.MTLS_STRICT.profile is Profile.SECURITY
    assert Feature.FAULT_INJECTION_ABORT.profile is Profile.RESILIENCE
    assert Feature.CHAOS_PARTITION.profile is Profile.CHAOS
    assert Feature.SERVICE_GRAPH.profile is Profile.OBSERVABILITY


def test_values_are_unique_camel_case():
    values = [f.value for f in Feature]
    assert len(set(values)) == len(values)
    assert all(v[0].isupper() and v.isalnum() for v in values)


def test_parse_accepts_values_and_member_names_in_any_case():
    assert parse_feature("MtlsStrict") is parse_feature("mtls_strict") is parse_feature(" MTLS_STRICT ")
    assert parse_features("Retries, ,retry_backoff") == {Feature.RETRIES, Feature.RETRY_BACKOFF}
    assert parse_features(["Retries,Metrics", "Tracing"]) == {Feature.RETRIES, Feature.METRICS, Feature.TRACING}
    assert parse_features(None) == frozenset() == parse_features("")


def test_unknown_feature_names_the_known_ones():
    with pytest.raises(UnknownFeature, match="unknown feature 'Teleport'.*MtlsStrict"):
        parse_features("Retries,Teleport")
