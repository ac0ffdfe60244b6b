"""Read config/sla-policies.yaml into a PolicyBook; every error names the file and line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
import yaml

from sla.domain.calendar import MIDNIGHT, AlwaysOpen, Calendar, Window, WorkingHours, day_windows
from sla.domain.policy import ANY, Policy, PolicyBook
from sla.domain.repeats import InvalidRules, RepeatRules

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_PRIORITIES = {ANY, "LOW", "NORMAL", "HIGH", "URGENT"}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
_ALL_DAY = ((MIDNIGHT, MIDNIGHT),)


class PolicyFileError(ValueError):
    """The policy file is unusable; the message starts with `file:line:`."""


class _LineLoader(yaml.SafeLoader):
    """Keeps each mapping's line number under the key `__line__`."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '4h', '2d', '1h30m' -> timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 4h, 2d or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not duration:
        raise ValueError(f"{text!r} is zero; a target must be longer than that")
    return duration


class _Invalid(ValueError):
    """A bad calendar; `where` is the path of keys (and list indexes) below it to the culprit."""

    def __init__(self, reason: str, *where: str | int) -> None:
        super().__init__(reason)
        self.where = where


def holiday_years(today: date) -> range:
    """The years whose country holidays a calendar lists: last year to five years ahead."""
    return range(today.year - 1, today.year + 6)


def _calendar(name: str, spec: Any, years: list[int]) -> Calendar:
    if not isinstance(spec, dict):
        raise _Invalid(f"calendar {name!r} must be a mapping such as {{hours: 24x7}}")
    fields = {key: value for key, value in spec.items() if key != "__line__"}
    unknown = sorted(set(fields) - {"timezone", "hours", "holidays"}, key=str)
    if unknown:
        raise _Invalid(f"calendar {name!r}: unknown keys {unknown}", unknown[0])
    if fields == {"hours": "24x7"}:
        return AlwaysOpen(name)
    if "timezone" not in fields:
        raise _Invalid(f"calendar {name!r} needs a timezone such as Europe/Berlin (or only hours: 24x7)")
    zone = _zone(fields["timezone"])
    week = {day: _ALL_DAY for day in range(7)} if fields.get("hours") == "24x7" else _week(fields.get("hours"))
    if not any(week.values()):
        raise _Invalid(f"calendar {name!r} has no working hours", "hours")
    return WorkingHours(name, zone, week, _holidays(fields.get("holidays"), years))


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _Invalid(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin", "timezone") from None
    return str(value)


def _week(hours: Any) -> dict[int, tuple[Window, ...]]:
    if not isinstance(hours, dict):
        raise _Invalid(f"hours must be 24x7 or days with windows such as {{mon-fri: ['08:00-17:00']}}, "
                       f"not {hours!r}", "hours")
    week: dict[int, tuple[Window, ...]] = {}
    for key, windows in hours.items():
        if key == "__line__":
            continue
        texts = [windows] if isinstance(windows, str) else windows
        if not isinstance(texts, list):
            raise _Invalid(f"{key}: windows must be a list such as ['08:00-12:00', '13:00-17:00']", "hours", key)
        parsed = [_window(text, key, index) for index, text in enumerate(texts)]
        for day in _days(key):
            if day in week:
                raise _Invalid(f"{key}: {_DAYS[day]} already has hours from another entry", "hours", key)
            try:
                week[day] = day_windows(day, parsed)
            except ValueError as error:
                raise _Invalid(f"{key}: {error}", "hours", key) from None
    return week


def _days(key: Any) -> list[int]:
    """'mon' -> [0]; 'mon-fri' -> [0..4]; 'mon-wed,sat' -> [0, 1, 2, 5]."""
    days: list[int] = []
    for part in str(key).lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise _Invalid(f"unknown day {key!r}; use {', '.join(_DAYS)} or a range such as mon-fri", "hours", key)
        begin, end = _DAYS.index(first), _DAYS.index(last or first)
        if end < begin:
            raise _Invalid(f"day range {part.strip()!r} runs backwards; write it as two, e.g. fri-sun,mon",
                           "hours", key)
        days.extend(range(begin, end + 1))
    return days


def _window(text: Any, key: Any, index: int) -> Window:
    """'08:00-12:00' -> (08:00, 12:00); an end of 24:00 is midnight at the end of the day."""
    match = _WINDOW.match(str(text).replace(" ", ""))
    if not isinstance(text, str) or not match or (match[3] == "24" and match[4] != "00"):
        raise _Invalid(f"{key}: window {text!r} is not like 08:00-12:00 (24-hour clock, end up to 24:00)",
                       "hours", key, index)
    begin_hour, begin_minute, end_hour, end_minute = (int(group) for group in match.groups())
    return time(begin_hour, begin_minute), time(end_hour % 24, end_minute)


def _holidays(spec: Any, years: list[int]) -> frozenset[date]:
    if spec is None:
        return frozenset()
    if not isinstance(spec, dict):
        raise _Invalid("holidays must be a mapping with country, subdivision and/or dates", "holidays")
    unknown = sorted(set(spec) - {"__line__", "country", "subdivision", "dates"}, key=str)
    if unknown:
        raise _Invalid(f"holidays: unknown keys {unknown}", "holidays", unknown[0])
    dates = spec.get("dates") or []
    if not isinstance(dates, list):
        raise _Invalid("holidays: dates must be a list such as [2026-12-24, 2026-12-31]", "holidays", "dates")
    explicit = {_date(value, index) for index, value in enumerate(dates)}
    if "country" not in spec:
        if "subdivision" in spec:
            raise _Invalid("holidays: a subdivision needs a country", "holidays", "subdivision")
        return frozenset(explicit)
    return frozenset(explicit | _country_dates(spec["country"], spec.get("subdivision"), years))


def _date(value: Any, index: int) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads 2026-12-24 as a date
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _Invalid(f"holiday {value!r} is not a date like 2026-12-24", "holidays", "dates", index) from None


def _country_dates(country: Any, subdivision: Any, years: list[int]) -> set[date]:
    """Public holidays of a country (and subdivision) from the holidays package, for `years`."""
    if not isinstance(country, str):
        raise _Invalid(f"holidays: country {country!r} is not a code such as DE "
                       "(YAML reads an unquoted NO as false; write 'NO')", "holidays", "country")
    try:
        known = holidays_package.country_holidays(country, years=[])
    except NotImplementedError:
        raise _Invalid(f"holidays: unknown country {country!r}; use an ISO 3166 code such as DE",
                       "holidays", "country") from None
    if subdivision is not None and str(subdivision) not in known.subdivisions:
        raise _Invalid(f"holidays: {country} has no subdivision {subdivision!r}; "
                       f"one of {', '.join(known.subdivisions)}", "holidays", "subdivision")
    subdiv = None if subdivision is None else str(subdivision)
    return set(holidays_package.country_holidays(country, subdiv=subdiv, years=years))


def _line_of(text: str, keys: Iterable[str | int], fallback: int) -> int:
    """The line of the deepest node on a path of keys and list indexes through the document."""
    node, line = yaml.compose(text, Loader=yaml.SafeLoader), fallback
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(key)]
            if not found:
                break
            line, node = found[0][0].start_mark.line + 1, found[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of names, e.g. [WAITING_ON_CUSTOMER]")
    return tuple(value)


def _names_or_numbers(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("warning_fractions must be a list, e.g. [0.5, 0.8]")
    return list(value)


def _policy(entry: Any, calendars: dict[str, Calendar], defaults: dict[str, Any]) -> Policy:
    if not isinstance(entry, dict):
        raise ValueError(f"each policy must be a mapping with department, ack and resolve, not {entry!r}")
    unknown = set(entry) - {"__line__", "department", "priority", "category", "ack", "resolve", "calendar",
                            "warning_fractions", "pause_states", "max_pause"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    merged = {**defaults, **entry}
    priority = str(merged.get("priority", ANY)).upper() if merged.get("priority", ANY) != ANY else ANY
    if priority not in _PRIORITIES:
        raise ValueError(f"priority {priority!r} is not one of {sorted(_PRIORITIES)}")
    calendar_name = merged.get("calendar")
    if calendar_name not in calendars:
        raise ValueError(f"calendar {calendar_name!r} is not defined under 'calendars'")
    fractions = tuple(float(f) for f in _names_or_numbers(merged.get("warning_fractions", [0.5, 0.8])))
    if not all(0 < f < 1 for f in fractions):
        raise ValueError(f"warning_fractions {fractions} must lie strictly between 0 and 1")
    if "department" not in merged or "ack" not in merged or "resolve" not in merged:
        raise ValueError("each policy needs department, ack and resolve")
    return Policy(
        department=str(merged["department"]),
        priority=priority,
        category=str(merged.get("category", ANY)),
        ack_target=parse_duration(merged["ack"]),
        resolve_target=parse_duration(merged["resolve"]),
        calendar=calendars[calendar_name],
        warning_fractions=tuple(sorted(fractions)),
        pause_states=_names("pause_states", merged.get("pause_states", ["WAITING_ON_CUSTOMER"])),
        max_pause=parse_duration(merged["max_pause"]) if merged.get("max_pause") else None,
    ).with_version()


def _repeat_rules(section: Any) -> RepeatRules:
    """The optional `repeat_contacts` section; an error's `where` leads to the key at fault."""
    if section is None:
        return RepeatRules()
    if not isinstance(section, dict):
        raise _Invalid(f"repeat_contacts must be a mapping such as {{window: 7d}}, not {section!r}")
    unknown = sorted(set(section) - {"__line__", *_REPEAT_READERS}, key=str)
    if unknown:
        raise _Invalid(f"repeat_contacts: unknown keys {unknown}; use {', '.join(_REPEAT_READERS)}", unknown[0])
    values: dict[str, Any] = {}
    for key in (key for key in _REPEAT_READERS if key in section):
        try:
            values[key] = _REPEAT_READERS[key](section[key])
        except ValueError as error:
            raise _Invalid(f"repeat_contacts: {key}: {error}", key) from None
    try:
        return RepeatRules(**values)
    except InvalidRules as error:
        raise _Invalid(f"repeat_contacts: {error}", *error.where) from None


def _costs(spec: Any) -> dict[Any, Any]:
    """{call: 450, ...}; the rules themselves check channels and amounts."""
    if not isinstance(spec, dict):
        raise ValueError(f"must be a mapping of channel to minor units such as {{call: 450}}, not {spec!r}")
    return {channel: cost for channel, cost in spec.items() if channel != "__line__"}


_REPEAT_READERS = {"window": parse_duration, "transfer_grace": parse_duration, "currency": str,
                   "cost_per_contact": _costs}


def _line(node: Any, parent: dict[str, Any]) -> int:
    """The line a mapping starts on; for a scalar, the line of the mapping that holds it."""
    return node.get("__line__", 0) if isinstance(node, dict) else parent.get("__line__", 0)


def load_policies(path: Path, years: Iterable[int] | None = None) -> PolicyBook:
    """Parse and validate the policy file, or raise PolicyFileError naming file and line.

    Country holidays are listed for `years` (default: `holiday_years` of today).
    """
    try:
        text = path.read_text()
        document = yaml.load(text, Loader=_LineLoader)
    except OSError as error:
        raise PolicyFileError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise PolicyFileError(f"{path}:{line}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("policies"), list):
        raise PolicyFileError(f"{path}:1: expected a mapping with a 'policies' list")
    holiday_range = list(holiday_years(date.today()) if years is None else years)
    specs = document.get("calendars") or {}
    if not isinstance(specs, dict):
        raise PolicyFileError(f"{path}:{_line_of(text, ['calendars'], 1)}: calendars must be a mapping of names")
    calendars: dict[str, Calendar] = {}
    for name, spec in specs.items():
        if name == "__line__":
            continue
        try:
            calendars[name] = _calendar(name, spec, holiday_range)
        except ValueError as error:
            where = ("calendars", name, *getattr(error, "where", ()))
            raise PolicyFileError(f"{path}:{_line_of(text, where, _line(spec, document))}: {error}") from None
    defaults = {k: v for k, v in (document.get("defaults") or {}).items() if k != "__line__"}
    policies = []
    for entry in document["policies"]:
        try:
            policies.append(_policy(entry, calendars, defaults))
        except (ValueError, TypeError) as error:
            raise PolicyFileError(f"{path}:{_line(entry, document)}: {error}") from None
    try:
        repeats = _repeat_rules(document.get("repeat_contacts"))
    except _Invalid as error:
        where = ("repeat_contacts", *error.where)
        raise PolicyFileError(f"{path}:{_line_of(text, where, 1)}: {error}") from None
    return PolicyBook(tuple(policies), repeats)
