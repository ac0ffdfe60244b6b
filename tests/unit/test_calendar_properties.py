"""Business-time laws that must hold for any calendar, start and duration (hypothesis).

Calendars are random weekly windows on a quarter-hour grid (so edges land on DST gaps,
folds and midnights) in zones that change clocks at 02:00, at midnight, by half an hour,
or not at all; starts cluster around clock changes as well as anywhere in 2026.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sla.domain.calendar import AlwaysOpen, WorkingHours

ZONES = ["Europe/Berlin", "America/New_York", "America/Havana", "America/Santiago", "Australia/Lord_Howe",
         "Asia/Kolkata", "UTC",
         # 14 hours ahead of UTC, 11 behind: a UTC date and the local one a day apart
         "Pacific/Kiritimati", "Pacific/Niue"]
# Berlin, New York, Havana, Santiago and Lord Howe clock changes, give or take a day.
CHANGES = [datetime(2026, 3, 29, 1), datetime(2026, 10, 25, 1), datetime(2026, 3, 8, 7), datetime(2026, 11, 1, 6),
           datetime(2026, 3, 8, 5), datetime(2026, 4, 5, 3), datetime(2026, 9, 6, 4), datetime(2026, 4, 4, 15)]
TICK = timedelta(microseconds=1)
LAWS = settings(max_examples=200, deadline=None)


@st.composite
def working_hours(draw: st.DrawFn) -> WorkingHours:
    """Up to three windows a day on a quarter-hour grid (96 is 24:00), and up to 15 holidays."""
    week = {}
    for day in range(7):
        edges = sorted(draw(st.lists(st.integers(0, 96), unique=True, max_size=6)))
        week[day] = tuple((_quarter(a), _quarter(b)) for a, b in zip(edges[::2], edges[1::2]))
    assume(any(week.values()))
    holidays = {date(2025, 12, 1) + timedelta(days=n) for n in draw(st.lists(st.integers(0, 600), max_size=15))}
    return WorkingHours("random", draw(st.sampled_from(ZONES)), week, frozenset(holidays))


def _quarter(n: int) -> time:
    return time(0) if n == 96 else time(n // 4, n % 4 * 15)


ANYWHERE = st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1), timezones=st.just(timezone.utc))
NEAR_A_CHANGE = st.builds(
    lambda change, shift: (change + shift).replace(tzinfo=timezone.utc),
    st.sampled_from(CHANGES),
    st.timedeltas(-timedelta(days=2), timedelta(days=2)),
)
INSTANTS = st.one_of(ANYWHERE, NEAR_A_CHANGE)
DURATIONS = st.timedeltas(timedelta(0), timedelta(hours=300))


@LAWS
@given(working_hours(), INSTANTS, DURATIONS)
def test_measuring_an_added_duration_gives_it_back(calendar, start, business):
    assert calendar.between(start, calendar.add(start, business)) == business


@LAWS
@given(working_hours(), INSTANTS, DURATIONS, DURATIONS)
def test_a_longer_duration_never_ends_earlier(calendar, start, shorter, longer):
    shorter, longer = sorted((shorter, longer))

    assert start <= calendar.add(start, shorter) <= calendar.add(start, longer)


@LAWS
@given(working_hours(), INSTANTS, INSTANTS, INSTANTS)
def test_between_is_additive_in_any_order(calendar, a, b, c):
    assert calendar.between(a, b) + calendar.between(b, c) == calendar.between(a, c)
    assert calendar.between(b, a) == -calendar.between(a, b)


@LAWS
@given(working_hours(), INSTANTS, DURATIONS.filter(bool))
def test_a_deadline_lies_inside_a_window_or_at_its_end(calendar, start, business):
    # given
    deadline = calendar.add(start, business)

    # then: the microsecond before the deadline is working time, and nothing ends earlier
    assert calendar.between(deadline - TICK, deadline) == TICK
    assert calendar.between(start, deadline - TICK) == business - TICK


@LAWS
@given(working_hours(), INSTANTS, DURATIONS, DURATIONS)
def test_adding_in_two_steps_ends_where_adding_once_does(calendar, start, first, second):
    # One long addition skips whole weeks; two shorter ones take other paths to the same end.
    assert calendar.add(calendar.add(start, first), second) == calendar.add(start, first + second)


@LAWS
@given(st.sampled_from(ZONES), INSTANTS, INSTANTS, DURATIONS)
def test_working_every_hour_of_every_day_is_24x7(zone, start, end, business):
    every_day = WorkingHours("all-day", zone, {day: ((time(0), time(0)),) for day in range(7)})
    always = AlwaysOpen()

    assert every_day.between(start, end) == always.between(start, end)
    assert every_day.add(start, business) == always.add(start, business)


@LAWS
@given(working_hours(), INSTANTS, DURATIONS)
def test_the_deadline_keeps_the_zone_of_the_start(calendar, start, business):
    local_start = start.astimezone(ZoneInfo("Europe/Berlin"))

    deadline = calendar.add(local_start, business)

    # Compared in UTC: Python never finds a fold=1 reading equal to an instant in another zone.
    assert deadline.tzinfo is local_start.tzinfo
    assert deadline.astimezone(timezone.utc) == calendar.add(start, business)


# --- working days and openings -------------------------------------------------------------

DAYS = st.integers(0, 12)


@LAWS
@given(working_hours(), INSTANTS)
def test_the_next_opening_adds_no_business_time_and_is_working_time(calendar, instant):
    opening = calendar.open_from(instant)

    assert instant <= opening
    assert calendar.between(instant, opening) == timedelta(0)
    assert calendar.between(opening, opening + TICK) == TICK
    assert calendar.open_from(opening) == opening


@LAWS
@given(working_hours(), INSTANTS, DAYS)
def test_working_days_end_in_working_hours_and_more_days_end_later(calendar, start, days):
    deadline = calendar.add_days(start, days)

    # inside a window, or at one of its edges
    assert calendar.open_from(deadline) == deadline or calendar.between(deadline - TICK, deadline) == TICK
    assert calendar.add_days(start, days + 1) > deadline >= calendar.open_from(start)


def _is_the_change_over(instant: datetime, reading: time) -> bool:
    """Is `instant` (local) the clock change of a spring gap that swallows `reading` on its day?
    (Python places a missing reading an offset's difference after the change.)"""
    local = datetime.combine(instant.date(), reading, tzinfo=instant.tzinfo)
    missing = local.astimezone(timezone.utc).astimezone(instant.tzinfo).time() != reading
    just_before = (instant.astimezone(timezone.utc) - TICK).astimezone(instant.tzinfo)
    return missing and just_before.utcoffset() != instant.utcoffset()


@LAWS
@given(working_hours(), INSTANTS, DAYS)
# Opening at 02:15 on Sundays: the sixth working day is 29 March, whose 02:15 Berlin skips.
@example(WorkingHours("random", "Europe/Berlin", {5: ((time(0), time(0, 15)),), 6: ((time(2, 15), time(3, 15)),)},
                      frozenset()), datetime(2026, 3, 7, 7, tzinfo=timezone.utc), 6)
def test_a_working_day_ends_at_the_same_local_time_or_at_that_days_last_closing(calendar, start, days):
    zone = ZoneInfo(calendar.zone)
    opening = calendar.open_from(start).astimezone(zone)

    deadline = calendar.add_days(start, days).astimezone(zone)

    # the same wall-clock reading (a reading in a spring gap is the change itself), or nothing
    # more is worked that day (a closing at 24:00 is the next day's midnight)
    day = (deadline - TICK).date()
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    same_time = deadline.time() == opening.time() or _is_the_change_over(deadline, opening.time()) or \
        calendar.between(deadline, datetime.combine(deadline.date(), opening.time(), tzinfo=zone)) == timedelta(0)
    assert same_time or calendar.between(deadline, next_midnight) == timedelta(0)
    assert days == 0 or deadline.date() > opening.date()


@LAWS
@given(INSTANTS, DAYS)
def test_working_days_on_every_hour_of_every_day_in_utc_are_24_hours(start, days):
    every_day = WorkingHours("all-day", "UTC", {day: ((time(0), time(0)),) for day in range(7)})

    assert every_day.add_days(start, days) == AlwaysOpen().add_days(start, days) == start + days * timedelta(days=1)
