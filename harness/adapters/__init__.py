"""Mesh adapters: the Protocol in ``base``, the parts every adapter is built from in ``kit``, one module
per mesh, found by name through entry points."""

from harness.adapters.base import (
    Deployment,
    MeshAttemptCount,
    MeshNoRouteMarker,
    HopInterposer,
    HttpRequest,
    HttpResponse,
    Implementation,
    MeshAccessLogs,
    MeshAdapter,
    MeshCertificates,
    MeshMetrics,
    MeshStats,
    ProcessControl,
    WorkloadInfo,
)

__all__ = [
    "Deployment", "HopInterposer", "MeshAttemptCount", "MeshNoRouteMarker", "HttpRequest", "HttpResponse", "Implementation", "MeshAdapter",
    "MeshAccessLogs", "MeshCertificates", "MeshMetrics", "MeshStats", "ProcessControl", "WorkloadInfo",
]
