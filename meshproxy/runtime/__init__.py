"""Run the reference mesh as local processes: :class:`LocalMesh`, and :func:`sweep` for leftovers."""

from meshproxy.runtime.local import LocalMesh, MeshStartError
from meshruntime.sweep import sweep

__all__ = ["LocalMesh", "MeshStartError", "sweep"]
