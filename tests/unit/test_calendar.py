"""Business time: 24x7 counts every real second; working hours count real time in local windows.

Dates are 2026 unless a test says otherwise. Berlin changes clocks on Sunday 2026-03-29
(02:00 CET -> 03:00 CEST) and Sunday 2026-10-25 (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from sla.domain.calendar import AlwaysOpen, WorkingHours

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR = AlwaysOpen("always")

# Spring change in Berlin: 2025-03-30 02:00 CET -> 03:00 CEST (the day has 23 hours).
# Autumn change: 2025-10-26 03:00 CEST -> 02:00 CET (the day has 25 hours).
SAT_NOON_BEFORE_SPRING = datetime(2025, 3, 29, 12, 0, tzinfo=BERLIN)
SAT_NOON_BEFORE_AUTUMN = datetime(2025, 10, 25, 12, 0, tzinfo=BERLIN)


def real_hours(start: datetime, end: datetime) -> float:
    """Elapsed real time, whatever the zones."""
    return (end.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds() / 3600


def test_24_business_hours_across_the_spring_change_end_24_real_hours_later():
    # when
    end = CALENDAR.add(SAT_NOON_BEFORE_SPRING, timedelta(hours=24))

    # then: 24 real hours, which is 13:00 on the Berlin wall clock (25 wall-clock hours)
    assert real_hours(SAT_NOON_BEFORE_SPRING, end) == 24
    assert end == datetime(2025, 3, 30, 13, 0, tzinfo=BERLIN)


def test_24_business_hours_across_the_autumn_change_end_24_real_hours_later():
    end = CALENDAR.add(SAT_NOON_BEFORE_AUTUMN, timedelta(hours=24))

    assert real_hours(SAT_NOON_BEFORE_AUTUMN, end) == 24
    assert end == datetime(2025, 10, 26, 11, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (SAT_NOON_BEFORE_SPRING, datetime(2025, 3, 30, 12, 0, tzinfo=BERLIN), timedelta(hours=23)),
        (SAT_NOON_BEFORE_AUTUMN, datetime(2025, 10, 26, 12, 0, tzinfo=BERLIN), timedelta(hours=25)),
        (
            datetime(2025, 3, 3, 9, 0, tzinfo=BERLIN),
            datetime(2025, 3, 3, 17, 30, tzinfo=BERLIN),
            timedelta(hours=8, minutes=30),
        ),
    ],
    ids=["noon-to-noon-over-spring", "noon-to-noon-over-autumn", "ordinary-day"],
)
def test_between_counts_real_elapsed_time_in_one_zone(start, end, expected):
    assert CALENDAR.between(start, end) == expected


def test_between_counts_real_elapsed_time_across_zones():
    start = datetime(2025, 3, 29, 11, 0, tzinfo=timezone.utc)
    end = datetime(2025, 3, 30, 13, 0, tzinfo=BERLIN)  # 11:00 UTC

    assert CALENDAR.between(start, end) == timedelta(hours=24)


def test_between_is_negative_when_end_is_earlier():
    start = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)

    assert CALENDAR.between(start, start - timedelta(hours=2)) == timedelta(hours=-2)


@pytest.mark.parametrize("hours", [0, 1, 4, 24, 24 * 7])
def test_add_then_between_gives_back_the_business_time(hours):
    start = SAT_NOON_BEFORE_SPRING

    assert CALENDAR.between(start, CALENDAR.add(start, timedelta(hours=hours))) == timedelta(hours=hours)


# --- working hours -----------------------------------------------------------------------

H = timedelta(hours=1)
SPLIT_DAY = ((time(8), time(12)), (time(13), time(17)))
# Good Friday, Easter Monday and New Year's Day, as the policy file would list them.
HOLIDAYS = frozenset({date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6)})
OFFICE = WorkingHours("office", "Europe/Berlin", {day: SPLIT_DAY for day in range(5)}, HOLIDAYS)
DAILY = WorkingHours("daily", "Europe/Berlin", {day: ((time(8), time(17)),) for day in range(7)})


def berlin(*args: int) -> datetime:
    """A Berlin wall-clock instant, e.g. berlin(2026, 3, 2, 9, 30)."""
    return datetime(*args, tzinfo=BERLIN)


def sundays(*windows: tuple[time, time]) -> WorkingHours:
    """A Berlin calendar open only on Sundays, in the given windows."""
    return WorkingHours("sundays", "Europe/Berlin", {6: windows})


@pytest.mark.parametrize(
    "start, business, deadline",
    [
        (berlin(2026, 3, 2, 9), 2 * H, berlin(2026, 3, 2, 11)),
        (berlin(2026, 3, 2, 6), 1 * H, berlin(2026, 3, 2, 9)),
        (berlin(2026, 3, 2, 10), 3 * H, berlin(2026, 3, 2, 14)),
        (berlin(2026, 3, 2, 12, 30), 1 * H, berlin(2026, 3, 2, 14)),
        (berlin(2026, 3, 2, 8), 4 * H, berlin(2026, 3, 2, 12)),
        (berlin(2026, 3, 2, 8), 8 * H, berlin(2026, 3, 2, 17)),
        (berlin(2026, 3, 2, 18), 1 * H, berlin(2026, 3, 3, 9)),
        (berlin(2026, 3, 6, 16), 2 * H, berlin(2026, 3, 9, 9)),
        (berlin(2026, 3, 7, 10), timedelta(minutes=30), berlin(2026, 3, 9, 8, 30)),
        (berlin(2026, 4, 2, 16), 2 * H, berlin(2026, 4, 7, 9)),
        (berlin(2026, 4, 3, 10), 1 * H, berlin(2026, 4, 7, 9)),
        (berlin(2025, 12, 31, 16), 2 * H, berlin(2026, 1, 2, 9)),
        (berlin(2026, 3, 7, 10), timedelta(0), berlin(2026, 3, 7, 10)),
        (berlin(2026, 3, 2, 8), 30 * 8 * H, berlin(2026, 4, 14, 17)),
        (datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc), 1 * H, berlin(2026, 3, 2, 9)),
    ],
    ids=[
        "inside-a-window",
        "before-opening-starts-at-opening",
        "across-the-lunch-gap",
        "in-the-lunch-gap-starts-after-lunch",
        "ends-at-the-window-end-not-after-lunch",
        "a-whole-day",
        "after-closing-starts-next-morning",
        "friday-evening-lands-monday",
        "saturday-start-lands-monday",
        "skips-good-friday-weekend-and-easter-monday",
        "start-on-a-holiday",
        "year-end-skips-new-years-day",
        "zero-returns-the-start",
        "thirty-days-across-dst-and-easter",
        "start-given-in-utc",
    ],
)
def test_deadline_on_office_hours_skips_closed_time(start, business, deadline):
    assert OFFICE.add(start, business) == deadline


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 11), 2 * H),
        (berlin(2026, 3, 2, 11), berlin(2026, 3, 2, 14), 2 * H),
        (berlin(2026, 3, 2, 12, 15), berlin(2026, 3, 2, 12, 45), timedelta(0)),
        (berlin(2026, 3, 6, 16), berlin(2026, 3, 9, 9), 2 * H),
        (berlin(2026, 3, 7), berlin(2026, 3, 8, 23, 59), timedelta(0)),
        (berlin(2026, 3, 2), berlin(2026, 3, 9), 40 * H),
        (berlin(2026, 3, 30), berlin(2026, 4, 13), 64 * H),
        (berlin(2025, 12, 31, 16), berlin(2026, 1, 2, 9), 2 * H),
        (berlin(2026, 1, 5), berlin(2027, 1, 4), 52 * 40 * H - 2 * 8 * H),
        (berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 9), timedelta(0)),
        (berlin(2026, 3, 2, 11), berlin(2026, 3, 2, 9), -2 * H),
        (berlin(2026, 3, 9, 9), berlin(2026, 3, 6, 16), -2 * H),
    ],
    ids=[
        "inside-a-window",
        "across-lunch-counts-only-the-windows",
        "inside-the-lunch-gap",
        "over-a-weekend",
        "a-weekend-alone",
        "a-whole-week",
        "easter-fortnight-loses-two-days",
        "over-new-year",
        "a-year-of-weeks-minus-easter",
        "empty-span",
        "end-earlier-is-negative",
        "end-earlier-over-a-weekend-is-negative",
    ],
)
def test_between_counts_only_working_time_on_office_hours(start, end, expected):
    assert OFFICE.between(start, end) == expected


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 22)],
                         ids=["spring-change", "autumn-change", "ordinary-sunday"])
def test_an_0800_1700_day_is_nine_real_hours_even_when_the_clocks_change(day):
    # given
    opening = datetime.combine(day, time(8), tzinfo=BERLIN)

    # when
    closing = DAILY.add(opening, 9 * H)

    # then
    assert closing == datetime.combine(day, time(17), tzinfo=BERLIN)
    assert real_hours(opening, closing) == 9
    assert DAILY.between(opening - 8 * H, opening + 15 * H) == 9 * H


@pytest.mark.parametrize(
    "start, business, deadline",
    [
        (berlin(2026, 3, 28, 16), 2 * H, berlin(2026, 3, 29, 9)),
        (berlin(2026, 10, 24, 16), 2 * H, berlin(2026, 10, 25, 9)),
        (berlin(2026, 3, 28, 8), 3 * 9 * H, berlin(2026, 3, 30, 17)),
        (berlin(2026, 10, 24, 8), 3 * 9 * H, berlin(2026, 10, 26, 17)),
    ],
    ids=["overnight-into-spring", "overnight-into-autumn", "three-days-over-spring", "three-days-over-autumn"],
)
def test_deadlines_across_a_dst_change_keep_wall_clock_windows(start, business, deadline):
    assert DAILY.add(start, business) == deadline


def test_a_24x7_working_week_across_the_spring_change_counts_real_hours():
    # given: every day 00:00-24:00, which is 24x7 in Berlin
    always = WorkingHours("all-day", "Europe/Berlin", {day: ((time(0), time(0)),) for day in range(7)})
    saturday_noon = berlin(2026, 3, 28, 12)

    # then: like AlwaysOpen, 24 business hours are 24 real hours (13:00 on the wall clock)
    assert always.add(saturday_noon, 24 * H) == berlin(2026, 3, 29, 13)
    assert always.between(saturday_noon, berlin(2026, 3, 29, 12)) == 23 * H
    assert always.between(berlin(2026, 10, 24, 12), berlin(2026, 10, 25, 12)) == 25 * H


# The DST rule: a reading in the spring gap means the instant of the change (03:00 CEST);
# a reading in the autumn fold means its first occurrence (CEST).
@pytest.mark.parametrize(
    "windows, day, expected",
    [
        ((time(2, 15), time(2, 45)), date(2026, 3, 29), timedelta(0)),
        ((time(2, 15), time(2, 45)), date(2026, 3, 22), timedelta(minutes=30)),
        ((time(1), time(4)), date(2026, 3, 29), 2 * H),
        ((time(1), time(4)), date(2026, 10, 25), 4 * H),
        ((time(1), time(4)), date(2026, 3, 22), 3 * H),
        ((time(2, 30), time(5)), date(2026, 3, 29), 2 * H),
        ((time(0), time(2, 30)), date(2026, 3, 29), 2 * H),
        ((time(0), time(2, 30)), date(2026, 10, 25), 2.5 * H),
        ((time(2, 30), time(3, 30)), date(2026, 10, 25), 2 * H),
        ((time(2), time(3)), date(2026, 10, 25), 2 * H),
    ],
    ids=[
        "inside-the-gap-is-empty",
        "same-window-on-an-ordinary-sunday",
        "spanning-spring-is-an-hour-shorter",
        "spanning-autumn-is-an-hour-longer",
        "spanning-nothing-on-an-ordinary-sunday",
        "starting-in-the-gap-starts-at-0300-cest",
        "ending-in-the-gap-ends-at-0300-cest",
        "ending-in-the-fold-ends-at-its-first-occurrence",
        "starting-in-the-fold-starts-at-its-first-occurrence",
        "the-whole-fold-counts-both-passes",
    ],
)
def test_window_edges_in_a_dst_gap_or_fold_follow_the_documented_rule(windows, day, expected):
    calendar = sundays(windows)
    midnight = datetime.combine(day, time(0), tzinfo=BERLIN)

    assert calendar.between(midnight, midnight + timedelta(days=1)) == expected
    assert calendar.between(midnight, calendar.add(midnight, expected)) == expected


def test_a_window_starting_in_the_spring_gap_opens_at_the_change():
    calendar = sundays((time(2, 30), time(5)))

    assert calendar.add(berlin(2026, 3, 29), 1 * H) == berlin(2026, 3, 29, 4)


def test_split_windows_that_meet_an_end_of_2400_run_into_the_next_day():
    # given: Friday 22:00-24:00 and Saturday 00:00-02:00 form one night shift
    night = WorkingHours("night", "Europe/Berlin", {4: ((time(22), time(0)),), 5: ((time(0), time(2)),)})

    assert night.add(berlin(2026, 3, 6, 23), 2 * H) == berlin(2026, 3, 7, 1)
    assert night.between(berlin(2026, 3, 6), berlin(2026, 3, 8)) == 4 * H


def test_a_long_deadline_equals_a_chain_of_one_day_deadlines():
    # Long additions skip whole weeks arithmetically; day-sized steps never do.
    start, day = berlin(2026, 1, 1, 10), 8 * H
    chained = start
    for _ in range(300):
        chained = OFFICE.add(chained, day)

    assert OFFICE.add(start, 300 * day) == chained
    assert OFFICE.between(start, chained) == 300 * day


def test_holidays_close_the_whole_local_day():
    # given: Mondays 09:00-17:00 in New York, closed on Monday 2026-03-02
    new_york = ZoneInfo("America/New_York")
    calendar = WorkingHours("x", "America/New_York", {0: ((time(9), time(17)),)}, frozenset({date(2026, 3, 2)}))

    # then: nothing counts that Monday, and work resumes the next (after the US change to EDT)
    assert calendar.between(datetime(2026, 3, 2, tzinfo=new_york), datetime(2026, 3, 3, tzinfo=new_york)) == 0 * H
    assert calendar.add(datetime(2026, 3, 2, 14, tzinfo=timezone.utc), H) == datetime(2026, 3, 9, 10, tzinfo=new_york)


@pytest.mark.parametrize(
    "zone, week, reason",
    [
        ("Europe/Berlim", {0: SPLIT_DAY}, "unknown time zone 'Europe/Berlim'"),
        ("Europe/Berlin", {}, "has no working hours"),
        ("Europe/Berlin", {0: ()}, "has no working hours"),
        ("Europe/Berlin", {0: ((time(8), time(12)), (time(11), time(17)))},
         "Monday: windows 08:00-12:00 and 11:00-17:00 overlap"),
        ("Europe/Berlin", {2: ((time(22), time(2)),)}, "Wednesday: window 22:00-02:00 must end after it starts"),
        ("Europe/Berlin", {0: ((time(8), time(8)),)}, "must end after it starts"),
        ("Europe/Berlin", {0: ((time(8), time(0)), (time(23), time(23, 30)))}, "overlap"),
        ("Europe/Berlin", {7: SPLIT_DAY}, "weekday 7"),
        ("Europe/Berlin", {0: ((time(8),),)}, "a pair of naive times"),
    ],
    ids=["unknown-zone", "no-days", "only-empty-days", "overlap", "crosses-midnight", "empty-window",
         "after-an-end-of-2400", "bad-weekday", "not-a-pair"],
)
def test_a_calendar_without_sound_hours_is_refused_at_construction(zone, week, reason):
    with pytest.raises(ValueError) as raised:
        WorkingHours("office", zone, week)

    assert reason in str(raised.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: OFFICE.add(datetime(2026, 3, 2, 9), H),
        lambda: OFFICE.between(datetime(2026, 3, 2, 9), berlin(2026, 3, 2, 10)),
        lambda: OFFICE.add(berlin(2026, 3, 2, 9), -H),
    ],
    ids=["naive-start", "naive-between", "negative-business"],
)
def test_naive_instants_and_negative_durations_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_windows_are_kept_sorted_so_equal_calendars_compare_equal():
    shuffled = WorkingHours("office", "Europe/Berlin", {0: tuple(reversed(SPLIT_DAY))})

    assert shuffled == WorkingHours("office", "Europe/Berlin", {0: SPLIT_DAY})
    assert shuffled.week[0] == SPLIT_DAY
    assert hash(shuffled) == hash(WorkingHours("office", "Europe/Berlin", {0: SPLIT_DAY}))


def test_spans_measure_the_same_before_and_after_an_earlier_day_renumbers_the_index():
    # given a calendar that has measured spans in the autumn (and remembers what it counted)
    calendar = WorkingHours("office", "Europe/Berlin", {day: SPLIT_DAY for day in range(5)}, HOLIDAYS)
    start, end = datetime(2026, 10, 20, 9, 30, tzinfo=BERLIN), datetime(2026, 10, 27, 16, 0, tzinfo=BERLIN)
    before = (calendar.between(start, end), calendar.add(start, timedelta(hours=20)), calendar.open_from(end))
    # when a span three years earlier is measured, which indexes the calendar from further back
    assert calendar.between(datetime(2023, 10, 20, 9, tzinfo=BERLIN), start) > timedelta(0)
    # then the autumn spans measure as before, and as a calendar that never counted them does
    fresh = WorkingHours("office", "Europe/Berlin", {day: SPLIT_DAY for day in range(5)}, HOLIDAYS)
    for each in (calendar, fresh):
        assert (each.between(start, end), each.add(start, timedelta(hours=20)), each.open_from(end)) == before
