"""JSON error answers of the control plane API: ``{"error": "..."}`` or, for 422, ``{"errors": [...]}``.

Every refusal is also logged on stderr with the caller's address, so a test failure in a sidecar can be
traced to the control plane's reason.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

log = logging.getLogger("meshproxy.controlplane")

_BY_STATUS = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
    409: web.HTTPConflict, 422: web.HTTPUnprocessableEntity, 504: web.HTTPGatewayTimeout,
}


def api_error(request: web.Request, status: int, message: str) -> web.HTTPException:
    """An HTTP exception to raise, with a JSON body; logs the refusal."""
    log.warning("refused %s %s from %s: %d %s", request.method, request.path, request.remote, status, message)
    return _BY_STATUS[status](text=json.dumps({"error": message}), content_type="application/json")


def field_errors(request: web.Request, errors: list[dict[str, str]]) -> web.HTTPException:
    """A 422 naming each bad field: ``{"errors": [{"field", "message"}]}``."""
    log.warning("refused %s %s from %s: 422 %s", request.method, request.path, request.remote,
                "; ".join(f"{e['field']}: {e['message']}" for e in errors))
    return web.HTTPUnprocessableEntity(text=json.dumps({"errors": errors}), content_type="application/json")


async def json_body(request: web.Request) -> dict:
    """The request's JSON object, or a 400 saying why it is not one."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise api_error(request, 400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise api_error(request, 400, "body must be a JSON object")
    return body
