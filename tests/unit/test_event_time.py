"""Event time: a watermark per partition, `now()` the slowest owned one; SLA_CLOCK picks the clock."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.clock import EPOCH, EventTime, WallClock, epoch_us, from_epoch_us
from common.settings import SettingsError
from sla.entrypoints.main import clock_setting
from tests.unit.conftest import T0

MIN = timedelta(minutes=1)


def event_time(owned: set[int], marks: dict[int, object] | None = None) -> EventTime:
    clock = EventTime()
    clock.own(frozenset(owned))
    for partition, instant in (marks or {}).items():
        clock.advance(partition, instant)
    return clock


@pytest.mark.parametrize(
    "arrivals, mark",
    [
        ([T0], T0),
        ([T0, T0 + MIN], T0 + MIN),
        ([T0 + MIN, T0], T0 + MIN),
        ([T0 + 5 * MIN, T0 + MIN, T0 + 3 * MIN], T0 + 5 * MIN),
        ([T0, T0], T0),
    ],
    ids=["one", "forward", "late-arrival", "out-of-order", "same-instant"],
)
def test_a_partitions_watermark_is_the_latest_instant_seen_and_never_goes_back(arrivals, mark):
    # given a clock that owns partition 0
    clock = event_time({0})

    # when instants arrive on it in this order
    returned = [clock.advance(0, instant) for instant in arrivals]

    # then its watermark is the latest of them, and every advance reported the watermark so far
    assert clock.mark(0) == mark
    assert returned == [max(arrivals[: i + 1]) for i in range(len(arrivals))]


def test_a_partition_nothing_arrived_on_has_its_watermark_at_the_epoch():
    clock = event_time({0, 1}, {0: T0})

    assert clock.mark(1) == EPOCH
    assert clock.mark(0) == T0


def test_advancing_one_partition_leaves_the_others_where_they_were():
    # given two partitions with their own watermarks
    clock = event_time({0, 1}, {0: T0, 1: T0 + MIN})

    # when one moves on
    clock.advance(0, T0 + 10 * MIN)

    # then the other has not
    assert (clock.mark(0), clock.mark(1)) == (T0 + 10 * MIN, T0 + MIN)


@pytest.mark.parametrize(
    "owned, marks, now",
    [
        ({0}, {0: T0}, T0),
        ({0, 1}, {0: T0 + MIN, 1: T0}, T0),
        ({0, 1, 2}, {0: T0 + 2 * MIN, 1: T0 + 3 * MIN, 2: T0 + MIN}, T0 + MIN),
        # a partition this worker does not own does not hold it back
        ({0, 1}, {0: T0 + 2 * MIN, 1: T0 + 3 * MIN, 2: T0}, T0 + 2 * MIN),
    ],
    ids=["one-partition", "two", "three", "unowned-slower-partition-ignored"],
)
def test_now_is_the_earliest_watermark_of_the_owned_partitions(owned, marks, now):
    assert event_time(owned, marks).now() == now


@pytest.mark.parametrize(
    "owned, marks",
    [
        (set(), {}),
        (set(), {0: T0}),
        ({0}, {}),
        ({0, 1}, {0: T0 + MIN}),
        ({0, 1, 2, 3}, {0: T0, 1: T0, 2: T0}),
    ],
    ids=["owns-nothing", "owns-nothing-though-events-arrived", "nothing-arrived", "one-of-two-silent",
         "one-of-four-silent"],
)
def test_now_stays_at_the_epoch_until_every_owned_partition_has_reported(owned, marks):
    assert event_time(owned, marks).now() == EPOCH


def test_now_follows_once_the_last_silent_partition_reports():
    # given one owned partition still silent
    clock = event_time({0, 1}, {0: T0 + MIN})
    assert clock.now() == EPOCH

    # when it reports
    clock.advance(1, T0)

    # then now is the slower of the two
    assert clock.now() == T0


def test_owning_other_partitions_changes_what_now_follows():
    # given partitions 0..2 with watermarks, and a worker that owns 0 and 1
    clock = event_time({0, 1}, {0: T0, 1: T0 + MIN, 2: T0 + 5 * MIN})
    assert clock.now() == T0

    # when an assignment gives it 1 and 2 instead
    clock.own(frozenset({1, 2}))

    # then now follows those two, and partition 0's watermark is kept for a later assignment
    assert clock.now() == T0 + MIN
    clock.own(frozenset({2}))
    assert clock.now() == T0 + 5 * MIN
    assert clock.mark(0) == T0


def test_owning_a_partition_that_never_reported_sends_now_back_to_the_epoch():
    clock = event_time({0}, {0: T0})

    clock.own(frozenset({0, 3}))

    assert clock.now() == EPOCH


@pytest.mark.parametrize("value, kind", [("wall", WallClock), ("event", EventTime)])
def test_sla_clock_setting_names_the_clock(value, kind):
    assert type(clock_setting(value)) is kind


def test_each_event_time_setting_is_a_fresh_clock_of_its_own():
    first, second = clock_setting("event"), clock_setting("event")
    first.own(frozenset({0}))
    first.advance(0, T0)

    assert first.now() == T0
    assert second.now() == EPOCH


@pytest.mark.parametrize("value", ["", "Event", "events", "simulated", " wall"])
def test_an_unknown_sla_clock_setting_is_refused_naming_the_variable_and_the_choices(value):
    with pytest.raises(SettingsError) as raised:
        clock_setting(value)

    message = str(raised.value)
    assert message.startswith(f"SLA_CLOCK={value!r}")
    assert "wall" in message and "event" in message


@given(st.integers(min_value=-62_000_000_000_000_000, max_value=250_000_000_000_000_000),
       st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_epoch_microseconds_are_exact_in_any_offset(us, offset_minutes):
    # given an instant, read in UTC and at some fixed offset
    instant = from_epoch_us(us)
    zone = timezone(timedelta(minutes=offset_minutes))

    # then both count the same microseconds since the epoch, the inverse of from_epoch_us
    assert epoch_us(instant) == us
    earliest, latest = (edge.replace(tzinfo=timezone.utc) for edge in (instant.min, instant.max))
    if earliest + timedelta(days=1) < instant < latest - timedelta(days=1):  # readable at any offset
        assert epoch_us(instant.astimezone(zone)) == us
