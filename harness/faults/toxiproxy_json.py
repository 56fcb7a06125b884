"""Toxiproxy's JSON for toxics: its attribute names and units to and from our toxics (SPEC §"Toxiproxy's API").

Each toxic type has a :class:`ToxicSchema`: its attributes (name → default, all whole numbers in
Toxiproxy's units unless listed as ``FLOATS``) and how to build our toxic from them. Toxiproxy decodes
attributes into Go ``int64`` fields, so a fraction or a string there is a bad request body; we also
refuse negative values (Toxiproxy would take them and misbehave). A missing attribute takes its default,
an unknown one is ignored, as Go's JSON decoder does. Types of our own start with ``meshconform_`` so
they can never collide with one Toxiproxy adds.

Adding a type: a :class:`ToxicSchema` line in :data:`SCHEMAS` (and the toxic in ``harness.faults``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from harness import faults
from harness.faults import Chunk, Link, Send

STREAMS = ("upstream", "downstream")


class ApiError(Exception):
    """An answer Toxiproxy would give: ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def bad_body(detail: str) -> ApiError:
    return ApiError(400, f"bad request body: {detail}")


@dataclass(frozen=True)
class Passthrough:
    """What Toxiproxy does for bandwidth ``rate`` 0: nothing."""

    async def pipe(self, chunk: Chunk, send: Send, link: Link) -> None:
        await send(chunk)


@dataclass(frozen=True)
class ToxicSchema:
    defaults: Mapping[str, float]
    build: Callable[[Mapping[str, float]], Any]
    floats: frozenset[str] = field(default_factory=frozenset)  # attributes that may be fractions
    streams: tuple[str, ...] = STREAMS  # the streams the toxic may go on
    default_stream: str = "downstream"
    extension: bool = False  # ours, not Toxiproxy's


def _toxic(name: str) -> type:
    return faults.TOXICS[name]


SCHEMAS: dict[str, ToxicSchema] = {
    "latency": ToxicSchema({"latency": 0, "jitter": 0},
                           lambda a: faults.Latency(a["latency"] / 1000, a["jitter"] / 1000)),
    "bandwidth": ToxicSchema({"rate": 0},  # KB/s, 1 KB = 1000 bytes (Toxiproxy: len/rate ms per chunk)
                             lambda a: faults.Bandwidth(a["rate"] * 1000) if a["rate"] else Passthrough()),
    "slow_close": ToxicSchema({"delay": 0}, lambda a: _toxic("slow_close")(a["delay"] / 1000)),
    "timeout": ToxicSchema({"timeout": 0}, lambda a: faults.Timeout(a["timeout"] / 1000)),
    "reset_peer": ToxicSchema({"timeout": 0},  # from the first data on its stream, as Toxiproxy
                              lambda a: faults.ResetPeer(a["timeout"] / 1000, on_data=True)),
    "slicer": ToxicSchema({"average_size": 0, "size_variation": 0, "delay": 0},  # bytes, bytes, µs
                          lambda a: faults.Slicer(int(a["average_size"]), a["delay"] / 1e6,
                                                  int(a["size_variation"]))),
    "limit_data": ToxicSchema({"bytes": 0}, lambda a: _toxic("limit_data")(int(a["bytes"]))),
    "meshconform_http_status": ToxicSchema(
        {"status": 503, "first": 0, "share": 1.0, "seed": -1},  # seed -1: unseeded
        lambda a: _toxic("meshconform_http_status")(
            int(a["status"]), int(a["first"]), float(a["share"]), None if a["seed"] < 0 else int(a["seed"])),
        floats=frozenset({"share"}), streams=("upstream",), default_stream="upstream", extension=True),
    "meshconform_http_delay": ToxicSchema(
        {"delay": 0, "jitter": 0},  # ms per request
        lambda a: _toxic("meshconform_http_delay")(a["delay"] / 1000, a["jitter"] / 1000),
        streams=("upstream",), default_stream="upstream", extension=True),
}


def attributes(kind: str, given: Any, current: Mapping[str, float] | None = None) -> dict[str, float]:
    """The full attributes of a ``kind`` toxic: ``given`` over ``current`` (an update) over the
    defaults. ApiError 400 naming the attribute when one is not a non-negative number of its kind."""
    schema = SCHEMAS[kind]
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise bad_body(f"attributes of a {kind} toxic are an object, not {type(given).__name__}")
    values = dict(current or schema.defaults)
    for name, value in given.items():
        if name not in schema.defaults:
            continue  # Go's decoder ignores unknown fields
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad_body(f"{kind} attribute {name!r} is a number, not {value!r}")
        if name not in schema.floats and value != int(value):
            raise bad_body(f"{kind} attribute {name!r} is a whole number, not {value!r}")
        if value < 0 and not (name == "seed"):
            raise bad_body(f"{kind} attribute {name!r} must not be negative, got {value!r}")
        values[name] = value if name in schema.floats else int(value)
    return values


def build(kind: str, values: Mapping[str, float]) -> Any:
    """Our toxic for these attributes; ApiError 400 with the toxic's own reason when it refuses them."""
    try:
        return SCHEMAS[kind].build(values)
    except (ValueError, TypeError) as exc:
        raise bad_body(f"{kind}: {exc}") from None


def known_types(*, extensions: bool) -> list[str]:
    return sorted(k for k, s in SCHEMAS.items() if extensions or not s.extension)
