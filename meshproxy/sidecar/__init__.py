"""The reference sidecar proxy: a thin uvloop + httptools I/O layer around ``meshproxy.policy``.

One process, one event loop, three listeners (docs/architecture.md "Sidecar behaviour"):

- outbound (``outbound.py``): plain HTTP from the app; Host -> destination -> route; fault, breaker,
  retries under a deadline; each try over a pooled mTLS connection whose peer SPIFFE ID is checked.
- inbound (``inbound.py``): its own accept loop picks TLS or plaintext per connection from the current
  mTLS mode (PERMISSIVE peeks the first byte); peer identity, trust domain, authz, XFCC; forwards to the
  app over the same kind of pool.
- admin (``admin.py``, aiohttp, off the hot path): /ready /config /certs /stats /metrics.

The hot path is asyncio Protocols parsing with httptools (``http1.py``); bodies are buffered and sent
with Content-Length, each message with one ``transport.write``; idle upstream connections are a list
pop away (``pool.py``). Everything per configuration (route table, authz set, endpoint lists, breaker,
outlier detector, balancer per destination) is built once per generation (``config.py``,
``destinations.py``); active health checks probe a destination's endpoints on timers (``health.py``); limits and their timeouts are in ``limits.py`` (one sweep, no per-request timer).
Certificates and their rotation: ``certs.py``, ``tls.py``; the control plane: ``dynamic.py``; static
bootstraps (no control plane) and the bootstrap format: ``bootstrap.py``; wiring: ``server.py``.
"""
