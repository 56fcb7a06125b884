from harness.load import hdr


def test_values_outside_the_range_are_clamped_not_lost():
    h = hdr.new_histogram()
    hdr.record_us(h, 0.2)
    hdr.record_us(h, 10**9)
    assert h.get_total_count() == 2
    assert h.get_min_value() == 1
    assert h.get_max_value() >= hdr.HIGHEST_US * 0.999


def test_encoded_histograms_merge_to_the_sum_of_their_values():
    a, b = hdr.new_histogram(), hdr.new_histogram()
    for v in range(1, 1001):
        hdr.record_us(a, v)
    for v in range(100_001, 100_101):
        hdr.record_us(b, v)
    merged = hdr.merge_encoded([hdr.encode(a), hdr.encode(b), ""])
    assert merged.get_total_count() == 1100
    stats = hdr.summary_us(merged)
    assert 499 <= stats["p50"] <= 551  # 550th of 1100 values
    assert stats["max"] >= 100_100 * 0.999 and stats["min"] == 1


def test_summary_of_an_empty_histogram_is_zeros():
    assert hdr.summary_us(hdr.new_histogram()) == {"p50": 0, "p90": 0, "p99": 0, "p99_9": 0,
                                                   "max": 0, "min": 0}


def test_a_recorder_gives_the_histogram_record_us_gives_folding_as_often_as_asked():
    values = [0.2, 1, 1.9, 999.5, 1000, 123_456.7, 10**9] + [v * 7.3 for v in range(3000)]
    direct = hdr.new_histogram()
    for v in values:
        hdr.record_us(direct, v)
    for fold_at in (1, 100, 65536):
        recorder = hdr.Recorder(fold_at=fold_at)
        for v in values:
            recorder.record(v)
        assert hdr.encode(recorder.histogram()) == hdr.encode(direct)
        recorder.record(5)  # recording goes on after a read
        assert recorder.histogram().get_total_count() == len(values) + 1
