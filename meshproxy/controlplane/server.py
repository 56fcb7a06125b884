"""Start and stop a control plane in the running event loop (used by ``__main__`` and by tests).

On start: load or create the CA in the state directory, issue the control plane's own serving SVID
(``spiffe://<td>/ns/meshconform-system/sa/controlplane`` plus an IP SAN for the listen address, valid
30 days, written to ``controlplane.pem`` / ``controlplane-key.pem`` mode 0600), load the durable
scenario and serve HTTPS: TLS 1.2+, client certificate optional but, when sent, it must chain to the
bundle. The listener has read timeouts and a connection cap (``Settings.limits``, meshproxy/httpguard.py).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from meshproxy import ca as _ca
from meshproxy.controlplane.app import ControlPlane, make_app
from meshproxy.httpguard import GuardedSite, ListenerLimits, listening_socket
from meshproxy.controlplane.registry import Registry
from meshproxy.controlplane.store import GenerationCounter, ScenarioStore
from meshproxy.controlplane.tokens import JoinTokens

log = logging.getLogger("meshproxy.controlplane")

SERVING_CERT_TTL_S = 30 * 86_400.0


@dataclass
class Settings:
    host: str
    port: int
    state_dir: Path
    trust_domain: str
    admin_token: str
    cert_ttl: float = 3600.0
    defects: Mapping[str, Any] | None = field(default=None)  # None: from MESHPROXY_DEFECTS
    # read timeouts and connection cap of the listener (meshproxy/httpguard.py); every sidecar holds
    # one long-poll connection, so the cap is well above any local mesh's workload count
    limits: ListenerLimits = field(default_factory=lambda: ListenerLimits(max_connections=1024))


@dataclass
class RunningControlPlane:
    url: str
    port: int
    bundle_path: Path
    state: ControlPlane
    _runner: web.AppRunner

    async def stop(self) -> None:
        await self._runner.cleanup()


def _server_ssl_context(state_dir: Path, ca: _ca.CertificateAuthority, host: str) -> ssl.SSLContext:
    key, _ = _ca.new_key_and_csr()
    cert = ca.issue_svid(_ca.controlplane_spiffe_id(ca.trust_domain), key.public_key(), ttl=SERVING_CERT_TTL_S,
                         extra_ip_sans=[ipaddress.ip_address(host)])
    cert_path, key_path = state_dir / "controlplane.pem", state_dir / "controlplane-key.pem"
    _ca.write_file_atomically(cert_path, _ca.cert_pem(cert), 0o644)
    _ca.write_file_atomically(key_path, _ca.key_pem(key), 0o600)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=ca.bundle_pem().decode())
    return ctx


async def start_controlplane(settings: Settings) -> RunningControlPlane:
    """Serve on ``settings.host:port`` (port 0 picks a free one) and return once listening."""
    state_dir = Path(settings.state_dir)
    ca = _ca.CertificateAuthority.load_or_create(state_dir, settings.trust_domain, defects=settings.defects)
    cp = ControlPlane(ca=ca, admin_token=settings.admin_token, default_cert_ttl=settings.cert_ttl,
                      store=ScenarioStore(state_dir, settings.trust_domain),
                      generation=GenerationCounter(state_dir), registry=Registry(state_dir / "endpoints.json"),
                      tokens=JoinTokens())
    ssl_context = _server_ssl_context(state_dir, ca, settings.host)
    # Long-polls are woken at shutdown, so a short grace period is enough.
    runner = web.AppRunner(make_app(cp), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = GuardedSite(runner, listening_socket(settings.host, settings.port), limits=settings.limits,
                           ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return RunningControlPlane(f"https://{host}:{port}", port, state_dir / "bundle.pem", cp, runner)
