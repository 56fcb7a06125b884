"""Join tokens: how a new workload proves, once, who it is before it has a certificate.

An admin creates a token bound to one workload name and one SPIFFE ID; the workload spends it on its
first ``/v1/sign``. A token works once and expires (600 s by default). Tokens live in memory only: a
control-plane restart invalidates them, which is fine because a running sidecar renews with its SVID.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Callable

DEFAULT_TTL_S = 600.0
MAX_TTL_S = 86_400.0


@dataclass(frozen=True)
class JoinGrant:
    workload: str
    spiffe_id: str


class TokenRefused(Exception):
    """A join token that cannot be used; the message says why (unknown, expired, already used)."""


@dataclass
class _Entry:
    grant: JoinGrant
    expires_at: float
    used: bool = False


def _digest(token: str) -> str:
    # Only digests are kept, so a memory dump does not hand out live tokens.
    return hashlib.sha256(token.encode()).hexdigest()


class JoinTokens:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def create(self, workload: str, spiffe_id: str, ttl_s: float = DEFAULT_TTL_S) -> str:
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be in (0, {MAX_TTL_S:.0f}]")
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._entries[_digest(token)] = _Entry(JoinGrant(workload, spiffe_id), self._clock() + ttl_s)
        return token

    def check(self, token: str) -> JoinGrant:
        """The grant of a usable token, without spending it; raises TokenRefused."""
        entry = self._entries.get(_digest(token))
        if entry is None:
            raise TokenRefused("unknown join token")
        if entry.used:
            raise TokenRefused("join token already used")
        if self._clock() >= entry.expires_at:
            raise TokenRefused("join token expired")
        return entry.grant

    def spend(self, token: str) -> JoinGrant:
        """Check and mark used in one step (no await in between, so two requests cannot both win)."""
        grant = self.check(token)
        self._entries[_digest(token)].used = True
        return grant

    def _forget_expired(self) -> None:
        # Used tokens are kept until they expire so a replay is told "already used", not "unknown".
        now = self._clock()
        for key in [k for k, e in self._entries.items() if now >= e.expires_at]:
            del self._entries[key]
