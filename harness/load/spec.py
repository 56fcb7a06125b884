"""What the latency meter is asked to do and what it answers, as plain data that crosses processes.

Everything here round-trips through JSON (``to_dict`` / ``from_dict``) because the meter runs in its
own process (see openloop.py) and hands its result back on stdout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from harness.load import hdr


@dataclass(frozen=True)
class TlsClient:
    """Client-side TLS, so the meter can call an mTLS port directly.

    The chain is always verified against ``ca_file``; the host name is not checked by default because
    an X.509-SVID names a SPIFFE ID in a URI SAN, not a DNS name.
    """

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    server_hostname: str | None = None
    check_hostname: bool = False


@dataclass(frozen=True)
class Target:
    """One HTTP/1.1 request, sent again and again to ``address`` ("IP:PORT")."""

    address: str
    path: str = "/"
    host: str | None = None  # the Host header; the address when None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    tls: TlsClient | None = None

    def request_bytes(self) -> bytes:
        """The wire form, built once: writing a request is not parsing one."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host or self.address}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["body"] = self.body.decode("latin-1")
        out["headers"] = [list(h) for h in self.headers]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Target":
        data = dict(data)
        data["body"] = data.get("body", "").encode("latin-1")
        data["headers"] = tuple(tuple(h) for h in data.get("headers", ()))
        if data.get("tls"):
            data["tls"] = TlsClient(**data["tls"])
        return cls(**data)


@dataclass(frozen=True)
class OpenLoop:
    """Constant rate: request i is due at t0 + i/rate, whatever happened to the requests before it.

    Stops after ``count`` requests or ``duration_s`` seconds of schedule, whichever comes first (at
    least one must be given). ``warm_connections`` are opened before t0 so no handshake is timed;
    when all are busy the meter opens more, up to ``max_connections``, and beyond that requests wait
    in a queue, their clocks running. After the schedule, responses still missing after
    ``drain_timeout_s`` count as errors.
    """

    rate: float
    count: int | None = None
    duration_s: float | None = None
    warm_connections: int = 4
    max_connections: int = 512
    drain_timeout_s: float = 10.0

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError("rate must be above 0")
        if self.count is None and self.duration_s is None:
            raise ValueError("give count or duration_s (a load loop is always bounded)")


@dataclass(frozen=True)
class ClosedLoop:
    """``connections`` clients, each sending its next request when the previous answer has arrived.

    Latency is timed from the actual send: this is the coordinated-omission-prone mode, kept for the
    comparison with open loop and for throughput runs.
    """

    connections: int = 1
    count: int | None = None
    duration_s: float | None = None
    drain_timeout_s: float = 10.0

    def __post_init__(self):
        if self.connections < 1:
            raise ValueError("connections must be at least 1")
        if self.count is None and self.duration_s is None:
            raise ValueError("give count or duration_s (a load loop is always bounded)")


def load_to_dict(load: OpenLoop | ClosedLoop) -> dict[str, Any]:
    return {"mode": "open" if isinstance(load, OpenLoop) else "closed", **asdict(load)}


def load_from_dict(data: dict[str, Any]) -> OpenLoop | ClosedLoop:
    data = dict(data)
    mode = data.pop("mode")
    return OpenLoop(**data) if mode == "open" else ClosedLoop(**data)


@dataclass(frozen=True)
class LoadResult:
    """What one meter run measured. Latencies are µs, from intended send time to the response's last
    byte (open loop) or from the actual send (closed loop).

    ``count`` is responses recorded in the histogram; ``errors`` are requests that got no response
    (connect failure, reset, unparsable reply, still missing at the drain deadline) or a 5xx, and are
    not in the histogram. ``achieved_rate`` is requests sent per second of schedule (open loop: ``sent``
    over the span from t0 to the last send plus one period, so perfect pacing gives exactly the target);
    ``throughput`` is responses per second from t0 to the last response. ``send_lag_*`` is how late
    the meter itself sent (actual − intended), so its own share of a latency is visible; ``cpu_s``
    is what the meter process spent doing it (warm connections and interpreter start excluded).
    """

    mode: str
    target_rate: float | None
    sent: int
    count: int
    errors: int
    elapsed_s: float
    achieved_rate: float
    throughput: float
    p50_us: int
    p90_us: int
    p99_us: int
    p99_9_us: int
    max_us: int
    min_us: int
    mean_us: float
    send_lag_p50_us: int = 0
    send_lag_p99_us: int = 0
    connections_opened: int = 0
    cpu_s: float = 0.0  # the meter process's own CPU (user+system) from t0 to the result
    pacer: str = ""
    statuses: dict[str, int] = field(default_factory=dict)
    histogram: str = ""  # hdr.encode() of the latency histogram

    def latency_histogram(self):
        return hdr.decode(self.histogram)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoadResult":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def merge(cls, results: list["LoadResult"]) -> "LoadResult":
        """Results of meters that ran side by side (e.g. several worker processes): counts and rates
        add up, the histograms merge (decode_and_add), percentiles come from the merged histogram.
        Send-lag percentiles are the worst of the parts."""
        if not results:
            raise ValueError("nothing to merge")
        merged = hdr.merge_encoded(r.histogram for r in results)
        stats = hdr.summary_us(merged)
        statuses: dict[str, int] = {}
        for r in results:
            for code, n in r.statuses.items():
                statuses[code] = statuses.get(code, 0) + n
        rates = [r.target_rate for r in results if r.target_rate is not None]
        return cls(
            mode=results[0].mode,
            target_rate=sum(rates) if rates else None,
            sent=sum(r.sent for r in results),
            count=sum(r.count for r in results),
            errors=sum(r.errors for r in results),
            elapsed_s=max(r.elapsed_s for r in results),
            achieved_rate=sum(r.achieved_rate for r in results),
            throughput=sum(r.throughput for r in results),
            p50_us=stats["p50"], p90_us=stats["p90"], p99_us=stats["p99"], p99_9_us=stats["p99_9"],
            max_us=stats["max"], min_us=stats["min"],
            mean_us=float(merged.get_mean_value()) if merged.get_total_count() else 0.0,
            send_lag_p50_us=max(r.send_lag_p50_us for r in results),
            send_lag_p99_us=max(r.send_lag_p99_us for r in results),
            connections_opened=sum(r.connections_opened for r in results),
            cpu_s=sum(r.cpu_s for r in results),
            pacer=results[0].pacer,
            statuses=statuses,
            histogram=hdr.encode(merged),
        )
