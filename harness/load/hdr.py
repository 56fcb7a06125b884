"""HdrHistogram helpers: one histogram shape for every latency the harness records.

Latencies are whole microseconds from 1 µs to 60 s with 3 significant digits (HdrHistogram(1,
60_000_000, 3): ±0.1% per value). Values outside that range are clamped, not dropped, so a count is
never lost. Histograms travel between processes (meter worker, Locust workers) as the compressed
base64 text of ``encode()`` and are merged with ``decode_and_add``.
"""

from __future__ import annotations

from typing import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3

# Percentiles every summary carries, by the key used in results and reports.
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_us(histogram: HdrHistogram, micros: float) -> None:
    """Record one latency in µs, clamped into [1 µs, 60 s]."""
    histogram.record_value(min(max(int(micros), LOWEST_US), HIGHEST_US))


class Recorder:
    """Counts whole µs in a dict and adds them to a histogram in bulk: the same histogram as
    ``record_us`` for each value, at ~0.2 µs a value instead of ~1.6 µs (``HdrHistogram.record_value``
    is pure Python, and the meter records two values per request on its hot path). The dict is folded
    into the histogram whenever it holds ``fold_at`` distinct values, so memory stays bounded."""

    __slots__ = ("_counts", "_get", "_histogram", "_fold_at")

    def __init__(self, fold_at: int = 65536):
        self._counts: dict[int, int] = {}
        self._get = self._counts.get
        self._histogram = new_histogram()
        self._fold_at = fold_at

    def record(self, micros: float) -> None:
        value = int(micros)
        if value < LOWEST_US:
            value = LOWEST_US
        elif value > HIGHEST_US:
            value = HIGHEST_US
        self._counts[value] = self._get(value, 0) + 1
        if len(self._counts) >= self._fold_at:
            self._fold()

    def _fold(self) -> None:
        for value, count in self._counts.items():
            self._histogram.record_value(value, count)
        self._counts.clear()

    def histogram(self) -> HdrHistogram:
        """Everything recorded so far (the histogram keeps filling if recording goes on)."""
        self._fold()
        return self._histogram


def encode(histogram: HdrHistogram) -> str:
    """The compressed, base64 text form (ASCII), safe for JSON."""
    return histogram.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    histogram = new_histogram()
    if text:
        histogram.decode_and_add(text.encode("ascii"))
    return histogram


def merge_encoded(texts: Iterable[str]) -> HdrHistogram:
    """One histogram holding every value of the encoded histograms."""
    merged = new_histogram()
    for text in texts:
        if text:
            merged.decode_and_add(text.encode("ascii"))
    return merged


def summary_us(histogram: HdrHistogram) -> dict[str, int]:
    """p50/p90/p99/p99_9/max/min in µs (0 for an empty histogram)."""
    if histogram.get_total_count() == 0:
        return {**{k: 0 for k in PERCENTILES}, "max": 0, "min": 0}
    out = {key: int(histogram.get_value_at_percentile(p)) for key, p in PERCENTILES.items()}
    out["max"] = int(histogram.get_max_value())
    out["min"] = int(histogram.get_min_value())
    return out
