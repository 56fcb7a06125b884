"""The control plane's HTTP API (docs/architecture.md, "Control plane API"): routes and handlers.

State lives in four small parts: the CA (``meshproxy.ca``), join tokens (``tokens``), the durable
scenario and generation (``store``) and the registry of workloads (``registry``). Handlers only check
who is calling (``auth``), validate input and call them. Every change of the scenario or of endpoints
bumps the generation and wakes long-polls.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from meshscenario import ScenarioError
from meshproxy import ca as _ca
from meshproxy.controlplane import auth
from meshproxy.controlplane.errors import (MAX_SCENARIO_BYTES, BodyError, api_error, field_errors, json_body,
                                           read_json)
from meshproxy.controlplane.registry import Registry
from meshproxy.controlplane.store import GenerationCounter, ScenarioStore
from meshproxy.controlplane.tokens import DEFAULT_TTL_S, JoinTokens, TokenRefused

log = logging.getLogger("meshproxy.controlplane")

MAX_WAIT_S = 300.0  # longest long-poll a caller may ask for
_WORKLOAD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,62}[a-z0-9])?$")  # fits a certificate CN (64)


@dataclass
class ControlPlane:
    """Everything the handlers share."""

    ca: _ca.CertificateAuthority
    admin_token: str
    default_cert_ttl: float
    store: ScenarioStore
    generation: GenerationCounter
    registry: Registry
    tokens: JoinTokens

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    @property
    def cert_ttl(self) -> float:
        """Workload certificate lifetime: the scenario's ``cert_ttl`` if one is stored, else the default."""
        return self.store.scenario.cert_ttl if self.store.scenario is not None else self.default_cert_ttl

    def changed(self) -> int:
        generation = self.generation.bump()
        self.registry.notify()
        return generation


def _cp(request: web.Request) -> ControlPlane:
    return request.app[CONTROLPLANE]


CONTROLPLANE = web.AppKey("controlplane", ControlPlane)


# -- input helpers --------------------------------------------------------------------------------
def _query_number(request: web.Request, name: str, kind: type, default: Any) -> Any:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise api_error(request, 400, f"query parameter {name!r} is required")
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise api_error(request, 400, f"query parameter {name!r} must be a {kind.__name__}") from None
    if kind is float and not math.isfinite(value):
        raise api_error(request, 400, f"query parameter {name!r} must be a finite number")
    return value


def _require_fields(request: web.Request, body: dict, spec: dict[str, type]) -> None:
    errors = []
    for name, kind in spec.items():
        value = body.get(name)
        if value is None:
            errors.append({"field": name, "message": "field required"})
        elif not isinstance(value, kind) or isinstance(value, bool):
            errors.append({"field": name, "message": f"must be a {kind.__name__}"})
    if errors:
        raise field_errors(request, errors)


def _check_address(request: web.Request, address: str) -> None:
    host, _, port = address.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        ok = 0 < int(port) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise field_errors(request, [{"field": "address", "message": "must be IP:PORT"}])


def _load_csr(request: web.Request, pem: Any) -> x509.CertificateSigningRequest:
    if not isinstance(pem, str):
        raise api_error(request, 400, "body needs 'csr': a PEM certificate signing request")
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise api_error(request, 400, f"csr is not a PEM certificate signing request: {exc}") from None
    try:
        signature_valid = csr.is_signature_valid
    except Exception as exc:  # e.g. an algorithm the library does not support: the caller's input, not our fault
        raise api_error(request, 400, f"csr signature cannot be checked: {exc}") from None
    if not signature_valid:
        raise api_error(request, 403, "csr signature does not verify: the requester does not hold its key")
    key = csr.public_key()
    strong = (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size >= 256
              or isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
              or isinstance(key, ed25519.Ed25519PublicKey))
    if not strong:
        raise api_error(request, 400, "csr key must be EC P-256 or larger, RSA 2048+ or Ed25519")
    return csr


# -- handlers -------------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def bundle(request: web.Request) -> web.Response:
    return web.Response(body=_cp(request).ca.bundle_pem(), content_type="application/x-pem-file")


async def create_join_token(request: web.Request) -> web.Response:
    cp = _cp(request)
    auth.require_admin(request, cp.admin_token)
    body = await json_body(request)
    _require_fields(request, body, {"workload": str, "spiffe_id": str})
    errors = []
    if not _WORKLOAD_NAME.match(body["workload"]):
        errors.append({"field": "workload", "message": "must be a lowercase DNS-like name of at most 64 characters"})
    try:
        _ca.validate_spiffe_id(body["spiffe_id"], cp.trust_domain)
    except ValueError as exc:
        errors.append({"field": "spiffe_id", "message": str(exc)})
    ttl_s = body.get("ttl_s", DEFAULT_TTL_S)
    if not isinstance(ttl_s, (int, float)) or isinstance(ttl_s, bool) or not 0 < ttl_s <= 86_400:
        errors.append({"field": "ttl_s", "message": "must be a number of seconds in (0, 86400]"})
    if errors:
        raise field_errors(request, errors)
    token = cp.tokens.create(body["workload"], body["spiffe_id"], float(ttl_s))
    log.info("join token for workload %s (%s), valid %.0f s", body["workload"], body["spiffe_id"], ttl_s)
    return web.json_response({"token": token, "ttl_s": ttl_s})


async def sign(request: web.Request) -> web.Response:
    """Issue an SVID. Identity comes from a join token (first time) or the client SVID (renewal).

    The caller is authenticated before its body is read. The token is spent only once the certificate
    is issued: a failure on our side leaves it usable. From the second token check to ``spend`` there
    is no await, so two requests with one token cannot both get a certificate."""
    cp = _cp(request)
    token = auth.bearer_token(request)
    if token is not None:
        try:
            cp.tokens.check(token)
        except TokenRefused as exc:
            raise api_error(request, 401, str(exc)) from None
    elif auth.workload_identity(request, cp.trust_domain) is None:
        raise api_error(request, 401, "sign: send a join token as Bearer, or renew with your SVID as "
                                      "client certificate")
    body = await json_body(request)
    if token is not None:
        try:
            grant = cp.tokens.check(token)  # again: another request may have spent it while we read
        except TokenRefused as exc:
            raise api_error(request, 401, str(exc)) from None
        spiffe_id, workload, how = grant.spiffe_id, grant.workload, "join token"
    else:
        identity = auth.workload_identity(request, cp.trust_domain)
        if identity is None:
            raise api_error(request, 401, "sign: send a join token as Bearer, or renew with your SVID as "
                                          "client certificate")
        if identity.workload is None:
            raise api_error(request, 403, f"certificate of {identity.spiffe_id} names no workload")
        spiffe_id, workload, how = identity.spiffe_id, identity.workload, "renewal"
    asked_id = body.get("spiffe_id")
    if asked_id is not None and not isinstance(asked_id, str):
        raise field_errors(request, [{"field": "spiffe_id", "message": "must be a string"}])
    csr = _load_csr(request, body.get("csr"))
    try:
        csr_ids = _ca.uri_sans(csr)
    except Exception as exc:  # a malformed SubjectAlternativeName extension
        raise api_error(request, 400, f"csr extensions cannot be read: {exc}") from None
    asked = set(csr_ids) | ({asked_id} if asked_id else set())
    if asked - {spiffe_id}:
        raise api_error(request, 403, f"{how} is for {spiffe_id}, not {', '.join(sorted(asked - {spiffe_id}))}")
    try:
        cert = cp.ca.issue_svid(spiffe_id, csr.public_key(), ttl=cp.cert_ttl, workload=workload)
    except Exception as exc:
        log.exception("signing for workload %s (%s) failed", workload, spiffe_id)
        raise api_error(request, 500, f"signing failed on the control plane ({type(exc).__name__}); "
                                      "a join token is not used up, retry") from None
    if token is not None:
        cp.tokens.spend(token)
    serial = f"{cert.serial_number:x}"
    log.info("issued SVID %s to workload %s (%s) by %s, valid until %s", serial, workload, spiffe_id, how,
             cert.not_valid_after_utc.isoformat())
    return web.json_response({
        "certificate": _ca.cert_pem(cert).decode(),
        "chain": [],  # intermediates between leaf and root: none with this one-level CA
        "bundle": cp.ca.bundle_pem().decode(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": serial,
    })


async def put_scenario(request: web.Request) -> web.Response:
    cp = _cp(request)
    auth.require_admin(request, cp.admin_token)
    try:
        data = await read_json(request, MAX_SCENARIO_BYTES, constants=True)  # NaN: the model names the field
    except BodyError as exc:
        if exc.status != 400:
            raise api_error(request, exc.status, exc.message) from None
        raise field_errors(request, [{"field": "(body)", "message": exc.message}]) from None
    try:
        version = cp.store.put(data)
    except ScenarioError as exc:
        raise field_errors(request, exc.errors) from None
    generation = cp.changed()
    log.info("scenario %r stored as version %d (generation %d)", cp.store.scenario.name, version, generation)
    return web.json_response({"version": version, "generation": generation})


async def get_scenario(request: web.Request) -> web.Response:
    cp = _cp(request)
    if not auth.is_admin(request, cp.admin_token) and auth.workload_identity(request, cp.trust_domain) is None:
        raise api_error(request, 401, "present the admin token or a workload SVID")
    return web.json_response({"version": cp.store.version, "scenario": cp.store.dumped()})


def _require_some_caller(request: web.Request, cp: ControlPlane) -> None:
    """401 unless the caller is the admin or holds a workload SVID: checked before reading a body (which
    names the workload the call is about, checked after)."""
    if not auth.is_admin(request, cp.admin_token) and auth.workload_identity(request, cp.trust_domain) is None:
        raise api_error(request, 401, "workload call: present the workload's SVID as client certificate "
                                      "or the admin token")


async def register_endpoint(request: web.Request) -> web.Response:
    cp = _cp(request)
    _require_some_caller(request, cp)
    body = await json_body(request)
    _require_fields(request, body, {"workload": str, "service": str, "namespace": str, "version": str,
                                    "instance": int, "address": str})
    identity = auth.require_workload_or_admin(request, cp.admin_token, cp.trust_domain, body["workload"])
    _check_address(request, body["address"])
    scenario = cp.store.scenario
    if identity is not None and scenario is not None and body["service"] in {s.name for s in scenario.services}:
        expected = scenario.spiffe_id(body["service"])
        if identity.spiffe_id != expected:
            raise api_error(request, 403, f"service {body['service']!r} is {expected}, "
                                          f"not {identity.spiffe_id}")
    changed = cp.registry.register(body["workload"], body["service"], body["namespace"], body["version"],
                                   body["instance"], body["address"], by_admin=identity is None)
    generation = cp.changed() if changed else cp.generation.value
    if changed:
        log.info("endpoint %s -> %s%s (generation %d)", body["workload"], cp.registry.get(body["workload"]).address,
                 " (admin override)" if identity is None else "", generation)
    return web.json_response({"workload": body["workload"], "address": cp.registry.get(body["workload"]).address,
                              "generation": generation})


async def deregister_endpoint(request: web.Request) -> web.Response:
    cp = _cp(request)
    workload = request.match_info["workload"]
    auth.require_workload_or_admin(request, cp.admin_token, cp.trust_domain, workload)
    if not cp.registry.deregister(workload):
        raise api_error(request, 404, f"no workload {workload!r} is registered")
    generation = cp.changed()
    log.info("endpoint %s removed (generation %d)", workload, generation)
    return web.json_response({"workload": workload, "generation": generation})


async def config(request: web.Request) -> web.Response:
    """Long-poll: answers once the generation differs from ``after`` or after ``wait`` seconds.

    "Differs" rather than "is greater" so a caller ahead of us (state directory wiped) is not stuck.
    """
    cp = _cp(request)
    workload = request.query.get("workload")
    if not workload:
        raise api_error(request, 400, "query parameter 'workload' is required")
    auth.require_workload_or_admin(request, cp.admin_token, cp.trust_domain, workload)
    after = _query_number(request, "after", int, -1)
    wait = min(max(_query_number(request, "wait", float, 0.0), 0.0), MAX_WAIT_S)
    if cp.registry.get(workload) is None:
        raise api_error(request, 409, "register first")
    await cp.registry.wait_until(lambda: cp.generation.value != after, wait)
    if cp.registry.get(workload) is None:
        raise api_error(request, 409, "register first")
    return web.json_response({"generation": cp.generation.value, "version": cp.store.version,
                              "scenario": cp.store.dumped(), "endpoints": cp.registry.endpoints()})


async def ack(request: web.Request) -> web.Response:
    cp = _cp(request)
    _require_some_caller(request, cp)
    body = await json_body(request)
    _require_fields(request, body, {"workload": str, "generation": int, "version": int})
    auth.require_workload_or_admin(request, cp.admin_token, cp.trust_domain, body["workload"])
    if cp.registry.get(body["workload"]) is None:
        raise api_error(request, 409, "register first")
    cp.registry.ack(body["workload"], body["generation"], body["version"])
    return web.json_response({"ok": True})


def _status_body(cp: ControlPlane) -> dict:
    return {"version": cp.store.version, "generation": cp.generation.value,
            "in_effect": not cp.registry.lagging(cp.generation.value),
            "workloads": cp.registry.workloads_status()}


async def status(request: web.Request) -> web.Response:
    cp = _cp(request)
    auth.require_admin(request, cp.admin_token)
    return web.json_response(_status_body(cp))


async def wait_in_effect(request: web.Request) -> web.Response:
    """200 once every registered workload acked ``generation`` or later; 504 after ``timeout`` s."""
    cp = _cp(request)
    auth.require_admin(request, cp.admin_token)
    target = _query_number(request, "generation", int, None)
    timeout = min(max(_query_number(request, "timeout", float, 10.0), 0.0), MAX_WAIT_S)

    def in_effect() -> bool:
        return cp.generation.value >= target and not cp.registry.lagging(target)

    if await cp.registry.wait_until(in_effect, timeout):
        return web.json_response(_status_body(cp))
    lagging = cp.registry.lagging(target)
    log.warning("generation %d not in effect after %.1f s; lagging: %s", target, timeout, ", ".join(lagging))
    return web.json_response({"error": f"generation {target} not in effect after {timeout} s",
                              "lagging": lagging, **_status_body(cp)}, status=504)


def make_app(cp: ControlPlane) -> web.Application:
    app = web.Application(client_max_size=MAX_SCENARIO_BYTES)
    app[CONTROLPLANE] = cp
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/v1/bundle", bundle),
        web.post("/v1/join-tokens", create_join_token),
        web.post("/v1/sign", sign),
        web.put("/v1/scenario", put_scenario),
        web.get("/v1/scenario", get_scenario),
        web.post("/v1/endpoints", register_endpoint),
        web.delete("/v1/endpoints/{workload}", deregister_endpoint),
        web.get("/v1/config", config),
        web.post("/v1/ack", ack),
        web.get("/v1/status", status),
        web.get("/v1/wait", wait_in_effect),
    ])

    async def wake_long_polls(app: web.Application) -> None:
        cp.registry.close()

    app.on_shutdown.append(wake_long_polls)
    return app
