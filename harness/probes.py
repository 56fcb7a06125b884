"""Direct probes of a workload's inbound listener, as a network peer outside the mesh would make them.

A probe opens its own connection (plaintext, or TLS with an optional client certificate), sends one
request and reports what came back, classifying "no HTTP answer" apart from an HTTP answer. TLS 1.3
servers report a rejected client certificate only at the client's first read, so a probe counts an
alert, a reset or an EOF at the handshake *or* at the first read as a rejection (SPEC §4).

The HTTP side is ``http.client`` (no hand parsing); certificates come back as ``cryptography`` objects.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509


@dataclass(frozen=True)
class ProbeResult:
    status: int | None  # None: no HTTP answer at all
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # how the connection ended when there was no answer
    stage: str = ""  # "connect", "handshake", "response" or "" when an answer came
    peer_chain: tuple[x509.Certificate, ...] = ()  # the server's certificates (leaf first) when TLS

    @property
    def answered(self) -> bool:
        return self.status is not None

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status} ({len(self.body)} body bytes)"
        return f"no HTTP answer: {self.error} at {self.stage}"


def client_context(bundle_path: str | None, cert_pem: bytes | None = None,
                   key_pem: bytes | None = None) -> ssl.SSLContext:
    """A TLS client context that checks the server against ``bundle_path`` (by chain, not hostname:
    mesh certificates carry SPIFFE URIs, not DNS names), presenting ``cert_pem`` if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    if bundle_path:
        ctx.load_verify_locations(bundle_path)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert_pem is not None and key_pem is not None:
        with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
            cert_file, key_file = Path(tmp, "c.pem"), Path(tmp, "k.pem")
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            ctx.load_cert_chain(cert_file, key_file)
    return ctx


def probe(address: str, *, tls: ssl.SSLContext | None = None, path: str = "/", host: str = "probe",
          headers: dict[str, str] | None = None, body: bytes | None = None, method: str = "GET",
          timeout_s: float = 5.0) -> ProbeResult:
    """One request to ``address`` ("IP:PORT"); never raises for what the server does."""
    ip, port = address.rsplit(":", 1)
    try:
        sock = socket.create_connection((ip, int(port)), timeout=timeout_s)
    except OSError as exc:
        return ProbeResult(None, error=_describe(exc), stage="connect")
    chain: tuple[x509.Certificate, ...] = ()
    try:
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_side=False)
            except (OSError, ssl.SSLError) as exc:
                return ProbeResult(None, error=_describe(exc), stage="handshake")
            chain = _peer_chain(sock)
        conn = http.client.HTTPConnection(ip, int(port), timeout=timeout_s)
        conn.sock = sock
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            return ProbeResult(None, error=_describe(exc), stage="response", peer_chain=chain)
        return ProbeResult(resp.status, data, {k.lower(): v for k, v in resp.getheaders()}, peer_chain=chain)
    finally:
        try:
            sock.close()
        except OSError:
            pass


def presented_certificate(address: str, tls: ssl.SSLContext, timeout_s: float = 5.0) -> x509.Certificate | None:
    """The leaf certificate a TLS listener presents (handshake only, no request)."""
    try:
        with socket.create_connection(_split(address), timeout=timeout_s) as raw:
            with tls.wrap_socket(raw, server_side=False) as sock:
                der = sock.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _peer_chain(sock: ssl.SSLSocket) -> tuple[x509.Certificate, ...]:
    get_chain = getattr(sock, "get_unverified_chain", None)  # Python 3.13+
    if get_chain is not None:
        return tuple(x509.load_der_x509_certificate(c if isinstance(c, bytes) else c.public_bytes())
                     for c in get_chain())
    der = sock.getpeercert(binary_form=True)
    return (x509.load_der_x509_certificate(der),) if der else ()


def _split(address: str) -> tuple[str, int]:
    ip, port = address.rsplit(":", 1)
    return ip, int(port)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
