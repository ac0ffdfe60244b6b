"""The calendars section of config/sla-policies.yaml: time zones, working windows, holidays.

Errors carry the path of keys below the calendar to the culprit, which the policy file
turns into a line number.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

from sla.domain.calendar import MIDNIGHT, AlwaysOpen, Calendar, Holidays, Window, WorkingHours, day_windows

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
_ALL_DAY = ((MIDNIGHT, MIDNIGHT),)


class InvalidEntry(ValueError):
    """A bad entry; `where` is the path of keys (and list indexes) below it to the culprit."""

    def __init__(self, reason: str, *where: str | int) -> None:
        super().__init__(reason)
        self.where = where


def read_calendar(name: str, spec: Any) -> Calendar:
    if not isinstance(spec, dict):
        raise InvalidEntry(f"calendar {name!r} must be a mapping such as {{hours: 24x7}}")
    fields = {key: value for key, value in spec.items() if key != "__line__"}
    unknown = sorted(set(fields) - {"timezone", "hours", "holidays"}, key=str)
    if unknown:
        raise InvalidEntry(f"calendar {name!r}: unknown keys {unknown}", unknown[0])
    if fields == {"hours": "24x7"}:
        return AlwaysOpen(name)
    if "timezone" not in fields:
        raise InvalidEntry(f"calendar {name!r} needs a timezone such as Europe/Berlin (or only hours: 24x7)")
    zone = _zone(fields["timezone"])
    week = {day: _ALL_DAY for day in range(7)} if fields.get("hours") == "24x7" else _week(fields.get("hours"))
    if not any(week.values()):
        raise InvalidEntry(f"calendar {name!r} has no working hours", "hours")
    return WorkingHours(name, zone, week, _holidays(fields.get("holidays")))


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidEntry(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin", "timezone") from None
    return str(value)


def _week(hours: Any) -> dict[int, tuple[Window, ...]]:
    if not isinstance(hours, dict):
        raise InvalidEntry(f"hours must be 24x7 or days with windows such as {{mon-fri: ['08:00-17:00']}}, "
                       f"not {hours!r}", "hours")
    week: dict[int, tuple[Window, ...]] = {}
    for key, windows in hours.items():
        if key == "__line__":
            continue
        texts = [windows] if isinstance(windows, str) else windows
        if not isinstance(texts, list):
            raise InvalidEntry(f"{key}: windows must be a list such as ['08:00-12:00', '13:00-17:00']", "hours", key)
        parsed = [_window(text, key, index) for index, text in enumerate(texts)]
        for day in _days(key):
            if day in week:
                raise InvalidEntry(f"{key}: {_DAYS[day]} already has hours from another entry", "hours", key)
            try:
                week[day] = day_windows(day, parsed)
            except ValueError as error:
                raise InvalidEntry(f"{key}: {error}", "hours", key) from None
    return week


def _days(key: Any) -> list[int]:
    """'mon' -> [0]; 'mon-fri' -> [0..4]; 'mon-wed,sat' -> [0, 1, 2, 5]."""
    days: list[int] = []
    for part in str(key).lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise InvalidEntry(f"unknown day {key!r}; use {', '.join(_DAYS)} or a range such as mon-fri", "hours", key)
        begin, end = _DAYS.index(first), _DAYS.index(last or first)
        if end < begin:
            raise InvalidEntry(f"day range {part.strip()!r} runs backwards; write it as two, e.g. fri-sun,mon",
                           "hours", key)
        days.extend(range(begin, end + 1))
    return days


def _window(text: Any, key: Any, index: int) -> Window:
    """'08:00-12:00' -> (08:00, 12:00); an end of 24:00 is midnight at the end of the day."""
    match = _WINDOW.match(str(text).replace(" ", ""))
    if not isinstance(text, str) or not match or (match[3] == "24" and match[4] != "00"):
        raise InvalidEntry(f"{key}: window {text!r} is not like 08:00-12:00 (24-hour clock, end up to 24:00)",
                       "hours", key, index)
    begin_hour, begin_minute, end_hour, end_minute = (int(group) for group in match.groups())
    return time(begin_hour, begin_minute), time(end_hour % 24, end_minute)


def _holidays(spec: Any) -> Holidays:
    if spec is None:
        return Holidays()
    if not isinstance(spec, dict):
        raise InvalidEntry("holidays must be a mapping with country, subdivision and/or dates", "holidays")
    unknown = sorted(set(spec) - {"__line__", "country", "subdivision", "dates"}, key=str)
    if unknown:
        raise InvalidEntry(f"holidays: unknown keys {unknown}", "holidays", unknown[0])
    dates = spec.get("dates") or []
    if not isinstance(dates, list):
        raise InvalidEntry("holidays: dates must be a list such as [2026-12-24, 2026-12-31]", "holidays", "dates")
    explicit = frozenset(_date(value, index) for index, value in enumerate(dates))
    if "country" not in spec:
        if "subdivision" in spec:
            raise InvalidEntry("holidays: a subdivision needs a country", "holidays", "subdivision")
        return Holidays(explicit)
    return _country(spec["country"], spec.get("subdivision"), explicit)


def _date(value: Any, index: int) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads 2026-12-24 as a date
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidEntry(f"holiday {value!r} is not a date like 2026-12-24", "holidays", "dates", index) from None


def _country(country: Any, subdivision: Any, explicit: frozenset[date]) -> Holidays:
    """Public holidays of a country (and subdivision) from the holidays package, for every year.

    The package works a year out when a date of it is first asked for, so a history of any
    year, past or future, meets its holidays.
    """
    if not isinstance(country, str):
        raise InvalidEntry(f"holidays: country {country!r} is not a code such as DE "
                       "(YAML reads an unquoted NO as false; write 'NO')", "holidays", "country")
    try:
        known = holidays_package.country_holidays(country, years=[])
    except NotImplementedError:
        raise InvalidEntry(f"holidays: unknown country {country!r}; use an ISO 3166 code such as DE",
                       "holidays", "country") from None
    if subdivision is not None and str(subdivision) not in known.subdivisions:
        raise InvalidEntry(f"holidays: {country} has no subdivision {subdivision!r}; "
                       f"one of {', '.join(known.subdivisions)}", "holidays", "subdivision")
    subdiv = None if subdivision is None else str(subdivision)
    observed = holidays_package.country_holidays(country, subdiv=subdiv, years=[])
    return Holidays(explicit, "-".join(filter(None, (country, subdiv))), observed.__contains__)
