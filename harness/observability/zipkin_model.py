"""Zipkin's v2 span, as its API documents it (zipkin2-api.yaml, ``ListOfSpans``), validated with pydantic.

Strict where the schema is: ids are lower-case hex (traceId 16 or 32 digits, id and parentId 16),
``kind`` one of the four Zipkin names, ``timestamp``/``duration`` integers of microseconds (duration at
least 1), tags string → string. Unknown fields are refused rather than silently dropped, so a mesh that
sends something else learns which field. :func:`parse_spans` turns a request body into spans or a
:class:`SpanFormatError` naming the offending field (``[3].localEndpoint.port``).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

TraceId = Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{16}|[0-9a-f]{32})$")]
SpanId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
MAX_SPANS_PER_POST = 10_000


class Kind(str, Enum):
    CLIENT = "CLIENT"
    SERVER = "SERVER"
    PRODUCER = "PRODUCER"
    CONSUMER = "CONSUMER"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Endpoint(_Strict):
    serviceName: str | None = None
    ipv4: str | None = Field(default=None, pattern=r"^(\d{1,3})(\.\d{1,3}){3}$")
    ipv6: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)


class Annotation(_Strict):
    timestamp: int = Field(ge=0)
    value: str


class Span(_Strict):
    traceId: TraceId
    id: SpanId
    parentId: SpanId | None = None
    name: str | None = None
    kind: Kind | None = None
    timestamp: int | None = Field(default=None, ge=0)  # epoch microseconds
    duration: int | None = Field(default=None, ge=1)  # microseconds
    debug: bool | None = None
    shared: bool | None = None
    localEndpoint: Endpoint | None = None
    remoteEndpoint: Endpoint | None = None
    annotations: list[Annotation] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def service(self) -> str | None:
        return self.localEndpoint.serviceName if self.localEndpoint else None

    @property
    def end(self) -> int | None:
        return None if self.timestamp is None or self.duration is None else self.timestamp + self.duration

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
            "traceId": self.traceId, "id": self.id}


# Enum values arrive as JSON strings: strict mode would refuse them, so the list is validated in JSON mode
_SPANS = TypeAdapter(list[Span])


class SpanFormatError(ValueError):
    """A body that is not a Zipkin v2 ListOfSpans; ``field`` locates the first problem."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_spans(body: bytes) -> list[Span]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpanFormatError("(body)", f"not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as e:
        raise SpanFormatError("(body)", f"not JSON: {e}") from None
    if not isinstance(data, list):
        raise SpanFormatError("(body)", f"a JSON array of spans is required, got {type(data).__name__}")
    if len(data) > MAX_SPANS_PER_POST:
        raise SpanFormatError("(body)", f"at most {MAX_SPANS_PER_POST} spans per request, got {len(data)}")
    try:
        return _SPANS.validate_json(text)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        return _raise(first)
    except RecursionError:
        raise SpanFormatError("(body)", "nested too deep") from None


def _raise(error: dict) -> list[Span]:
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    raise SpanFormatError(where.lstrip(".") or "(body)", error["msg"])


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")
