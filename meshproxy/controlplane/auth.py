"""Who is calling: the admin (Bearer admin token) or a workload (its SVID as TLS client certificate).

The TLS layer already verified any client certificate against the trust bundle (CERT_OPTIONAL: a
certificate that does not chain fails the handshake; no certificate is allowed, for admin and join-token
calls). Here the verified certificate becomes an identity: its single URI SAN in our trust domain, and
the workload name the CA wrote into its subject CN.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509

from meshproxy import ca as _ca
from meshproxy.controlplane.errors import api_error


@dataclass(frozen=True)
class WorkloadIdentity:
    spiffe_id: str
    workload: str | None
    certificate: x509.Certificate


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def is_admin(request: web.Request, admin_token: str) -> bool:
    token = bearer_token(request)
    return token is not None and hmac.compare_digest(token.encode(), admin_token.encode())


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return _ca.load_cert(der) if der else None


def workload_identity(request: web.Request, trust_domain: str) -> WorkloadIdentity | None:
    """The caller's SVID identity, None without a client certificate; 403 for a certificate that is
    not a usable SVID of this trust domain."""
    cert = peer_certificate(request)
    if cert is None:
        return None
    spiffe_id = _ca.parse_spiffe_id(cert)
    if spiffe_id is None:
        raise api_error(request, 403, "client certificate is not an X.509-SVID (needs exactly one URI SAN)")
    try:
        _ca.validate_spiffe_id(spiffe_id, trust_domain)
    except ValueError as exc:
        raise api_error(request, 403, f"client certificate: {exc}") from None
    return WorkloadIdentity(spiffe_id, _ca.workload_of(cert), cert)


def require_admin(request: web.Request, admin_token: str) -> None:
    if bearer_token(request) is None:
        raise api_error(request, 401, "admin call: missing Authorization: Bearer <admin token>")
    if not is_admin(request, admin_token):
        raise api_error(request, 403, "admin call: wrong admin token")


def require_workload_or_admin(request: web.Request, admin_token: str, trust_domain: str,
                              workload: str) -> WorkloadIdentity | None:
    """Admin (returns None) or the SVID of ``workload`` itself; else 401/403."""
    if is_admin(request, admin_token):
        return None
    identity = workload_identity(request, trust_domain)
    if identity is None:
        raise api_error(request, 401, "workload call: present the workload's SVID as client certificate")
    if identity.workload != workload:
        raise api_error(request, 403, f"certificate of workload {identity.workload!r} "
                                      f"({identity.spiffe_id}) may not act for workload {workload!r}")
    return identity
