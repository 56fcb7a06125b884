"""The master's merge of worker histograms is exact: every value of every worker, as one histogram."""

import json

from harness.load import hdr
from harness.locust.merge import MergedHistogram, worker_part


def _histogram(values):
    h = hdr.new_histogram()
    for v in values:
        hdr.record_us(h, v)
    return h


def test_two_workers_merge_to_exactly_their_values():
    first, second = [120, 250, 250, 9_000], [80, 1_500, 2_000_000]
    merged = MergedHistogram()
    # the parts travel as JSON inside Locust's worker reports
    merged.add("w1", json.loads(json.dumps(worker_part(_histogram(first), 1, {"backend → v1": 4}))))
    merged.add("w2", json.loads(json.dumps(worker_part(_histogram(second), 0, {"backend → v1": 2,
                                                                               "backend → v2": 1}))))
    one_process = _histogram(first + second)
    assert merged.count == 7 == one_process.get_total_count()
    assert merged.histogram.get_max_value() == one_process.get_max_value()
    assert 2_000_000 <= merged.histogram.get_max_value() <= 2_000_000 * 1.001
    assert merged.histogram.get_min_value() == one_process.get_min_value()
    for p in (50, 90, 99, 99.9):
        assert merged.histogram.get_value_at_percentile(p) == one_process.get_value_at_percentile(p)
    assert merged.workers == {"w1": {"count": 4, "failures": 1}, "w2": {"count": 3, "failures": 0}}
    assert merged.failures == 1
    assert merged.counts == {"backend → v1": 6, "backend → v2": 1}


def test_reports_of_one_worker_add_up_and_an_empty_report_adds_nothing():
    merged = MergedHistogram()
    merged.add("w1", worker_part(_histogram([100]), 0, {}))
    merged.add("w1", worker_part(hdr.new_histogram(), 0, {}))
    merged.add("w1", worker_part(_histogram([300, 400]), 0, {}))
    assert merged.count == 3 and merged.workers["w1"]["count"] == 3
    again = hdr.decode(merged.to_json()["histogram"])
    assert again.get_total_count() == 3 and again.get_max_value() == merged.histogram.get_max_value()
