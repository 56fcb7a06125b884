"""One call per finished request per hop: the Istio metrics always, the access-log line and the span
when the configuration asks (docs/architecture.md "Telemetry").

The outbound and inbound call ``outbound(...)`` / ``inbound(...)`` exactly once per request (``t0``: its
``time.time()`` when the handler got it; uvloop's ``loop.time()`` counts whole milliseconds), with the
answer they sent (or None: the downstream went away first) and the response flags the policy outcome
implies. With the access log and tracing off the work is the two metric updates; the access-log
writer and the Zipkin reporter are made the first time a configuration needs them.

Defects: ``metrics_miss_retries`` (the destination reporter skips tries with x-envoy-attempt-count > 1),
``access_log_skips_errors`` (no line for answers >= 500), ``graph_wrong_source`` (istio_requests_total's
source_workload is the destination workload, or "unknown", at the outbound and the inbound's own at the
inbound).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from meshproxy.defects import Defects
from meshproxy.policy.tracecontext import Span, child, incoming
from meshproxy.sidecar.accesslog import AccessLog
from meshproxy.sidecar.bootstrap import Bootstrap
from meshproxy.sidecar.http1 import Request
from meshproxy.sidecar.metrics import Metrics
from meshproxy.sidecar.records import access_record, zipkin_span
from meshproxy.sidecar.zipkin import ZipkinReporter

UNKNOWN = "unknown"
PEER_HEADER = b"x-envoy-peer-metadata-id"  # the caller's workload name (Istio's metadata exchange)
ATTEMPT_COUNT = b"x-envoy-attempt-count"
REQUEST_ID = b"x-request-id"


def peer_workload(captured: list[tuple[bytes, bytes]] | None) -> str:
    """The workload the caller's outbound announced, or "unknown"."""
    if captured:
        for name, value in captured:
            if name == PEER_HEADER:
                return value.decode("latin-1")
    return UNKNOWN


def _downstream(conn: Any) -> str | None:
    transport = conn.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if peer else None


class Telemetry:
    def __init__(self, boot: Bootstrap, metrics: Metrics, defects: Defects, rng: random.Random):
        self.loop = asyncio.get_running_loop()
        self.workload, self.service, self.principal = boot.workload, boot.service, boot.spiffe_id
        self.local_service = f"{boot.service}.{boot.namespace}"
        self.outbound_address = f"{boot.ip}:{boot.outbound_port}"
        self.inbound_address = boot.inbound_address
        self.app = boot.app
        self.metrics = metrics
        self.istio = metrics.istio
        self.rng = rng
        self.log_path = Path(boot.work_dir) / "access.log"
        self._log: AccessLog | None = None
        self._reporter: ZipkinReporter | None = None
        self._miss_retries = defects.active("metrics_miss_retries")
        self._skip_errors = defects.active("access_log_skips_errors")
        self._wrong_source = defects.active("graph_wrong_source")

    # -- per request ----------------------------------------------------------------------------------
    def outbound(self, snap: Any, req: Request, conn: Any, t0: float, reply: tuple[bytes, bytes] | None,
                 flags: str, span: Span | None = None, dest: Any = None, endpoint: str | None = None,
                 tries: int = 0, upstream_s: float | None = None, request_id: bytes | None = None) -> None:
        now = time.time()  # t0 is time.time() too: epoch seconds, µs resolution
        code = int(reply[0][9:12]) if reply is not None else 0
        workload = snap.workload_at.get(endpoint, UNKNOWN) if endpoint is not None and snap is not None else UNKNOWN
        service, principal = (dest.name, dest.spiffe_id) if dest is not None else (UNKNOWN, UNKNOWN)
        self.istio.record_source(workload if self._wrong_source else self.workload, service, principal, workload,
                                 code, flags, (now - t0) * 1000)
        if snap is None or not snap.telemetry_on:
            return
        if span is None:
            span = child(incoming(req.trace), self.rng, snap.sampling)
        start, duration = t0, now - t0
        cluster = dest.name if dest is not None else None
        if request_id is None:
            request_id = req.header(REQUEST_ID)  # the app's (an early answer: none was made)
        if snap.access_log and not (self._skip_errors and code >= 500):
            self._access_log().write(access_record(
                start_epoch=start, direction="outbound", method=req.method, path=req.url, authority=req.host,
                code=code, flags=flags, bytes_received=len(req.body),
                bytes_sent=len(reply[1]) if reply is not None else 0, duration_s=duration, upstream_s=upstream_s,
                attempts=tries, request_id=request_id, span=span, upstream_host=endpoint,
                upstream_cluster=cluster, downstream=_downstream(conn), source_workload=self.workload,
                destination_workload=workload))
        if snap.zipkin is not None and span.sampled:
            self._zipkin().report(snap.zipkin, zipkin_span(
                span=span, kind="CLIENT", authority=req.host, start_epoch=start, duration_s=duration,
                local_service=self.local_service, local_address=self.outbound_address, remote_address=endpoint,
                method=req.method, path=req.url, code=code, flags=flags, upstream_cluster=cluster,
                node_id=self.workload, request_id=request_id, canonical_service=self.service,
                peer_address=_downstream(conn)))

    def inbound(self, snap: Any, req: Request, conn: Any, t0: float, reply: tuple[bytes, bytes] | None,
                flags: str, span: Span | None, forwarded: bool, upstream_s: float | None = None) -> None:
        now = time.time()  # t0 is time.time() too: epoch seconds, µs resolution
        code = int(reply[0][9:12]) if reply is not None else 0
        caller = conn.source  # an inbound.InboundConnection
        if caller is None:  # once per connection: all its requests come from one caller
            source = peer_workload(req.trace)
            caller = (source, snap.service_of.get(source, UNKNOWN) if snap is not None else UNKNOWN,
                      conn.peer_id or UNKNOWN, "mutual_tls" if conn.peer_id is not None else "none")
            if snap is not None:
                conn.source = caller
        source = caller[0]
        skip = False
        if self._miss_retries:  # the defect: a retried try is not counted
            attempt = req.header(ATTEMPT_COUNT)
            skip = attempt is not None and attempt.strip() not in (b"1", b"")
        if not skip:
            self.istio.record_destination(self.workload if self._wrong_source else source, caller[1], caller[2],
                                          code, flags, caller[3], (now - t0) * 1000)
        if snap is None or not snap.telemetry_on:
            return
        if span is None:
            span = child(incoming(req.trace), self.rng, snap.sampling)
        start, duration = t0, now - t0
        upstream = self.app if forwarded else None
        request_id = req.header(REQUEST_ID)
        if snap.access_log and not (self._skip_errors and code >= 500):
            self._access_log().write(access_record(
                start_epoch=start, direction="inbound", method=req.method, path=req.url, authority=req.host,
                code=code, flags=flags, bytes_received=len(req.body),
                bytes_sent=len(reply[1]) if reply is not None else 0, duration_s=duration, upstream_s=upstream_s,
                attempts=1, request_id=request_id, span=span, upstream_host=upstream, upstream_cluster=self.service,
                downstream=_downstream(conn), source_workload=source, destination_workload=self.workload))
        if snap.zipkin is not None and span.sampled:
            self._zipkin().report(snap.zipkin, zipkin_span(
                span=span, kind="SERVER", authority=req.host, start_epoch=start, duration_s=duration,
                local_service=self.local_service, local_address=self.inbound_address, remote_address=upstream,
                method=req.method, path=req.url, code=code, flags=flags, upstream_cluster=self.service,
                node_id=self.workload, request_id=request_id, canonical_service=self.service,
                peer_address=_downstream(conn)))

    # -- the writers, made when first needed ----------------------------------------------------------
    def _access_log(self) -> AccessLog:
        if self._log is None:
            self._log = AccessLog(self.log_path, self.metrics, self.loop)
        return self._log

    def _zipkin(self) -> ZipkinReporter:
        if self._reporter is None:
            self._reporter = ZipkinReporter(self.metrics, self.loop)
        return self._reporter

    async def close(self) -> None:
        if self._log is not None:
            self._log.close()
        if self._reporter is not None:
            await self._reporter.close()
