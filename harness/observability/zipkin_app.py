"""The Zipkin v2 collector as an aiohttp app: the write side Envoy's Zipkin tracer uses and the read side
users know from Zipkin's UI and API.

| call | answer |
|---|---|
| ``POST /api/v2/spans`` (JSON ListOfSpans; ``Content-Encoding: gzip`` accepted) | 202, empty; 400 ``{"error", "field"}`` naming the first bad field; 413 over ``MAX_BODY_BYTES`` (also after decompression); 415 for another content type |
| ``GET /api/v2/services`` | sorted service names |
| ``GET /api/v2/spans?serviceName=`` | span names of that service |
| ``GET /api/v2/traces?serviceName=&spanName=&minDuration=&endTs=&lookback=&limit=`` | list of traces (each a list of spans), newest first |
| ``GET /api/v2/trace/{traceId}`` | the trace's spans; 404 if none |
| ``GET /api/v2/dependencies?endTs=&lookback=`` | ``[{"parent","child","callCount","errorCount"}]`` |
| ``GET /health`` | ``{"status": "UP", "spans": n}`` |

Bad queries are 400 naming the parameter; nothing a client sends makes a 500.
"""

from __future__ import annotations

import json

from aiohttp import web

from harness.observability.zipkin_model import SpanFormatError, parse_spans
from harness.observability.zipkin_store import SpanStore

MAX_BODY_BYTES = 16 * 1024 * 1024  # after decompression: far above a reporter's batch (the reference: 100 spans)
STORE_KEY = web.AppKey("store", SpanStore)
_JSON_TYPES = ("application/json", "")  # Envoy sends application/json; curl -d without -H sends none


def make_app(store: SpanStore | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_errors])
    app[STORE_KEY] = store or SpanStore()
    app.router.add_post("/api/v2/spans", _post_spans)
    app.router.add_get("/api/v2/spans", _span_names)
    app.router.add_get("/api/v2/services", _services)
    app.router.add_get("/api/v2/traces", _traces)
    app.router.add_get("/api/v2/trace/{trace_id}", _trace)
    app.router.add_get("/api/v2/dependencies", _dependencies)
    app.router.add_get("/health", _health)
    return app


class _BadRequest(Exception):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body = {"error": f"{field}: {message}" if field else message} | ({"field": field} if field else {})
    return web.json_response(body, status=status)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except _BadRequest as e:
        return _error(e.status, e.message, e.field)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body over {MAX_BODY_BYTES} bytes", "(body)")
    except web.HTTPException as e:  # aiohttp's own: 404 unknown path, 405 wrong method
        if e.status >= 400:
            return _error(e.status, f"{e.reason}: {request.method} {request.path}")
        raise


async def _post_spans(request: web.Request) -> web.Response:
    content_type = request.content_type if request.headers.get("Content-Type") else ""
    if content_type not in _JSON_TYPES:
        raise _BadRequest("Content-Type", f"application/json required (Zipkin v2 JSON), got {content_type!r}",
                          status=415)
    try:
        body = await request.read()  # aiohttp undoes Content-Encoding gzip/deflate; client_max_size bounds it
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception:  # noqa: BLE001 - a corrupt gzip/deflate stream (aiohttp's RequestPayloadError)
        encoding = request.headers.get("Content-Encoding", "")
        raise _BadRequest("Content-Encoding", f"the body is not valid {encoding or 'content'}") from None
    try:
        spans = parse_spans(body)
    except SpanFormatError as e:
        raise _BadRequest(e.field, e.message) from None
    request.app[STORE_KEY].add(spans)
    return web.Response(status=202)


def _int_param(request: web.Request, name: str, *, minimum: int = 0, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(name, f"an integer is required, got {raw!r}") from None
    if value < minimum:
        raise _BadRequest(name, f"must be at least {minimum}, got {value}")
    return value


def _spans_json(spans) -> list[dict]:
    return [s.to_json() for s in spans]


async def _services(request: web.Request) -> web.Response:
    return web.json_response(request.app[STORE_KEY].services())


async def _span_names(request: web.Request) -> web.Response:
    service = request.query.get("serviceName")
    if not service:
        raise _BadRequest("serviceName", "required")
    return web.json_response(request.app[STORE_KEY].span_names(service))


async def _traces(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    traces = store.traces(service=request.query.get("serviceName") or None,
                          span_name=request.query.get("spanName") or None,
                          min_duration=_int_param(request, "minDuration"),
                          end_ts_ms=_int_param(request, "endTs"), lookback_ms=_int_param(request, "lookback"),
                          limit=_int_param(request, "limit", minimum=1, default=10))
    return web.json_response([_spans_json(t) for t in traces])


async def _trace(request: web.Request) -> web.Response:
    trace_id = request.match_info["trace_id"]
    if len(trace_id) not in (16, 32) or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        raise _BadRequest("traceId", f"16 or 32 hex digits required, got {trace_id!r}")
    spans = request.app[STORE_KEY].trace(trace_id)
    if not spans:
        return _error(404, f"trace {trace_id} not found")
    return web.json_response(_spans_json(spans))


async def _dependencies(request: web.Request) -> web.Response:
    links = request.app[STORE_KEY].dependencies(end_ts_ms=_int_param(request, "endTs"),
                                                lookback_ms=_int_param(request, "lookback"))
    return web.json_response([link.to_json() for link in links])


async def _health(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    return web.Response(text=json.dumps({"status": "UP", "spans": store.accepted}),
                        content_type="application/json")
