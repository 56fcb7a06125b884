"""The fault service: :class:`~harness.faults.proxy.FaultProxy` instances behind Toxiproxy 2.x's HTTP API.

    meshconform faults serve --listen 127.0.0.1:8474      # then point toxiproxy-python, the node
                                                         # client or chaostoolkit-toxiproxy at it

Routes, JSON fields, defaults, units and status codes are Toxiproxy's (SPEC §"Toxiproxy's API"), so
its clients work unchanged: ``GET /version``; ``GET|POST /proxies``; ``POST /populate``; ``GET|POST|
PATCH|DELETE /proxies/{proxy}``; ``GET|POST /proxies/{proxy}/toxics``; ``GET|POST|PATCH|DELETE
/proxies/{proxy}/toxics/{toxic}``; ``POST /reset``. Errors are ``{"error": message, "status": code}``:
400 for a bad body (non-JSON, a missing ``name``/``upstream``, a bad stream, an unknown toxic type, a
negative or fractional attribute), 404 for an unknown proxy or toxic, 409 for a duplicate; a bad
request changes nothing. One difference, on purpose: a ``listen`` address that cannot be bound (in use)
answers 409, not Toxiproxy's 500 — it is the caller's choice of address, not our failure.

Beyond Toxiproxy, invisible to clients that know only its API:

- toxic types ``meshconform_http_status`` (answer a status for the first N requests or a share of them)
  and ``meshconform_http_delay`` (a delay per request, not per chunk), for hops that carry HTTP/1.1;
- ``GET /meshconform`` lists them, the owner leases and the service's version;
- leases: a create request with the header ``X-Meshconform-Owner: <pid>/<start ticks>``
  (``meshruntime.processes.owner_token()``) makes the proxy or toxic that process's; when it dies
  (pid gone or reused) the service removes what it owned within ``OWNER_POLL_S`` (0.25 s) plus one
  removal. Removing a toxic loses no byte already read (the fault proxy's guarantee).
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from harness.faults import toxiproxy_json as tj
from harness.faults.proxy import FaultProxy
from harness.faults.toxiproxy_json import ApiError, bad_body
from meshruntime.processes import owner_alive

VERSION = "2.12.0-meshconform"  # the Toxiproxy API version we speak (its clients only print it)
OWNER_HEADER = "X-Meshconform-Owner"
OWNER_POLL_S = 0.25


@dataclass
class ToxicEntry:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, float]
    owner: str | None = None

    def json(self) -> dict[str, Any]:
        return {"attributes": dict(self.attributes), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}


@dataclass
class ServedProxy:
    name: str
    listen: str  # as asked, until it first listens; then the bound address
    upstream: str
    enabled: bool
    proxy: FaultProxy
    started: bool = False
    toxics: dict[str, ToxicEntry] = field(default_factory=dict)  # in the order they were added
    owner: str | None = None

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.json() for t in self.toxics.values()]}


def _address(text: Any, what: str) -> tuple[str, int]:
    if not isinstance(text, str):
        raise bad_body(f"{what} is a string HOST:PORT, not {text!r}")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise bad_body(f"{what} {text!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"  # ":8080" listens on every interface, as Go's net.Listen
    return host, int(port)


def _shown(address: tuple[str, int]) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class FaultService:
    """The proxies and their toxics; every method runs on the service's event loop."""

    def __init__(self) -> None:
        self.proxies: dict[str, ServedProxy] = {}
        self._lock = asyncio.Lock()  # one change at a time: each is checked whole before it is made

    # -- proxies ---------------------------------------------------------------------------------------
    def get(self, name: str) -> ServedProxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError(404, "proxy not found") from None

    async def create(self, body: Any, owner: str | None, *, replace: bool = False) -> ServedProxy:
        fields = self._proxy_fields(body)
        existing = self.proxies.get(fields["name"])
        if existing is not None:
            if not replace:
                raise ApiError(409, "proxy already exists")
            if (existing.upstream, existing.enabled) == (fields["upstream"], fields["enabled"]) and (
                    fields["listen"] in (existing.listen, "")):
                return existing  # /populate keeps a proxy that does not differ
        served = await self._start(fields, owner)
        if existing is not None:
            await self._stop(existing)
        self.proxies[served.name] = served
        return served

    def _proxy_fields(self, body: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_body(f"a proxy is a JSON object, not {type(body).__name__}")
        name, upstream = body.get("name", ""), body.get("upstream", "")
        if not isinstance(name, str) or not isinstance(upstream, str):
            raise bad_body("name and upstream are strings")
        if not name:
            raise ApiError(400, f"missing required field: name{prefix}")
        if not upstream:
            raise ApiError(400, f"missing required field: upstream{prefix}")
        _address(upstream, "upstream")
        listen = body.get("listen", "")
        if listen:
            _address(listen, "listen")
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise bad_body(f"enabled is true or false, not {enabled!r}")
        return {"name": name, "listen": listen or "", "upstream": upstream, "enabled": enabled}

    async def _start(self, fields: dict[str, Any], owner: str | None,
                     toxics: dict[str, ToxicEntry] | None = None) -> ServedProxy:
        listen = fields["listen"] or "127.0.0.1:0"
        proxy = FaultProxy(_address(listen, "listen"), _address(fields["upstream"], "upstream"))
        served = ServedProxy(fields["name"], listen, fields["upstream"], fields["enabled"], proxy, owner=owner)
        for entry in (toxics or {}).values():
            proxy.add(tj.build(entry.type, entry.attributes), entry.stream, entry.name, entry.toxicity)
            served.toxics[entry.name] = entry
        if served.enabled:
            await self._listen(served)
        return served

    async def _listen(self, served: ServedProxy) -> None:
        if served.started:
            served.proxy.enabled = True
            return
        try:
            await served.proxy.start()
        except OSError as exc:
            raise ApiError(409, f"listen tcp {served.listen}: {exc.strerror or exc}") from None
        served.started = True
        served.listen = _shown(served.proxy.address)

    @staticmethod
    async def _stop(served: ServedProxy) -> None:
        if served.started:
            await served.proxy.stop()
            served.started = False

    async def update(self, name: str, body: Any) -> ServedProxy:
        served = self.get(name)
        if not isinstance(body, dict):
            raise bad_body(f"a proxy is a JSON object, not {type(body).__name__}")
        fields = {"name": name, "listen": body.get("listen", served.listen),
                  "upstream": body.get("upstream", served.upstream), "enabled": body.get("enabled", served.enabled)}
        if not isinstance(fields["enabled"], bool):
            raise bad_body(f"enabled is true or false, not {fields['enabled']!r}")
        _address(fields["upstream"], "upstream")
        _address(fields["listen"], "listen")
        if (fields["listen"], fields["upstream"]) != (served.listen, served.upstream):
            # Toxiproxy stops the proxy and starts it again (the listen address may be the same one):
            # open connections end, toxics stay; when the new address cannot be bound, the old proxy is
            # started again as it was, so a refused update changes nothing
            await self._stop(served)
            try:
                replacement = await self._start(fields, served.owner, served.toxics)
            except ApiError:
                self.proxies[name] = await self._start(
                    {"name": name, "listen": served.listen, "upstream": served.upstream,
                     "enabled": served.enabled}, served.owner, served.toxics)
                raise
            self.proxies[name] = replacement
            return replacement
        if fields["enabled"] and not served.enabled:
            await self._listen(served)
        elif not fields["enabled"] and served.enabled and served.started:
            served.proxy.enabled = False
        served.enabled = fields["enabled"]
        return served

    async def delete(self, name: str) -> None:
        served = self.get(name)
        del self.proxies[name]
        await self._stop(served)

    async def reset(self) -> None:
        """Every proxy enabled again, every toxic removed (Toxiproxy's ``POST /reset``)."""
        for served in list(self.proxies.values()):
            served.proxy.clear()
            served.toxics.clear()
            if not served.enabled:
                await self._listen(served)
                served.enabled = True

    async def close(self) -> None:
        for served in list(self.proxies.values()):
            await self._stop(served)
        self.proxies.clear()

    # -- toxics ----------------------------------------------------------------------------------------
    def add_toxic(self, proxy_name: str, body: Any, owner: str | None) -> ToxicEntry:
        served = self.get(proxy_name)
        if not isinstance(body, dict):
            raise bad_body(f"a toxic is a JSON object, not {type(body).__name__}")
        kind = body.get("type", "")
        schema = tj.SCHEMAS.get(kind) if isinstance(kind, str) else None
        stream = body.get("stream", schema.default_stream if schema else "downstream")
        if not isinstance(stream, str) or stream.lower() not in tj.STREAMS:
            raise ApiError(400, "stream was invalid, can be either upstream or downstream")
        stream = stream.lower()
        name = body.get("name") or f"{kind}_{stream}"
        if not isinstance(name, str):
            raise bad_body(f"name is a string, not {name!r}")
        if schema is None:
            raise ApiError(400, "invalid toxic type")
        if stream not in schema.streams:
            raise ApiError(400, f"stream was invalid: a {kind} toxic acts on requests, so only upstream")
        if name in served.toxics:
            raise ApiError(409, "toxic already exists")
        toxicity = _toxicity(body.get("toxicity", 1.0))
        values = tj.attributes(kind, body.get("attributes"))
        toxic = tj.build(kind, values)
        entry = ToxicEntry(name, kind, stream, toxicity, values, owner)
        served.proxy.add(toxic, stream, name, toxicity)
        served.toxics[name] = entry
        return entry

    def get_toxic(self, proxy_name: str, toxic_name: str) -> ToxicEntry:
        served = self.get(proxy_name)
        try:
            return served.toxics[toxic_name]
        except KeyError:
            raise ApiError(404, "toxic not found") from None

    def update_toxic(self, proxy_name: str, toxic_name: str, body: Any) -> ToxicEntry:
        served = self.get(proxy_name)
        entry = self.get_toxic(proxy_name, toxic_name)
        if not isinstance(body, dict):
            raise bad_body(f"a toxic is a JSON object, not {type(body).__name__}")
        toxicity = _toxicity(body.get("toxicity", entry.toxicity))
        values = tj.attributes(entry.type, body.get("attributes"), entry.attributes)
        toxic = tj.build(entry.type, values)
        served.proxy.update(toxic_name, toxic, toxicity)
        entry.attributes, entry.toxicity = values, toxicity
        return entry

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        served = self.get(proxy_name)
        self.get_toxic(proxy_name, toxic_name)
        served.proxy.remove(toxic_name)
        del served.toxics[toxic_name]

    # -- leases ----------------------------------------------------------------------------------------
    async def expire_owners(self, alive: Callable[[str], bool] = owner_alive) -> list[str]:
        """Remove the proxies and toxics whose owner is gone; returns what it removed, as
        ``proxy`` or ``proxy/toxic``."""
        removed: list[str] = []
        verdict: dict[str, bool] = {}

        def gone(owner: str | None) -> bool:
            if owner is None:
                return False
            if owner not in verdict:
                verdict[owner] = not alive(owner)
            return verdict[owner]

        for served in list(self.proxies.values()):
            if gone(served.owner):
                await self.delete(served.name)
                removed.append(served.name)
                continue
            for entry in list(served.toxics.values()):
                if gone(entry.owner):
                    self.remove_toxic(served.name, entry.name)
                    removed.append(f"{served.name}/{entry.name}")
        return removed

    def owners(self) -> dict[str, list[str]]:
        held: dict[str, list[str]] = {}
        for served in self.proxies.values():
            if served.owner:
                held.setdefault(served.owner, []).append(served.name)
            for entry in served.toxics.values():
                if entry.owner:
                    held.setdefault(entry.owner, []).append(f"{served.name}/{entry.name}")
        return held


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise bad_body(f"toxicity is a number in 0..1, not {value!r}")
    return float(value)


# -- HTTP ----------------------------------------------------------------------------------------------

def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def _error(exc: ApiError) -> web.Response:
    return _json(exc.body(), exc.status)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw or b"null") if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_body(str(exc)) from None


def _owner(request: web.Request) -> str | None:
    token = request.headers.get(OWNER_HEADER)
    if token is None:
        return None
    pid, sep, ticks = token.partition("/")
    if not (pid.isdigit() and sep and ticks.isdigit()):
        raise ApiError(400, f"{OWNER_HEADER} is PID/START_TICKS (meshruntime.processes.owner_token), not {token!r}")
    if not owner_alive(token):
        raise ApiError(400, f"{OWNER_HEADER}: no live process {token}")
    return token


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(service: FaultService) -> web.Application:
    @web.middleware
    async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("User-Agent", "").startswith("Mozilla/"):
            return web.Response(status=403, text="User agent not allowed\n")
        try:
            async with lock(request):
                return await handler(request)
        except ApiError as exc:
            return _error(exc)

    def lock(request: web.Request):
        return service._lock if request.method != "GET" else _NoLock()

    async def version(request: web.Request) -> web.Response:
        return _json({"version": VERSION})

    async def extension(request: web.Request) -> web.Response:
        return _json({"version": VERSION, "toxics": tj.known_types(extensions=True),
                      "extension_toxics": [k for k in tj.known_types(extensions=True)
                                           if tj.SCHEMAS[k].extension],
                      "owner_header": OWNER_HEADER, "owner_poll_s": OWNER_POLL_S, "owners": service.owners()})

    async def index(request: web.Request) -> web.Response:
        return _json({name: p.json() for name, p in service.proxies.items()})

    async def create(request: web.Request) -> web.Response:
        owner, body = _owner(request), await _body(request)
        return _json((await service.create(body, owner)).json(), 201)

    async def populate(request: web.Request) -> web.Response:
        owner, body = _owner(request), await _body(request)
        if not isinstance(body, list):
            raise bad_body("populate takes a JSON array of proxies")
        for i, item in enumerate(body):  # every proxy checked before any is made, as Toxiproxy
            service._proxy_fields(item, f" at proxy {i + 1}")
        made: list[ServedProxy] = []
        for item in body:
            try:
                made.append(await service.create(item, owner, replace=True))
            except ApiError as exc:
                return _json({**exc.body(), "proxies": [p.json() for p in made]}, exc.status)
        return _json({"proxies": [p.json() for p in made]}, 201)

    async def show(request: web.Request) -> web.Response:
        return _json(service.get(request.match_info["proxy"]).json())

    async def update(request: web.Request) -> web.Response:
        name, body = request.match_info["proxy"], await _body(request)
        return _json((await service.update(name, body)).json())

    async def delete(request: web.Request) -> web.Response:
        await service.delete(request.match_info["proxy"])
        return web.Response(status=204)

    async def toxics(request: web.Request) -> web.Response:
        return _json([t.json() for t in service.get(request.match_info["proxy"]).toxics.values()])

    async def toxic_create(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        service.get(name)  # 404 before the body is looked at, as Toxiproxy
        owner, body = _owner(request), await _body(request)
        return _json(service.add_toxic(name, body, owner).json())

    async def toxic_show(request: web.Request) -> web.Response:
        return _json(service.get_toxic(request.match_info["proxy"], request.match_info["toxic"]).json())

    async def toxic_update(request: web.Request) -> web.Response:
        proxy, toxic = request.match_info["proxy"], request.match_info["toxic"]
        service.get_toxic(proxy, toxic)
        return _json(service.update_toxic(proxy, toxic, await _body(request)).json())

    async def toxic_delete(request: web.Request) -> web.Response:
        service.remove_toxic(request.match_info["proxy"], request.match_info["toxic"])
        return web.Response(status=204)

    async def reset(request: web.Request) -> web.Response:
        await service.reset()
        return web.Response(status=204)

    async def expire(request: web.Request) -> web.Response:
        return _json({"removed": await service.expire_owners()})

    app = web.Application(middlewares=[api_errors], client_max_size=1 << 20)
    app.router.add_get("/version", version)
    app.router.add_get("/meshconform", extension)
    app.router.add_post("/meshconform/expire", expire)  # what `meshconform sweep --faults URL` calls
    app.router.add_post("/reset", reset)
    app.router.add_get("/proxies", index)
    app.router.add_post("/proxies", create)
    app.router.add_post("/populate", populate)
    app.router.add_get("/proxies/{proxy}", show)
    app.router.add_post("/proxies/{proxy}", update)
    app.router.add_patch("/proxies/{proxy}", update)
    app.router.add_delete("/proxies/{proxy}", delete)
    app.router.add_get("/proxies/{proxy}/toxics", toxics)
    app.router.add_post("/proxies/{proxy}/toxics", toxic_create)
    app.router.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show)
    app.router.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    app.router.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    return app


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def watch_owners(service: FaultService, stop: asyncio.Event) -> None:
    """Expire dead owners' leases every OWNER_POLL_S until ``stop`` is set."""
    while not stop.is_set():
        async with service._lock:
            await service.expire_owners()
        try:
            await asyncio.wait_for(stop.wait(), OWNER_POLL_S)
        except TimeoutError:
            pass


async def serve(listen: tuple[str, int], *, owner: str | None = None,
                ready: Callable[[str], None] = print, stop: asyncio.Event | None = None) -> None:
    """Run the service on ``listen`` until ``stop`` is set (or ``owner``, a process token, dies);
    ``ready`` gets the URL once it listens. Every proxy is stopped on the way out."""
    stop = stop or asyncio.Event()
    service = FaultService()
    runner = web.AppRunner(build_app(service), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, listen[0], listen[1], reuse_address=True)
    await site.start()
    bound = runner.addresses[0][:2]  # the real port when listen asked for 0
    watcher = asyncio.create_task(watch_owners(service, stop))
    guard = asyncio.create_task(_exit_with(owner, stop)) if owner else None
    ready(f"http://{_shown(bound)}")
    try:
        await stop.wait()
    finally:
        for task in (watcher, guard):
            if task is not None:
                task.cancel()
        await runner.cleanup()
        await service.close()


async def _exit_with(owner: str, stop: asyncio.Event) -> None:
    while owner_alive(owner):
        await asyncio.sleep(OWNER_POLL_S)  # polling pace of the owner's liveness
    stop.set()
