"""The soak's rules: a steady or warming-up series is bounded, a steadily rising one is not."""

from __future__ import annotations

import pytest

from bench import soakstats
from bench.soak import judge


def _every_30s(values: list[float]) -> list[tuple[float, float]]:
    return [(30.0 * n, value) for n, value in enumerate(values)]


def test_slope_of_a_straight_line_is_its_rise_per_second() -> None:
    assert soakstats.slope([(0, 10), (10, 30), (20, 50)]) == pytest.approx(2.0)


def test_slope_needs_two_distinct_instants() -> None:
    assert soakstats.slope([(5, 1)]) is None
    assert soakstats.slope([(5, 1), (5, 2)]) is None


def test_the_tail_starts_at_the_middle_of_the_time_span() -> None:
    assert soakstats.tail([(0, 1), (10, 2), (20, 3), (30, 4), (40, 5)]) == [(20, 3), (30, 4), (40, 5)]


def test_the_tail_starts_after_the_retention_period_when_that_ends_later() -> None:
    assert soakstats.tail([(0, 1), (10, 2), (20, 3), (30, 4), (40, 5)], settle_s=30) == [(30, 4), (40, 5)]


def test_rss_that_warms_up_then_holds_is_bounded() -> None:
    verdict = soakstats.rss_bounded(_every_30s([80, 120, 150, 160, 161, 160, 162, 161, 161, 162, 161]))
    assert verdict["passed"] is True
    assert (verdict["start"], verdict["end"]) == (80, 161)


def test_rss_that_keeps_rising_through_the_tail_grows() -> None:
    # 0.4 MB every 30 s: 4 MB over the second half of 10 minutes, above 3 % of 100 MB and above the floor.
    verdict = soakstats.rss_bounded(_every_30s([96 + 0.4 * n for n in range(21)]))
    assert verdict["passed"] is False
    assert verdict["figure"] == pytest.approx(4.0)


def test_rss_filling_up_to_its_retention_is_judged_only_after_it() -> None:
    # state fills for 6 minutes (the retention), then holds: rising through the middle, flat after 360 s
    series = _every_30s([100 + 4 * min(n, 12) for n in range(21)])
    assert soakstats.rss_bounded(series)["passed"] is False
    assert soakstats.rss_bounded(series, settle_s=360)["passed"] is True


def test_a_small_process_is_judged_against_the_floor_not_its_fraction() -> None:
    # 2.4 MB over the second half of a 60 MB process: above 3 %, below the 3 MB floor.
    verdict = soakstats.rss_bounded(_every_30s([60, 60, 60, 60, 60, 60.6, 61.2, 61.8, 62.4]))
    assert verdict["figure"] == pytest.approx(2.4)
    assert verdict["passed"] is True


def test_rss_with_too_few_samples_after_the_retention_is_not_judged() -> None:
    assert soakstats.rss_bounded([(0.0, 100.0)])["passed"] is None
    assert soakstats.rss_bounded(_every_30s([100, 101, 102, 103]), settle_s=80)["passed"] is None


@pytest.mark.parametrize(("end", "passed"), [(40, True), (48, True), (49, False), (400, False)])
def test_open_descriptors_may_end_only_a_little_above_the_start(end: int, passed: bool) -> None:
    assert soakstats.fds_bounded(_every_30s([40, 60, 45, end]))["passed"] is passed


@pytest.mark.parametrize(("end", "passed"), [(0, True), (12, True), (13, False)])
def test_lag_must_settle_to_at_most_one_record_per_partition(end: int, passed: bool) -> None:
    assert soakstats.lag_settled(_every_30s([0, 300, 25, end]), partitions=12)["passed"] is passed


@pytest.mark.parametrize(("end", "passed"), [(20.0, True), (65.0, True), (65.1, False)])
def test_the_last_window_p99_may_be_at_most_twice_the_first_plus_the_allowance(end: float, passed: bool) -> None:
    verdict = soakstats.p99_not_worse([(30, 20.0), (60, 90.0), (90, end)], allowance_ms=25.0)
    assert verdict["passed"] is passed
    assert verdict["start"] == 20.0


def test_windows_without_a_p99_are_left_out_of_the_series() -> None:
    verdict = soakstats.p99_not_worse([(30, None), (60, 10.0), (90, None), (120, 12.0)], allowance_ms=0.0)
    assert verdict["series"] == [[60, 10.0], [120, 12.0]]
    assert verdict["passed"] is True


def test_window_p99s_take_the_values_stamped_inside_each_window() -> None:
    stamped = [(1.0, 5.0), (29.9, 7.0), (30.0, 9.0), (45.0, 100.0)] + [(50.0, 1.0)] * 99
    assert soakstats.window_p99s(stamped, [0.0, 30.0, 60.0, 90.0]) == [9.0, 100.0, None]


def _sample(t: float, rss: float, fds: int, lag: int, after_load: bool = False) -> dict:
    sample = {"t": t, "processes": {"sla": {"rss_mb": rss, "fds": fds}},
              "lag": {group: lag for group in ("handoff-legs", "handoff-sla", "handoff-notify")},
              "partitions": {group: 8 for group in ("handoff-legs", "handoff-sla", "handoff-notify")}}
    return {**sample, "after_load": True} if after_load else sample


def test_judge_gives_every_process_group_and_latency_a_verdict() -> None:
    samples = [_sample(0, 100, 40, 0), _sample(30, 110, 42, 30), _sample(60, 111, 41, 20),
               _sample(90, 111, 41, 10), _sample(95, 111, 40, 0, after_load=True)]
    calls = [(10.0, 12.0), (40.0, 14.0), (70.0, 13.0), (92.0, 500.0)]  # the last answered after the load
    metrics = judge(samples, calls, breaches=[(20.0, 300.0), (80.0, 320.0)], retention_s=30)
    assert set(metrics) == {"rss_mb sla", "fds sla", "lag handoff-legs", "lag handoff-sla", "lag handoff-notify",
                            "api_p99_ms", "breach_to_subscriber_p99_ms"}
    assert all(metric["passed"] is True for metric in metrics.values())
    assert (metrics["api_p99_ms"]["start"], metrics["api_p99_ms"]["end"]) == (12.0, 13.0)
    assert metrics["lag handoff-sla"]["end"] == 0


def test_judge_fails_a_group_whose_lag_has_not_come_back() -> None:
    samples = [_sample(0, 100, 40, 0), _sample(30, 100, 40, 500), _sample(40, 100, 40, 400, after_load=True)]
    metrics = judge(samples, [(10.0, 12.0)], breaches=[], retention_s=0)
    assert metrics["lag handoff-notify"]["passed"] is False
    assert metrics["breach_to_subscriber_p99_ms"]["passed"] is None


def test_a_jvm_s_heap_after_collections_and_its_pauses_are_reported() -> None:
    samples = [_sample(30 * n, 520, 200, 0) for n in range(7)]
    for sample, heap, pause in zip(samples[1:], (40, 55, 60, 61, 60, 60), (12.0, 35.5, 9.0, 8.0, 9.5, 10.0)):
        sample["processes"]["sla"].update(heap_after_gc_mb=heap, gc_pause_max_ms=pause)
    metrics = judge(samples, [(10.0, 12.0), (170.0, 13.0)], breaches=[], retention_s=0)
    # both are shown beside the judged RSS, with no verdict of their own
    assert [v for _, v in metrics["heap_after_gc_mb sla"]["series"]] == [40, 55, 60, 61, 60, 60]
    assert metrics["heap_after_gc_mb sla"]["reported"] and metrics["heap_after_gc_mb sla"]["figure"] == 61
    assert metrics["gc_pause_max_ms sla"]["figure"] == 35.5 and metrics["gc_pause_max_ms sla"]["reported"]
    assert metrics["rss_mb sla"]["passed"] is True


def test_a_gc_log_is_read_as_it_grows(tmp_path) -> None:
    from bench.probes import Collection, GcLog

    path = tmp_path / "gc.log"
    path.write_text("[0.002s] Using G1\n"
                    "[0.954s] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 25M->6M(512M) 9.670ms\n"
                    "[2.142s] GC(3) Concurrent Mark Cycle\n")
    log = GcLog(path)
    assert log.new() == [Collection(25, 6, 9.67)]
    # a line still being written waits for its end
    with path.open("a") as out:
        out.write("[2.173s] GC(3) Pause Remark 10M->10M(512M) 12.872ms\n[2.7s] GC(4) Pause Young (Mixed) 30M->")
    assert log.new() == [Collection(10, 10, 12.872)]
    with path.open("a") as out:
        out.write("12M(512M) 14.8ms\n")
    assert log.new() == [Collection(30, 12, 14.8)]
    assert log.new() == []
