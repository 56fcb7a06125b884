"""The reference mesh's control plane: the mesh CA's API, the durable scenario, and config push.

Workloads join with a one-time join token, get an X.509-SVID from ``/v1/sign`` and from then on
authenticate with it (TLS client certificate). Sidecars register their inbound address, long-poll
``/v1/config`` for the scenario and the endpoint set, and ack what they applied; the harness waits on
``/v1/wait`` until a generation is in effect everywhere. The API is in docs/architecture.md.

Modules: ``app`` (routes and handlers), ``auth`` (who is calling), ``tokens`` (join tokens), ``store``
(durable scenario and generation), ``registry`` (endpoints, acks, wake-ups), ``server`` (start/stop),
``errors`` (JSON error answers), ``__main__`` (command line).
"""
