"""Regular expressions that find one URI SAN in a certificate's DER bytes, for proxies that cannot
parse a certificate's SubjectAltName themselves (HAProxy 2.6 and nginx 1.22 expose only the whole
client certificate: HAProxy as ``ssl_c_der``, nginx as PEM text in ``$ssl_client_raw_cert``).

A URI SAN is encoded as the context tag ``0x86`` ([6] IA5String), one length byte (URIs up to 127
bytes), then the URI. Matching exactly those bytes names one SAN entry with exactly that URI — not a
longer one sharing its prefix, and not the same text elsewhere (the subject is ``PrintableString`` or
``UTF8String`` with other tags). A trust-domain pattern leaves the length byte open and matches the
prefix ``spiffe://<td>/``.

Two encodings of the same byte pattern:

- :func:`hex_pattern` for HAProxy's ``ssl_c_der,hex`` (upper-case hex): anchored with ``^(..)*`` so it
  only matches on a byte boundary.
- :func:`pem_pattern` for nginx's PEM text: base64 packs 3 bytes into 4 characters, so the pattern is
  an alternation over the 3 possible byte alignments; each character becomes the class of base64
  characters whose known bits agree, and ``\\s?`` between characters absorbs PEM line breaks.
"""

from __future__ import annotations

import base64
from typing import Sequence

URI_SAN_TAG = 0x86
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
Pattern = Sequence[int | None]  # bytes, None = any byte


def uri_san_bytes(uri: str) -> list[int]:
    """The DER bytes of a URI SAN entry holding exactly ``uri`` (short form length, < 128 bytes)."""
    raw = uri.encode("ascii")
    if len(raw) > 127:
        raise ValueError(f"URI SAN longer than 127 bytes is not supported: {uri!r}")
    return [URI_SAN_TAG, len(raw), *raw]


def uri_prefix_bytes(prefix: str) -> list[int | None]:
    """A URI SAN entry whose URI starts with ``prefix`` (any length byte)."""
    return [URI_SAN_TAG, None, *prefix.encode("ascii")]


def hex_pattern(pattern: Pattern) -> str:
    """PCRE over upper-case hex text, matching ``pattern`` on a byte boundary."""
    return "^(..)*" + "".join(".." if b is None else f"{b:02X}" for b in pattern)


def pem_pattern(pattern: Pattern) -> str:
    """PCRE over PEM (base64 with line breaks) matching ``pattern`` at any byte offset."""
    return "(" + "|".join(_aligned(pattern, lead) for lead in range(3)) + ")"


def _aligned(pattern: Pattern, lead: int) -> str:
    """The pattern preceded by ``lead`` unknown bytes, so that it starts at ``lead`` mod 3."""
    cells: list[int | None] = [None] * lead + list(pattern)
    cells += [None] * (-len(cells) % 3)
    chars: list[str] = []
    for i in range(0, len(cells), 3):
        group = cells[i:i + 3]
        bits = [(b >> (7 - k)) & 1 if b is not None else None for b in group for k in range(8)]
        for c in range(4):
            chars.append(_char_class(bits[6 * c:6 * c + 6]))
    # unknown characters at either end add nothing but length: trim them
    while chars and chars[0] == "ANY":
        chars.pop(0)
    while chars and chars[-1] == "ANY":
        chars.pop()
    return r"\s?".join("[A-Za-z0-9+/]" if c == "ANY" else c for c in chars)


def _char_class(bits: list[int | None]) -> str:
    if all(b is None for b in bits):
        return "ANY"
    fits = [ch for value, ch in enumerate(_B64)
            if all(b is None or ((value >> (5 - k)) & 1) == b for k, b in enumerate(bits))]
    if len(fits) == 1:
        return "\\" + fits[0] if fits[0] in "+/" else fits[0]
    return "[" + "".join("\\" + ch if ch in "+/" else ch for ch in fits) + "]"


def der_hex(der: bytes) -> str:
    """What HAProxy's ``ssl_c_der,hex`` yields (for tests)."""
    return der.hex().upper()


def der_pem_text(der: bytes) -> str:
    """PEM body lines as nginx's ``$ssl_client_raw_cert`` holds them (for tests)."""
    text = base64.b64encode(der).decode()
    return "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
