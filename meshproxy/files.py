"""Durable, atomic file writes: what the CA key, certificates and the control plane's store rely on."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_file_atomically(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Write via a temp file created with ``mode`` (never world-readable, even briefly), fsync it,
    rename it over ``path``, and (``durable``) fsync the directory so the rename survives a crash."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
