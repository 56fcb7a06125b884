"""Pure decision code of the reference sidecar: no asyncio, no sockets, no clocks, no global random.

Each module decides one thing and leaves the I/O to ``meshproxy.sidecar``, which owns one instance per
destination (or per request) and feeds it what happened:

- ``router``   Host header -> destination service; path/header match -> route; weighted version pick.
- ``retry``    whether an attempt's outcome is retried (Envoy ``retry_on``) and the jittered backoff.
- ``timeout``  the route deadline over all tries and each try's own timeout inside it.
- ``fault``    the mesh's own fault injection: delay and abort, each decided independently.
- ``breaker``  Envoy's four circuit-breaker thresholds as admission counters.
- ``outlier``  Envoy's consecutive_5xx outlier detection: ejection, un-ejection on ``tick()``.
- ``balancer`` round robin, least request (power of two choices), random, ring hash.
- ``health``   Envoy's active HTTP health-check state machine: which endpoints pass their probes.

Time is a ``Callable[[], float]`` (monotonic seconds) or a ``now`` argument and randomness a
``random.Random``, both injected, so every decision is reproducible in a unit test. Deliberate defects
arrive as one typed value, ``meshproxy.defects.Defects`` (``NONE`` by default), read by name with
``active``/``param``; the sidecar passes its own (``meshproxy.defects.current()`` unless a test gives one).
"""
