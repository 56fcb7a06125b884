"""Mesh adapters: the Protocol in ``base``, one module per mesh, found by name through entry points."""

from harness.adapters.base import (
    Deployment,
    HopInterposer,
    HttpRequest,
    HttpResponse,
    Implementation,
    MeshAdapter,
    MeshCertificates,
    MeshStats,
    ProcessControl,
    WorkloadInfo,
)

__all__ = [
    "Deployment", "HopInterposer", "HttpRequest", "HttpResponse", "Implementation", "MeshAdapter",
    "MeshCertificates", "MeshStats", "ProcessControl", "WorkloadInfo",
]
