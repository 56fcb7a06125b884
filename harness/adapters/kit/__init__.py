"""The adapter kit: what every mesh adapter is built from, under public names.

A new adapter is one module that implements :class:`harness.adapters.base.MeshAdapter` with these parts:

- :class:`KeepAliveClient` — the HTTP/1.1 client behind ``send()`` (never retries on its own);
- :class:`StateDeployment` — a ``Deployment`` read from a state mapping of docs/architecture.md's shape;
- :class:`InterposedHop` — the lease of a proxy put on a hop (``heal()`` is idempotent);
- :class:`Withdrawal` — the lease of an endpoint taken out of its service's set (EndpointMembership);
- :func:`workload_certificate` — the leaf a workload's inbound presents, read from a real handshake;
- :class:`FeatureClaims` — the features the adapter claims; every other one is NOT_SUPPORTED with a reason;
- the shared timeouts and the harness's own SPIFFE path (:mod:`harness.adapters.kit.timeouts`).

It imports no adapter, so loading one adapter never loads another.
"""

from harness.adapters.kit.certificates import workload_certificate
from harness.adapters.kit.client import KeepAliveClient
from harness.adapters.kit.deployment import StateDeployment
from harness.adapters.kit.features import FeatureClaims
from harness.adapters.kit.hop import InterposedHop
from harness.adapters.kit.membership import Withdrawal
from harness.adapters.kit.timeouts import HARNESS_SPIFFE_PATH, START_TIMEOUT_S

__all__ = ["FeatureClaims", "HARNESS_SPIFFE_PATH", "InterposedHop", "KeepAliveClient", "START_TIMEOUT_S",
           "StateDeployment", "Withdrawal", "workload_certificate"]
