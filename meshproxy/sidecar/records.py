"""What one finished request at one hop is reported as: an access-log record and a Zipkin v2 span.

Pure (no I/O, no clock: times are given): docs/architecture.md "Telemetry" lists every field. Response
flags are Envoy's (``UO`` overflow, ``UF`` connect failure, ``UT`` timeout, ``URX`` retry limit, ``NR``
no route, ``UH`` no healthy upstream, ``DI`` delay injected, ``FI`` fault abort, ``UC`` upstream reset,
``RBAC`` denied, ``NC`` no configuration, ``DC`` downstream gone), comma-joined, ``"-"`` when none.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from meshproxy.policy.tracecontext import Span

NONE = "-"


def join_flags(*flags: str) -> str:
    """Flags in the given order, skipping empty and ``"-"`` ones; ``"-"`` when none is left."""
    kept = [f for f in flags if f and f != NONE]
    return ",".join(kept) if kept else NONE


def rfc3339_ms(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def access_record(*, start_epoch: float, direction: str, method: bytes, path: bytes, authority: bytes | None,
                  code: int, flags: str, bytes_received: int, bytes_sent: int, duration_s: float,
                  upstream_s: float | None, attempts: int, request_id: bytes | None, span: Span | None,
                  upstream_host: str | None, upstream_cluster: str | None, downstream: str | None,
                  source_workload: str, destination_workload: str) -> dict[str, Any]:
    return {
        "start_time": rfc3339_ms(start_epoch),
        "direction": direction,
        "method": method.decode("latin-1"),
        "path": path.decode("latin-1"),
        "protocol": "HTTP/1.1",
        "authority": _text(authority),
        "response_code": code,
        "response_flags": flags,
        "bytes_received": bytes_received,
        "bytes_sent": bytes_sent,
        "duration": round(duration_s * 1000, 3),
        "upstream_service_time": None if upstream_s is None else round(upstream_s * 1000, 3),
        "attempts": attempts,
        "x_request_id": _text(request_id),
        "trace_id": _text(span.trace_id) if span is not None else None,
        "span_id": _text(span.span_id) if span is not None else None,
        "upstream_host": upstream_host,
        "upstream_cluster": upstream_cluster,
        "downstream_remote_address": downstream,
        "source_workload": source_workload,
        "destination_workload": destination_workload,
    }


def _endpoint(address: str | None) -> dict[str, Any] | None:
    if not address:
        return None
    ip, _, port = address.rpartition(":")
    return {"ipv4": ip, "port": int(port)} if ip and port.isdigit() else None


def zipkin_span(*, span: Span, kind: str, authority: bytes | None, start_epoch: float, duration_s: float,
                local_service: str, local_address: str, remote_address: str | None, method: bytes, path: bytes,
                code: int, flags: str, upstream_cluster: str | None, node_id: str, request_id: bytes | None,
                canonical_service: str, peer_address: str | None) -> dict[str, Any]:
    """One Zipkin v2 span (https://zipkin.io/zipkin-api/zipkin2-api.yaml), as Envoy's Zipkin tracer sends."""
    local = _endpoint(local_address) or {}
    out: dict[str, Any] = {
        "traceId": span.trace_id.decode(),
        "id": span.span_id.decode(),
        "name": f"{_text(authority) or '-'}/*",
        "kind": kind,
        "timestamp": int(start_epoch * 1_000_000),
        "duration": max(1, int(duration_s * 1_000_000)),
        "localEndpoint": {"serviceName": local_service, **local},
        "shared": False,
        "tags": {
            "http.method": method.decode("latin-1"),
            "http.url": path.decode("latin-1"),
            "http.status_code": str(code),
            "response_flags": flags,
            "upstream_cluster": upstream_cluster or "-",
            "node_id": node_id,
            "guid:x-request-id": _text(request_id) or "-",
            "istio.canonical_service": canonical_service,
            "peer.address": peer_address or "-",
        },
    }
    if span.parent_id is not None:
        out["parentId"] = span.parent_id.decode()
    remote = _endpoint(remote_address)
    if remote is not None:
        out["remoteEndpoint"] = remote
    return out
