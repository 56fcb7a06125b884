# Pytester runs suites in this process and forgets the modules they import. C extensions (numpy under
# matplotlib) refuse a second load and matplotlib's lazily imported modules would come back as second
# copies with different classes, so the report writers' heavy imports are made here, once, by drawing
# one plot of every kind.
from harness.report.plots import plot_data_uri

for _kind, _data in [("bar", {"labels": ["a"], "values": [1], "low": [0.5], "high": [1.5], "expected": [1]}),
                     ("hist", {"values": [1, 2]}), ("cdf", {"series": {"a": [1, 2]}}),
                     ("line", {"x": [1, 2], "series": {"a": [1, 2]}})]:
    plot_data_uri({"title": "warm-up", "kind": _kind, "data": _data})

