"""Rendered HAProxy and nginx configs against golden files, and each validated by the proxy itself.

The golden scenario (golden/scenario.yaml) exercises every construct the renderers emit. Paths in the
goldens are placeholders under /meshconform-golden; for the proxies' own checks (``haproxy -c``,
``nginx -t``) they are swapped for a temporary directory holding a real CA bundle and SVID.
Regenerate after an intended change with ``MESHCONFORM_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from meshscenario import load_scenario
from harness.adapters.haproxy import HaproxyFlavor
from harness.adapters.nginx import NginxFlavor
from harness.adapters.thirdparty.identity import WorkloadIdentities
from harness.adapters.thirdparty.topology import proxy_view, server_name

GOLDEN = Path(__file__).with_name("golden")
PLACEHOLDER = "/meshconform-golden"
SCENARIO = load_scenario(GOLDEN / "scenario.yaml")
WORKLOADS = {w.name: w for w in SCENARIO.workloads()}
FLAVORS = {"haproxy": HaproxyFlavor(), "nginx": NginxFlavor()}
CASES = [(flavor, workload) for flavor in FLAVORS for workload in ("client-v1-0", "backend-v1-0", "open-v1-0",
                                                                   "legacy-v1-0")]


def _render(flavor_name: str, workload: str, root: str) -> str:
    ips = {name: f"127.42.7.{10 + i}" for i, name in enumerate(WORKLOADS)}
    view = proxy_view(SCENARIO, WORKLOADS[workload], ip=ips[workload],
                      addresses={n: f"{ip}:15006" for n, ip in ips.items()}, generation=7,
                      work_dir=Path(root) / workload, bundle_path=Path(root) / "bundle.pem")
    flavor = FLAVORS[flavor_name]
    if flavor_name == "nginx" and root == PLACEHOLDER:
        from harness.adapters.nginx import render_nginx
        return render_nginx(view)  # no temp directories under the placeholder
    return flavor.render(view)


@pytest.mark.parametrize("flavor_name,workload", CASES)
def test_rendered_config_matches_golden(flavor_name, workload):
    text = _render(flavor_name, workload, PLACEHOLDER)
    golden = GOLDEN / f"{flavor_name}-{workload}.conf"
    if os.environ.get("MESHCONFORM_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden.name}: run with MESHCONFORM_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{flavor_name} config of {workload} differs from {golden.name}"


@pytest.mark.parametrize("flavor_name,workload", CASES)
def test_golden_config_passes_the_proxys_own_check(flavor_name, workload, tmp_path):
    binary = shutil.which(flavor_name)
    if binary is None:
        pytest.fail(f"{flavor_name} is not installed (the golden check needs the proxy's own -c/-t)")
    identities = WorkloadIdentities(SCENARIO.trust_domain, tmp_path, SCENARIO.cert_ttl)
    w = WORKLOADS[workload]
    (tmp_path / workload).mkdir()
    identities.issue(workload, w.spiffe_id, tmp_path / workload / "svid.pem", server_name(w.service, w.namespace))
    text = (GOLDEN / f"{flavor_name}-{workload}.conf").read_text().replace(PLACEHOLDER, str(tmp_path))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / workload / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    config = tmp_path / workload / FLAVORS[flavor_name].config_name
    config.write_text(text)
    FLAVORS[flavor_name].check(binary, config)


def test_a_broken_config_is_refused_by_the_check(tmp_path):
    """The check above can fail: a config naming a missing certificate is refused by both proxies."""
    text = (GOLDEN / "haproxy-backend-v1-0.conf").read_text().replace(PLACEHOLDER, str(tmp_path / "missing"))
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    with pytest.raises(RuntimeError, match="haproxy"):
        HaproxyFlavor().check(shutil.which("haproxy") or "haproxy", config)
    (tmp_path / "nginx.conf").write_text("events {}\nhttp { server { listen 127.42.7.1:1 ssl; ssl_certificate /no/such.pem; "
                                         "ssl_certificate_key /no/such.pem; } }\n")
    with pytest.raises(RuntimeError, match="nginx"):
        NginxFlavor().check(shutil.which("nginx") or "nginx", tmp_path / "nginx.conf")


def test_golden_haproxy_expresses_the_scenario():
    """Spot checks that the golden says what the scenario says (a wrong golden could be regenerated)."""
    backend = (GOLDEN / "haproxy-client-v1-0.conf").read_text()
    assert "retry-on 500 501 502 503 504 conn-failure empty-response 404 response-timeout" in backend
    assert "409" not in backend.split("retry-on")[1].splitlines()[0]  # HAProxy cannot name 409
    assert "rand(1000000) lt 125000" in backend  # 12.5 % abort
    # 90/10 over v1 (2 instances) and v2 (1), scaled into HAProxy's 0..256: 2 × 256 against 57 (90.0 %)
    assert "backend-v1-1 127.42.7.12:15006 weight 256" in backend and "backend-v2-0 127.42.7.13:15006 weight 57" in backend
    nginx = (GOLDEN / "nginx-client-v1-0.conf").read_text()
    assert "12.5% 1;" in nginx
    assert "proxy_next_upstream_tries 3;" in nginx
