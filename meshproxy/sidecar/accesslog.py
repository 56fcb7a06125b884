"""The sidecar's JSON access log: one line per record, appended to ``<work_dir>/access.log``.

Thin I/O: ``write`` renders the record and keeps the line in memory; a timer flushes what has
accumulated at most ``FLUSH_S`` after the first line of a batch, and ``close`` flushes the rest (the
sidecar's shutdown). The file is opened (append, created 0600) at the first flush.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, TextIO

from meshproxy.sidecar.metrics import Metrics

log = logging.getLogger(__name__)

FLUSH_S = 0.2


class AccessLog:
    def __init__(self, path: Path, metrics: Metrics, loop: asyncio.AbstractEventLoop, flush_s: float = FLUSH_S):
        self.path = path
        self._metrics = metrics
        self._loop = loop
        self._flush_s = flush_s
        self._lines: list[str] = []
        self._file: TextIO | None = None
        self._timer: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        self._lines.append(json.dumps(record, separators=(",", ":")))
        self._metrics.access_log_lines += 1
        if self._timer is None:
            self._timer = self._loop.call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._file = os.fdopen(fd, "a", buffering=1 << 16)
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
        except OSError as exc:  # a full disk must not take the data path down
            log.warning("access log %s: %s (%d lines lost)", self.path, exc, len(lines))

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
