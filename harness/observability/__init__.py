"""What the harness needs to check a mesh's telemetry against ground truth (MESH-OBSERVABILITY).

- ``zipkin_model``: the Zipkin v2 span schema (pydantic), the format Envoy's Zipkin tracer sends;
- ``zipkin_store``: the spans a collector holds, and the read side's queries over them;
- ``dependencies``: the service links implied by parent/child spans (Zipkin's ``/api/v2/dependencies``);
- ``zipkin_app``: the aiohttp collector app (``POST /api/v2/spans`` and Zipkin's read API);
- ``zipkin_served``: one collector in a thread of its own (a session fixture, ``meshconform zipkin
  serve``) and a small synchronous client of its read API;
- ``metrics``, ``prometheus``: a mesh's request counters normalised, and the parse of Istio/Envoy
  Prometheus series into them;
- ``access_log``: one access-log record normalised, parsed from the JSON lines a sidecar writes;
- ``graph``: the service graph (edges with counts) and how it is compared with the calls made.

Everything here but ``zipkin_app``/``zipkin_served`` is pure: no sockets, no clocks.
"""
