"""The plugin end to end: small conformance suites run by pytester against an inline test adapter."""

import xml.etree.ElementTree as ET

import yaml

from tests.harness.fake_mesh import SUITE_HEADER, lifecycle, setup_project

CHECKS = SUITE_HEADER + '''
@conformance(short_name="StrictWorks", description="strict is enforced", features=[Feature.MTLS_STRICT],
             profile=Profile.SECURITY, level=Level.CORE)
def test_strict(mesh, evidence):
    evidence.samples = 10
    evidence.measure("arrivals", 0, unit="requests")
    evidence.plot("split shares", kind="bar", data={"labels": ["v1", "v2"], "values": [0.95, 0.05]})


@conformance(short_name="AuthzWorks", description="authz", features=[Feature.AUTHZ],
             profile=Profile.SECURITY, level=Level.CORE)
def test_authz(mesh):
    raise AssertionError("must never run: the fake mesh has no authz")


@conformance(short_name="RetriesCounted", description="retries", features=[Feature.RETRIES],
             profile=Profile.RESILIENCE, level=Level.EXTENDED)
def test_retries(mesh, evidence):
    evidence.measure("arrivals", 3)
    assert 3 == 2, "journal shows 3 arrivals, expected 2"
'''


def run(pytester, *args, **kwargs):
    return pytester.runpytest("-p", "no:cacheprovider", "--mesh=fake", *args, **kwargs)


def report(pytester, mesh="fake"):
    return yaml.safe_load((pytester.path / "reports" / f"conformance-{mesh}.yaml").read_text())


def by_name(doc):
    return {t["shortName"]: t for t in doc["tests"]}


def test_plain_run_starts_nothing_and_writes_nothing(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_plain="def test_ok():\n    assert 1 + 1 == 2\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert lifecycle(pytester) == []
    assert not (pytester.path / "reports").exists()
    assert "meshconform:" not in result.stdout.str()


def test_not_supported_is_its_own_outcome_and_never_passes(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester)
    outcomes = result.parseoutcomes()
    assert outcomes == {"passed": 1, "failed": 1, "not_supported": 1}, outcomes
    result.stdout.fnmatch_lines(["meshconform: mesh=fake implementation=fakemesh 1.2.3",
                                 "test_suite.py .NF*",
                                 "MESH-SECURITY*core*partial*passed=1 failed=0 not_supported=1 skipped=0",
                                 "NOT_SUPPORTED AuthzWorks: Authorization: fakemesh has no Authorization",
                                 "*1 failed, 1 passed, 1 not_supported*"])
    tests = by_name(report(pytester))
    assert tests["AuthzWorks"]["outcome"] == "NOT_SUPPORTED"
    assert tests["AuthzWorks"]["reason"] == "Authorization: fakemesh has no Authorization"
    assert tests["StrictWorks"]["outcome"] == "PASSED"
    assert tests["RetriesCounted"]["outcome"] == "FAILED"


def test_mesh_is_not_started_when_every_check_is_unsupported(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--run-test=AuthzWorks")
    result.assert_outcomes()  # nothing passed, failed or skipped ...
    assert result.parseoutcomes() == {"not_supported": 1, "deselected": 2}
    assert lifecycle(pytester) == ["construct"]  # ... and the mesh was never set up


def test_mesh_is_set_up_once_and_closed_once(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    run(pytester)
    assert lifecycle(pytester) == ["construct", "setup", "close"]


def test_mesh_is_closed_on_keyboard_interrupt(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=SUITE_HEADER + '''
@conformance(short_name="Interrupted", description="d", features=[Feature.MTLS_STRICT],
             profile=Profile.SECURITY, level=Level.CORE)
def test_interrupted(mesh):
    raise KeyboardInterrupt
''')
    result = run(pytester, no_reraise_ctrlc=True)
    assert result.ret == 2
    assert lifecycle(pytester) == ["construct", "setup", "close"]


def test_failed_setup_is_an_error_and_still_closed(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--mesh-option", "fail_setup=1", "--run-test=StrictWorks,RetriesCounted")
    result.assert_outcomes(errors=2, deselected=1)
    assert lifecycle(pytester) == ["construct", "setup", "close"]
    tests = by_name(report(pytester))
    assert {t["outcome"] for t in tests.values()} == {"ERROR"}
    assert "mesh would not start" in tests["StrictWorks"]["reason"]


def test_duplicate_short_names_are_a_collection_error_naming_both_places(pytester):
    setup_project(pytester)
    body = SUITE_HEADER + '''
@conformance(short_name="Twice", description="d", features=[], profile=Profile.ROUTING, level=Level.CORE)
def test_{name}():
    pass
'''
    pytester.makepyfile(test_one=body.format(name="one"), test_two=body.format(name="two"))
    result = run(pytester)
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*ERROR collecting test_two.py*",
                                 "*'Twice' is declared twice: at *test_one.py:* (test_one) and at *test_two.py:* (test_two)*"])


def test_run_test_keeps_only_named_checks(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS, test_plain="def test_plain():\n    pass\n")
    result = run(pytester, "--run-test=StrictWorks")
    assert result.parseoutcomes() == {"passed": 1, "deselected": 3}
    assert [t["shortName"] for t in report(pytester)["tests"]] == ["StrictWorks"]


def test_skip_tests_deselects_named_checks(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--skip-tests=RetriesCounted,AuthzWorks")
    assert result.parseoutcomes() == {"passed": 1, "deselected": 2}


def test_unknown_check_name_is_a_usage_error(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--run-test=StrictWork")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--run-test names checks that were not collected: StrictWork*"])


def test_exempt_features_make_a_supported_check_not_supported(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--exempt-features=mtls_strict")
    assert result.parseoutcomes() == {"failed": 1, "not_supported": 2}
    tests = by_name(report(pytester))
    assert tests["StrictWorks"]["reason"] == "MtlsStrict: exempt (--exempt-features)"
    assert report(pytester)["exemptFeatures"] == ["MtlsStrict"]


def test_supported_features_override_the_adapter(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--supported-features=Authorization")
    # AuthzWorks now runs (and fails); the adapter's own MtlsStrict/Retries are no longer claimed
    assert result.parseoutcomes() == {"failed": 1, "not_supported": 2}
    assert by_name(report(pytester))["StrictWorks"]["reason"] == "MtlsStrict: not in --supported-features"


def test_unknown_feature_name_is_a_usage_error(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester, "--exempt-features=Teleportation")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*unknown feature 'Teleportation'*"])


def test_ini_twins_and_mesh_options(pytester):
    setup_project(pytester, "meshconform_mesh = fake\nmeshconform_mesh_options =\n    features=Authorization\n"
                            "meshconform_report_output = out\n")
    pytester.makepyfile(test_suite=CHECKS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    # the adapter read features=Authorization from its options, so only AuthzWorks runs
    assert result.parseoutcomes() == {"failed": 1, "not_supported": 2}
    assert (pytester.path / "out" / "conformance-fake.yaml").exists()


def test_unknown_mesh_lists_the_known_ones(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mesh=nosuchmesh")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*no mesh adapter named 'nosuchmesh'*fake*"])


def test_yaml_report_is_a_conformance_report_with_evidence(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    run(pytester)
    text = (pytester.path / "reports" / "conformance-fake.yaml").read_text()
    assert text.startswith("# meshconform conformance report.")
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "meshconform.io/v1alpha1" and doc["kind"] == "ConformanceReport"
    assert doc["implementation"]["project"] == "fakemesh" and doc["implementation"]["version"] == "1.2.3"
    profiles = {p["name"]: p for p in doc["profiles"]}
    security = profiles["MESH-SECURITY"]["core"]
    assert security["statistics"] == {"Passed": 1, "Failed": 0, "NotSupported": 1, "Skipped": 0}
    assert security["supportedFeatures"] == ["MtlsStrict"]
    assert security["unsupportedFeatures"] == ["Authorization"]
    resilience = profiles["MESH-RESILIENCE"]["extended"]
    assert resilience["result"] == "failure" and resilience["failedTests"] == ["RetriesCounted"]
    assert resilience["supportedFeatures"] == []  # declared by the adapter, but its test failed
    tests = by_name(doc)
    assert tests["StrictWorks"]["evidence"]["measurements"] == {"arrivals": {"value": 0, "unit": "requests"}}
    assert tests["RetriesCounted"]["evidence"]["measurements"]["arrivals"]["value"] == 3
    assert tests["RetriesCounted"]["reason"].startswith("journal shows 3 arrivals, expected 2")
    assert tests["StrictWorks"]["durationS"] >= 0


def test_junit_report_is_written_by_pytest_junitxml(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    run(pytester)
    root = ET.parse(pytester.path / "reports" / "junit-fake.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    authz = [c for c in suite.iter("testcase") if c.get("name") == "test_authz"][0]
    props = {p.get("name"): p.get("value") for p in authz.iter("property")}
    assert props == {"meshconform_outcome": "NOT_SUPPORTED"}


def test_user_junitxml_wins(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    run(pytester, "--junitxml=mine.xml")
    assert (pytester.path / "mine.xml").exists()
    assert not (pytester.path / "reports" / "junit-fake.xml").exists()


def test_html_report_is_self_contained_with_plots(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    result = run(pytester)
    html = (pytester.path / "reports" / "conformance-fake.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1
    assert 'class="NOT_SUPPORTED"' in html and 'class="FAILED"' in html
    assert "<script" not in html and "http-equiv" not in html
    result.stdout.fnmatch_lines(["report: *conformance-fake.html"])


def test_async_checks_and_parametrised_checks(pytester):
    setup_project(pytester, "asyncio_mode = auto\n")
    pytester.makepyfile(test_suite=SUITE_HEADER + '''
import asyncio
import pytest

@pytest.mark.parametrize("split", ["95-5", "70-30"])
@conformance(short_name="WeightedSplit", description="d", features=[Feature.MTLS_STRICT],
             profile=Profile.ROUTING, level=Level.CORE)
async def test_split(mesh, evidence, split):
    await asyncio.sleep(0)  # proves an async check runs on the loop: yields once, waits for nothing
    evidence["split"] = split
''')
    result = run(pytester)
    result.assert_outcomes(passed=2)
    tests = by_name(report(pytester))
    assert tests["WeightedSplit[95-5]"]["evidence"] == {"split": "95-5"}
    assert tests["WeightedSplit[70-30]"]["evidence"] == {"split": "70-30"}


def test_not_supported_raised_in_the_test_body_is_not_supported(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=SUITE_HEADER + '''
from harness.outcome import NotSupported

@conformance(short_name="NeedsCapability", description="d", features=[Feature.MTLS_STRICT],
             profile=Profile.SECURITY, level=Level.CORE)
def test_capability(mesh):
    raise NotSupported("the fake adapter does not offer HopInterposer")
''')
    result = run(pytester)
    assert result.parseoutcomes() == {"not_supported": 1}
    (test,) = report(pytester)["tests"]
    assert (test["outcome"], test["reason"]) == ("NOT_SUPPORTED", "the fake adapter does not offer HopInterposer")


def test_a_bad_performance_budget_is_a_usage_error_naming_its_flag(pytester):
    setup_project(pytester)
    pytester.makepyfile(test_suite=CHECKS)
    for flag, value, words in (("--latency-budget", "abc", "wants a number"), ("--latency-repeats", "3", ">= 5"),
                               ("--latency-rates", "500,x", "comma list"), ("--propagation-budget", "-1", ">= 0.001")):
        result = run(pytester, f"{flag}={value}")
        assert result.ret == 4, (flag, result.ret)
        result.stderr.fnmatch_lines([f"*{flag}*{words}*"])
