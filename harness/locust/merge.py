"""Exact merging of the latency histograms of Locust workers.

A worker ships, with each of Locust's worker reports (every 3 s and once more when it quits), what it
recorded since the last one: :func:`worker_part` — its HdrHistogram as ``encode()`` text, its failures
and its labelled counts (the version that answered, retries that recovered). The master adds each part
with ``decode_and_add``: every value lands in the merged histogram, so its percentiles are those of all
requests together, exactly as if one process had recorded them (no averaging of per-worker
percentiles). Pure (no ``locust``): the unit tests run it in pytest's process.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from harness.load import hdr


def worker_part(histogram: Any, failures: int, counts: Mapping[str, int]) -> dict[str, Any]:
    """The JSON-ready delta a worker ships: count, failures, counts and the encoded histogram."""
    count = histogram.get_total_count()
    return {"count": count, "failures": failures, "counts": dict(counts),
            "histogram": hdr.encode(histogram) if count else ""}


class MergedHistogram:
    """Everything the workers reported, added up; ``workers`` keeps each one's own totals."""

    def __init__(self) -> None:
        self.histogram = hdr.new_histogram()
        self.failures = 0
        self.counts: Counter[str] = Counter()
        self.workers: dict[str, dict[str, int]] = {}

    def add(self, worker: str, part: Mapping[str, Any]) -> None:
        if part.get("histogram"):
            self.histogram.decode_and_add(part["histogram"].encode("ascii"))
        self.failures += int(part.get("failures", 0))
        self.counts.update({str(k): int(v) for k, v in part.get("counts", {}).items()})
        totals = self.workers.setdefault(worker, {"count": 0, "failures": 0})
        totals["count"] += int(part.get("count", 0))
        totals["failures"] += int(part.get("failures", 0))

    @property
    def count(self) -> int:
        return self.histogram.get_total_count()

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "failures": self.failures, "counts": dict(self.counts),
                "workers": self.workers, "histogram": hdr.encode(self.histogram) if self.count else ""}
