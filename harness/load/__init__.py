"""Load generation: the open-loop latency meter (openloop.py) and HdrHistogram helpers (hdr.py).

The meter runs each load in a process of its own; ``measure``/``measure_async`` are the entry points.
"""

from harness.load.openloop import (ClosedLoop, LoadResult, MeterError, OpenLoop, Target, TlsClient,
                                   measure, measure_async, measure_series)

__all__ = ["ClosedLoop", "LoadResult", "MeterError", "OpenLoop", "Target", "TlsClient", "measure",
           "measure_async", "measure_series"]
