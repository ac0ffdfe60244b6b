"""Business time: how much of a span counts against an SLA target, and when a target ends.

Business time is real elapsed time that falls inside working windows. A 24x7 calendar
counts all of it, so 24 business hours across a spring DST change end 24 real hours
later. A working-hours calendar counts the real time inside its weekly wall-clock windows
in its IANA zone, except on holidays, so an 08:00-17:00 day is nine real hours even on the
day the clocks change. Instants are compared in UTC, where subtraction is real time.

Business time elapses between instants; an instant outside working hours adds none. So a
target reached at closing time is not exceeded until the next opening (`open_from`), and
a target of working days (`add_days`) ends at the same local time that many working days
on, or at that day's last closing when the time falls outside its windows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Window = tuple[time, time]
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MIDNIGHT = time(0)
UTC = timezone.utc
_ZERO = timedelta(0)
_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
_REINDEX_MARGIN = timedelta(days=400)
# How far ahead `open_from` looks for an opening before it calls the calendar closed for good.
_SEARCH_DAYS = 3660
_WORKED_KEPT = 20_000


@dataclass(frozen=True)
class Holidays:
    """The local dates a calendar is closed: listed `dates`, and a `rule` for every year.

    `rule` names the rule (a country's public holidays, e.g. "DE" or "DE-BY") and is what
    identifies it; `observes` answers it for any date, past or future, so holidays hold for
    every year a history reaches.
    """

    dates: frozenset[date] = frozenset()
    rule: str = ""
    observes: Callable[[date], bool] | None = field(default=None, compare=False, repr=False)

    def __contains__(self, day: object) -> bool:
        return day in self.dates or (self.observes is not None and isinstance(day, date) and self.observes(day))


@dataclass(frozen=True)
class AlwaysOpen:
    """A 24x7 calendar: every real second is business time."""

    name: str = "24x7"

    def add(self, start: datetime, business: timedelta) -> datetime:
        """The instant at which `business` time has passed since `start`."""
        if start.tzinfo is UTC:  # every instant off the wire: already real time
            return start + business
        # Aware datetimes in one zone subtract as wall-clock time; UTC makes it real time.
        return (start.astimezone(UTC) + business).astimezone(start.tzinfo)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end` (negative when `end` is earlier)."""
        if start.tzinfo is UTC and end.tzinfo is UTC:
            return end - start
        return end.astimezone(UTC) - start.astimezone(UTC)

    def open_from(self, instant: datetime) -> datetime:
        """Every instant is open: `instant`."""
        return instant

    def add_days(self, start: datetime, days: int) -> datetime:
        """`days` days of 24 hours after `start`."""
        return self.add(start, days * _DAY)


@dataclass(frozen=True)
class WorkingHours:
    """Weekly wall-clock windows in an IANA zone, closed on `holidays` (local dates).

    `week` maps a weekday (0 = Monday) to its windows, e.g. ((08:00, 12:00), (13:00,
    17:00)). A window ends on the day it starts; an end of 00:00 means midnight at the end
    of the day (24:00). Windows of a day may touch but not overlap.

    DST rule: a window's boundaries are wall-clock readings turned into instants. A reading
    that occurs twice (autumn) means its first occurrence (fold=0); a reading that does not
    exist (spring gap) means the instant of the change, the first reading after the gap.
    A window then runs in real time from its start instant to its end instant: it is its
    nominal length unless the change falls inside it (an hour shorter across a spring
    change, longer across an autumn one), and it is empty if it lies wholly in the gap.
    Local time maps to instants in order under this rule, so windows never overlap.
    """

    name: str
    zone: str
    week: dict[int, tuple[Window, ...]] = field(hash=False)
    holidays: Holidays | frozenset[date] = Holidays()
    # Caches set up in __post_init__ and kept by the lookups below; not part of the calendar's value.
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _windows_of: dict[date, tuple[tuple[datetime, datetime], ...]] = field(init=False, repr=False, compare=False)
    _midnight_of: dict[date, datetime] = field(init=False, repr=False, compare=False)
    _first_day: date = field(init=False, repr=False, compare=False)
    _totals: list[timedelta] = field(init=False, repr=False, compare=False)
    _worked: dict[datetime, timedelta] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {self.zone!r}") from None
        week = {day: day_windows(day, windows) for day, windows in self.week.items()}
        if not any(_length(w) for windows in week.values() for w in windows):
            raise ValueError(f"calendar {self.name!r} has no working hours")
        object.__setattr__(self, "week", week)
        if not isinstance(self.holidays, Holidays):
            object.__setattr__(self, "holidays", Holidays(frozenset(self.holidays)))
        object.__setattr__(self, "_tz", tz)
        # Deadlines of many legs fall on the same days, and converting a day is the costly
        # step: each day is converted once per calendar. (Per-instance dicts: a method
        # cache would hash the whole calendar on every lookup.)
        object.__setattr__(self, "_windows_of", {})
        object.__setattr__(self, "_midnight_of", {})
        # Running totals of working time at each midnight from `_first_day` on, so a span's
        # business time is a difference of two totals, not a walk over its days (none yet:
        # every day is before date.max, so the first one asked for sets the index).
        object.__setattr__(self, "_first_day", date.max)
        object.__setattr__(self, "_totals", [_ZERO])
        # Working time up to recent instants: a leg's clocks ask about the same few instants
        # (start, deadline, pause) again and again. Measured from `_first_day`, so emptied
        # when the index is renumbered; bounded: emptied when full.
        object.__setattr__(self, "_worked", {})

    def add(self, start: datetime, business: timedelta) -> datetime:
        """The first instant by which `business` working time has passed since `start`."""
        _require_aware(start)
        if business < _ZERO:
            raise ValueError(f"cannot add negative business time {business}")
        if not business:
            return start
        target = self._worked_until(start) + business
        totals = self._totals
        while totals[-1] < target:
            self._total_at(self._first_day + timedelta(days=len(totals)))
        # The first day whose end reaches the target; the target falls in its windows.
        index = bisect_left(totals, target)
        remaining = target - totals[index - 1]
        for begin, end in self._windows_on(self._first_day + timedelta(days=index - 1)):
            if end - begin >= remaining:
                return (begin + remaining).astimezone(start.tzinfo)
            remaining -= end - begin
        raise AssertionError("running totals and day windows disagree")  # unreachable

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in [start, end); negative (the same amount) when `end` is earlier."""
        _require_aware(start)
        _require_aware(end)
        if end < start:
            return -self.between(end, start)
        # The earlier instant first: indexing further back (which renumbers the totals)
        # can only happen then, never between the two readings.
        worked_before = self._worked_until(start)
        return self._worked_until(end) - worked_before

    def open_from(self, instant: datetime) -> datetime:
        """The first instant at or after `instant` inside a window: itself in working hours,
        else the next opening (a window's end is outside it)."""
        _require_aware(instant)
        at = instant.astimezone(UTC)
        day = self._local_day(at) - _DAY
        for _ in range(_SEARCH_DAYS):
            for begin, end in self._windows_on(day):
                if end > at:
                    return max(begin, at).astimezone(instant.tzinfo)
            day += _DAY
        raise ValueError(f"calendar {self.name!r} has no working hours after {instant.isoformat()}")

    def add_days(self, start: datetime, days: int) -> datetime:
        """`days` working days after `start`: the same local time that many working days on,
        counted from the next opening when `start` is outside working hours; that day's last
        closing when the time falls outside its windows."""
        opened = self.open_from(start)
        local = opened.astimezone(self._tz)
        day = local.date()
        for _ in range(days):
            day += _DAY
            while not self._windows_on(day):
                day += _DAY
        windows = self._windows_on(day)
        instant = self._instant(day, local.time())
        if not any(begin <= instant <= end for begin, end in windows):
            instant = windows[-1][1]
        return instant.astimezone(start.tzinfo)

    def _worked_until(self, at: datetime) -> timedelta:
        """Working time from the first indexed midnight to `at`."""
        at = at.astimezone(UTC)
        worked = self._worked
        total = worked.get(at)
        if total is None:
            if len(worked) >= _WORKED_KEPT:
                worked.clear()
            # Counted first: counting may renumber the index, which empties `worked`.
            total = worked[at] = self._count_worked(at)
        return total

    def _count_worked(self, at: datetime) -> timedelta:
        day = self._local_day(at)
        total = self._total_at(day - _DAY)
        # A day's windows lie between its midnights; the day before is counted too (its
        # total is the one at its own midnight).
        for each in (day - _DAY, day):
            for begin, finish in self._windows_on(each):
                total += max(min(finish, at) - begin, _ZERO)
        return total

    def _local_day(self, at: datetime) -> date:
        """The local day whose midnights enclose the UTC instant `at` (midnights as the DST
        rule places them): its UTC date, or the day before or after. Cheaper than converting
        `at` to the zone, as each midnight is converted once."""
        day = at.date()
        if at < self._midnight(day):
            return day - _DAY
        following = day + _DAY
        return following if at >= self._midnight(following) else day

    def _total_at(self, day: date) -> timedelta:
        """Working time from the first indexed midnight to `day`'s midnight."""
        if day < self._first_day:
            # Index from well before the earliest day asked for; re-indexing is rare.
            object.__setattr__(self, "_first_day", day - _REINDEX_MARGIN)
            object.__setattr__(self, "_totals", [_ZERO])
            self._worked.clear()
        totals, index = self._totals, (day - self._first_day).days
        while len(totals) <= index:
            previous = self._first_day + timedelta(days=len(totals) - 1)
            totals.append(totals[-1] + sum((b - a for a, b in self._windows_on(previous)), _ZERO))
        return totals[index]

    def _windows_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's working windows as UTC instants; none on a holiday."""
        windows = self._windows_of.get(day)
        if windows is None:
            windows = self._windows_of[day] = self._day_windows(day)
        return windows

    def _day_windows(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if day in self.holidays:
            return ()
        windows = []
        for begin, end in self.week.get(day.weekday(), ()):
            first = self._instant(day, begin)
            last = self._midnight(day + _DAY) if end == MIDNIGHT else self._instant(day, end)
            if first < last:
                windows.append((first, last))
        return tuple(windows)

    def _midnight(self, day: date) -> datetime:
        midnight = self._midnight_of.get(day)
        if midnight is None:
            midnight = self._midnight_of[day] = self._instant(day, MIDNIGHT)
        return midnight

    def _instant(self, day: date, reading: time) -> datetime:
        """The UTC instant of a wall-clock reading on a local day, by the DST rule above."""
        local = datetime.combine(day, reading, tzinfo=self._tz)
        instant = local.astimezone(UTC)
        if instant.astimezone(self._tz).replace(tzinfo=None) == local.replace(tzinfo=None):
            return instant
        # A reading in a spring gap: fold=1 lands before the change and fold=0 after it.
        return _change_between(self._tz, local.replace(fold=1).astimezone(UTC), instant)


Calendar = AlwaysOpen | WorkingHours


def _change_between(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant with `after`'s UTC offset, given `before` still has the old one."""
    offset = after.astimezone(tz).utcoffset()
    while after - before > _TICK:
        middle = before + (after - before) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return after


def _length(window: Window) -> timedelta:
    begin, end = window
    return _since_midnight(end, is_end=True) - _since_midnight(begin)


def _since_midnight(reading: time, is_end: bool = False) -> timedelta:
    if is_end and reading == MIDNIGHT:
        return _DAY
    return timedelta(hours=reading.hour, minutes=reading.minute, seconds=reading.second,
                     microseconds=reading.microsecond)


def day_windows(day: object, windows: Iterable[object]) -> tuple[Window, ...]:
    """A weekday's windows, sorted; ValueError naming the day if one is malformed or two overlap.
    Both are taken as what a caller may give: the checks are what refuses anything else."""
    if not isinstance(day, int) or not 0 <= day <= 6:
        raise ValueError(f"weekday {day!r} is not 0 (Monday) to 6 (Sunday)")
    checked: list[Window] = []
    for window in windows:
        if not (isinstance(window, tuple) and len(window) == 2
                and all(isinstance(t, time) and t.tzinfo is None for t in window)):
            raise ValueError(f"{DAY_NAMES[day]}: a window is a pair of naive times, not {window!r}")
        checked.append((window[0], window[1]))
    ordered = tuple(sorted(checked))
    for begin, end in ordered:
        if _length((begin, end)) <= _ZERO:
            raise ValueError(f"{DAY_NAMES[day]}: window {_text((begin, end))} must end after it starts "
                             "and may not cross midnight")
    for earlier, later in zip(ordered, ordered[1:]):
        if _since_midnight(earlier[1], is_end=True) > _since_midnight(later[0]):
            raise ValueError(f"{DAY_NAMES[day]}: windows {_text(earlier)} and {_text(later)} overlap")
    return ordered


def _text(window: Window) -> str:
    begin, end = window
    return f"{begin:%H:%M}-{'24:00' if end == MIDNIGHT else f'{end:%H:%M}'}"


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is UTC:  # every instant off the wire
        return
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no time zone; business time needs an aware instant")
