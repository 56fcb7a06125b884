"""Load balancers: pick one endpoint of a destination's available (not ejected) endpoints.

Envoy semantics:

- ``round_robin``: endpoints in turn. Each balancer starts at a random offset (Envoy advances its
  scheduler by a random seed for the same reason) so that many sidecars do not all hit the same
  endpoint first.
- ``least_request``: Envoy's default ``choice_count`` 2, "power of two choices": draw two endpoints at
  random (with replacement, as Envoy does) and take the one with fewer active requests, counted
  through ``started``/``finished``. Ties go to the first draw.
- ``random``: uniform.
- ``ring_hash``: consistent hashing (Karger/ketama) on ``hash_key`` (the value of the policy's
  ``hash_header``). Each endpoint owns ``VNODES_PER_ENDPOINT`` points on a 64-bit ring, placed by
  BLAKE2b of ``"<endpoint>_<i>"`` (stable across processes, unlike ``hash()``); a key goes to the first
  point at or after its own hash. Removing one of N endpoints moves only the keys it owned, about 1/N.
  Without a key Envoy picks a random endpoint, and so do we.

``pick`` needs a non-empty sequence (the caller answers 503 ``no healthy upstream`` otherwise).

Defects (meshproxy/defects.py, passed to :func:`make_balancer`; suites/balancing must fail on each):
``rr_bias`` / ``random_bias`` (points, default 6): round robin / random send that many points more to
the first endpoint (of N: with probability points·N/(N−1)/100 the pick is the first endpoint);
``lr_random``: least request ignores active requests and picks uniformly; ``ring_not_sticky``
(probability, default 1): a keyed pick ignores the key with that probability; ``ring_remap_all``: the
ring's points are salted with the endpoint set, so any change of the set may move every key.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left
from typing import Protocol, Sequence

from meshproxy.defects import NONE, Defects
from meshscenario import LbPolicy, LoadBalancing

VNODES_PER_ENDPOINT = 160  # ketama's count: each endpoint's share within about ±8 % (1/sqrt(160))
_RING_CACHE_SIZE = 16  # endpoint sets seen recently (ejections change the set; keep a few rings)


class Balancer(Protocol):
    def pick(self, endpoints: Sequence[str], rng: random.Random, hash_key: str | None = None) -> str: ...
    def started(self, endpoint: str) -> None: ...
    def finished(self, endpoint: str) -> None: ...


def _no_endpoints() -> ValueError:
    return ValueError("no endpoints to pick from (answer 503 no healthy upstream)")


class _Untracked:
    """Balancers that do not care about active requests."""

    def started(self, endpoint: str) -> None:
        pass

    def finished(self, endpoint: str) -> None:
        pass


def _bias_probability(points: float, n: int) -> float:
    """Probability of forcing the first of ``n`` endpoints so that it gets ``points`` more than 1/n."""
    return min(1.0, points / 100 * n / (n - 1)) if n > 1 else 0.0


class RoundRobin(_Untracked):
    def __init__(self, bias_points: float = 0.0) -> None:
        self._next: int | None = None
        self._bias_points = bias_points  # defect rr_bias: 0 in a correct mesh

    def pick(self, endpoints: Sequence[str], rng: random.Random, hash_key: str | None = None) -> str:
        if not endpoints:
            raise _no_endpoints()
        if self._bias_points and rng.random() < _bias_probability(self._bias_points, len(endpoints)):
            return endpoints[0]
        if self._next is None:
            self._next = rng.randrange(len(endpoints))
        index = self._next % len(endpoints)
        self._next = index + 1
        return endpoints[index]


class RandomPick(_Untracked):
    def __init__(self, bias_points: float = 0.0) -> None:
        self._bias_points = bias_points  # defect random_bias: 0 in a correct mesh

    def pick(self, endpoints: Sequence[str], rng: random.Random, hash_key: str | None = None) -> str:
        if not endpoints:
            raise _no_endpoints()
        if self._bias_points and rng.random() < _bias_probability(self._bias_points, len(endpoints)):
            return endpoints[0]
        return endpoints[int(rng.random() * len(endpoints))]


class LeastRequest:
    def __init__(self, load_blind: bool = False) -> None:
        self.active: dict[str, int] = {}
        self._load_blind = load_blind  # defect lr_random: False in a correct mesh

    def pick(self, endpoints: Sequence[str], rng: random.Random, hash_key: str | None = None) -> str:
        n = len(endpoints)
        if n == 0:
            raise _no_endpoints()
        if n == 1:
            return endpoints[0]
        first = endpoints[int(rng.random() * n)]
        if self._load_blind:
            return first
        second = endpoints[int(rng.random() * n)]
        active = self.active
        return second if active.get(second, 0) < active.get(first, 0) else first

    def started(self, endpoint: str) -> None:
        self.active[endpoint] = self.active.get(endpoint, 0) + 1

    def finished(self, endpoint: str) -> None:
        left = self.active.get(endpoint, 0) - 1
        if left < 0:
            raise RuntimeError(f"finished({endpoint!r}) without started()")
        if left:
            self.active[endpoint] = left
        else:
            del self.active[endpoint]  # endpoints come and go; keep the map to those in use


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process and Python version (BLAKE2b, 8 bytes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _Ring:
    __slots__ = ("points", "owners")

    def __init__(self, endpoints: Sequence[str], vnodes: int, salted: bool = False):
        # salted (defect ring_remap_all): every point depends on the whole endpoint set
        salt = f"{stable_hash('|'.join(sorted(set(endpoints))))}|" if salted else ""
        entries = sorted((stable_hash(f"{salt}{e}_{i}"), e) for e in set(endpoints) for i in range(vnodes))
        self.points = [p for p, _ in entries]
        self.owners = [e for _, e in entries]

    def owner(self, key_hash: int) -> str:
        index = bisect_left(self.points, key_hash)
        return self.owners[index if index < len(self.points) else 0]  # the ring wraps around


class RingHash(_Untracked):
    def __init__(self, vnodes: int = VNODES_PER_ENDPOINT, *, ignore_key: float = 0.0, salted: bool = False) -> None:
        self.vnodes = vnodes
        self._rings: dict[tuple[str, ...], _Ring] = {}
        self._ignore_key = ignore_key  # defect ring_not_sticky: 0 in a correct mesh
        self._salted = salted  # defect ring_remap_all: False in a correct mesh

    def _ring(self, endpoints: Sequence[str]) -> _Ring:
        key = tuple(endpoints)
        ring = self._rings.get(key)
        if ring is None:
            if len(self._rings) >= _RING_CACHE_SIZE:
                self._rings.pop(next(iter(self._rings)))  # oldest first: dicts keep insertion order
            ring = self._rings[key] = _Ring(endpoints, self.vnodes, self._salted)
        return ring

    def pick(self, endpoints: Sequence[str], rng: random.Random, hash_key: str | None = None) -> str:
        if not endpoints:
            raise _no_endpoints()
        if hash_key is None or (self._ignore_key and rng.random() < self._ignore_key):
            return endpoints[int(rng.random() * len(endpoints))]
        return self._ring(endpoints).owner(stable_hash(hash_key))


def _points(defects: Defects, name: str) -> float:
    if not defects.active(name):
        return 0.0
    value = defects.param(name)
    return 6.0 if value is True else float(value)


def make_balancer(lb: LoadBalancing | None = None, defects: Defects = NONE) -> Balancer:
    """A fresh balancer for one destination (round robin when ``lb`` is None, Envoy's default)."""
    policy = lb.policy if lb is not None else LbPolicy.ROUND_ROBIN
    if policy is LbPolicy.ROUND_ROBIN:
        return RoundRobin(bias_points=_points(defects, "rr_bias"))
    if policy is LbPolicy.LEAST_REQUEST:
        return LeastRequest(load_blind=defects.active("lr_random"))
    if policy is LbPolicy.RANDOM:
        return RandomPick(bias_points=_points(defects, "random_bias"))
    if policy is LbPolicy.RING_HASH:
        ignore = defects.param("ring_not_sticky") if defects.active("ring_not_sticky") else 0.0
        return RingHash(ignore_key=1.0 if ignore is True else float(ignore),
                        salted=defects.active("ring_remap_all"))
    raise ValueError(f"unknown load balancing policy {policy!r}")
