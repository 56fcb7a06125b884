"""The sidecar's bootstrap file (docs/architecture.md "Process command lines").

Dynamic (the default): ``controlplane`` URL, ``join_token`` and ``bundle``; certificate, scenario and
endpoints come from the control plane. Without ``join_token`` the sidecar proves who it is with the SVID
a previous life left in ``work_dir`` (svid.pem, svid-key.pem; a restart while the control plane cannot
mint a token), as a SPIRE agent re-attests with its stored SVID. Static (like Envoy's static config,
for tests and benchmarks): no ``controlplane``, and ``"static": {"scenario": {...}, "endpoints":
{workload: {service, version, instance, address}}, "cert": PEM path (leaf first), "key": PEM path}``.

Optional ``limits`` (see ``limits.Limits``), e.g. ``{"header_timeout_s": 10, "max_connections": 10000}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshproxy.sidecar.limits import Limits


@dataclass(frozen=True)
class Bootstrap:
    workload: str
    service: str
    namespace: str
    version: str
    instance: int
    spiffe_id: str
    trust_domain: str
    ip: str
    inbound_port: int
    outbound_port: int
    admin_port: int
    app: str  # "IP:PORT"
    bundle: str
    work_dir: str
    controlplane: str | None = None
    join_token: str | None = None
    static: dict[str, Any] | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def app_address(self) -> tuple[str, int]:
        host, _, port = self.app.rpartition(":")
        return host, int(port)

    @property
    def inbound_address(self) -> str:
        return f"{self.ip}:{self.inbound_port}"


_REQUIRED = ("workload", "service", "namespace", "version", "instance", "spiffe_id", "trust_domain", "ip",
             "inbound_port", "outbound_port", "admin_port", "app", "bundle", "work_dir")


def parse_bootstrap(data: dict[str, Any]) -> Bootstrap:
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"bootstrap: missing {', '.join(missing)}")
    if data.get("controlplane") is None and data.get("static") is None:
        raise ValueError("bootstrap: give either 'controlplane' (with 'join_token') or 'static'")
    previous_svid = (Path(data["work_dir"]) / "svid.pem").exists()
    if data.get("controlplane") and not data.get("join_token") and not previous_svid:
        raise ValueError("bootstrap: 'controlplane' needs 'join_token' (or a previous SVID in 'work_dir')")
    static = data.get("static")
    if static is not None:
        absent = [k for k in ("scenario", "endpoints", "cert", "key") if k not in static]
        if absent:
            raise ValueError(f"bootstrap: static needs {', '.join(absent)}")
    values = {k: data[k] for k in _REQUIRED}
    for k in ("instance", "inbound_port", "outbound_port", "admin_port"):
        values[k] = int(values[k])
    return Bootstrap(**values, controlplane=data.get("controlplane"), join_token=data.get("join_token"),
                     static=static, limits=Limits.from_mapping(data.get("limits")))


def load_bootstrap(path: str | Path) -> Bootstrap:
    return parse_bootstrap(json.loads(Path(path).read_text()))
