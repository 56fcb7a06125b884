"""JSON error answers of the control plane API: ``{"error": "..."}`` or, for 422, ``{"errors": [...]}``.

Every refusal is also logged on stderr with the caller's address, so a test failure in a sidecar can be
traced to the control plane's reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger("meshproxy.controlplane")

class _PayloadTooLarge(web.HTTPClientError):
    status_code = 413  # aiohttp's HTTPRequestEntityTooLarge insists on sizes in its own message


_BY_STATUS = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
    409: web.HTTPConflict, 413: _PayloadTooLarge, 415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity, 500: web.HTTPInternalServerError, 504: web.HTTPGatewayTimeout,
}
MAX_BODY_BYTES = 64 * 1024  # a CSR, a join-token or endpoint request, an ack: a few hundred bytes to a few kB
MAX_SCENARIO_BYTES = 1024 * 1024  # also the aiohttp application's client_max_size
MAX_JSON_DEPTH = 32  # a scenario nests about 7 deep
_UTF8 = frozenset({"utf-8", "utf8"})


class BodyError(Exception):
    """A request body that is not acceptable JSON: ``status`` 400, 413 or 415 and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` containers deep (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


async def read_json(request: web.Request, max_bytes: int = MAX_BODY_BYTES, *, constants: bool = False) -> Any:
    """The request's body as JSON, bounded: at most ``max_bytes`` (413), UTF-8 (415 for another declared
    charset, 400 for bytes that are not UTF-8), nested at most ``MAX_JSON_DEPTH`` deep (400), and without
    NaN/Infinity unless ``constants`` (the scenario: its model refuses them naming the field). Raises
    BodyError. Call it only after the caller is authenticated."""
    charset = request.charset
    if charset is not None and charset.lower() not in _UTF8:
        raise BodyError(415, f"unsupported charset {charset!r}: JSON bodies are UTF-8")
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyError(413, f"body of {request.content_length} bytes is over the limit of {max_bytes}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyError(413, f"body is over the limit of {max_bytes} bytes") from None
    if len(raw) > max_bytes:
        raise BodyError(413, f"body of {len(raw)} bytes is over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"body is not UTF-8: {exc}") from None
    try:
        value = json.loads(text, parse_constant=None if constants else _refuse_constant)
    except RecursionError:
        raise BodyError(400, f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and NaN / Infinity
        raise BodyError(400, f"body is not JSON: {exc}") from None
    if not _depth_ok(value, MAX_JSON_DEPTH):
        raise BodyError(400, f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def api_error(request: web.Request, status: int, message: str) -> web.HTTPException:
    """An HTTP exception to raise, with a JSON body; logs the refusal."""
    log.warning("refused %s %s from %s: %d %s", request.method, request.path, request.remote, status, message)
    return _BY_STATUS[status](text=json.dumps({"error": message}), content_type="application/json")


def field_errors(request: web.Request, errors: list[dict[str, str]]) -> web.HTTPException:
    """A 422 naming each bad field: ``{"errors": [{"field", "message"}]}``."""
    log.warning("refused %s %s from %s: 422 %s", request.method, request.path, request.remote,
                "; ".join(f"{e['field']}: {e['message']}" for e in errors))
    return web.HTTPUnprocessableEntity(text=json.dumps({"errors": errors}), content_type="application/json")


async def json_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> dict:
    """The request's JSON object (``read_json``), or a 400/413/415 saying why it is not one."""
    try:
        body = await read_json(request, max_bytes)
    except BodyError as exc:
        raise api_error(request, exc.status, exc.message) from None
    if not isinstance(body, dict):
        raise api_error(request, 400, "body must be a JSON object")
    return body
