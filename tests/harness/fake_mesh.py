"""A conftest for pytester runs: a test adapter registered through ``pytest_meshconform_adapters``.

It starts nothing; it appends its lifecycle calls to ``lifecycle.log`` in the test directory so an outer
test can see whether (and how often) the mesh was set up and closed.
"""

CONFTEST = '''
from pathlib import Path

from harness.adapters.base import Implementation
from harness.features import Feature

LOG = Path(__file__).parent / "lifecycle.log"


class FakeAdapter:
    name = "fake"

    def __init__(self, options):
        with LOG.open("a") as f:
            f.write("construct\\n")
        self.options = dict(options)
        self.supported = frozenset(
            Feature(v) for v in self.options.get("features", "MtlsStrict,Retries").split(",") if v)

    def implementation(self):
        return Implementation(organization="Acme", project="fakemesh", url="https://example.invalid",
                              version="1.2.3", contact=("@acme",))

    def supported_features(self):
        return self.supported

    def unsupported_reason(self, feature):
        return f"fakemesh has no {feature.value}"

    def setup(self):
        with LOG.open("a") as f:
            f.write("setup\\n")
        if self.options.get("fail_setup"):
            raise RuntimeError("mesh would not start")

    def close(self):
        with LOG.open("a") as f:
            f.write("close\\n")


def pytest_meshconform_adapters(config):
    return {"fake": FakeAdapter}
'''


SUITE_HEADER = """
from harness.checks import conformance
from harness.features import Feature, Level, Profile
"""


def lifecycle(pytester) -> list[str]:
    log = pytester.path / "lifecycle.log"
    return log.read_text().split() if log.exists() else []


def setup_project(pytester, ini_extra: str = "") -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n" + ini_extra)
