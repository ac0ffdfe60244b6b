"""Read config/sla-policies.yaml into a PolicyBook; every error names the file and line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from common.yamlfile import parse_duration
from sla.adapters.calendar_file import InvalidEntry, read_calendar
from sla.domain.calendar import Calendar
from sla.domain.policy import ANY, Policy, PolicyBook, Target
from sla.domain.repeats import InvalidRules, RepeatRules

_PRIORITIES = {ANY, "LOW", "NORMAL", "HIGH", "URGENT"}
_DAYS = re.compile(r"^\s*(\d+)d")


class PolicyFileError(ValueError):
    """The policy file is unusable; the message starts with `file:line:`."""


class _LineLoader(yaml.SafeLoader):
    """Keeps each mapping's line number under the key `__line__`."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


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


def parse_target(text: Any) -> Target:
    """'2d' -> two working days; '4h', '1h30m' -> business time; '1d4h' -> a working day, then 4 h."""
    duration = parse_duration(text)
    days = int(match[1]) if isinstance(text, str) and (match := _DAYS.match(text)) else 0
    return Target(days, duration - timedelta(days=days))


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
        ack_target=parse_target(merged["ack"]),
        resolve_target=parse_target(merged["resolve"]),
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
        raise InvalidEntry(f"repeat_contacts must be a mapping such as {{window: 7d}}, not {section!r}")
    unknown = sorted(set(section) - {"__line__", *_REPEAT_READERS}, key=str)
    if unknown:
        raise InvalidEntry(f"repeat_contacts: unknown keys {unknown}; use {', '.join(_REPEAT_READERS)}", unknown[0])
    values: dict[str, Any] = {}
    for key in (key for key in _REPEAT_READERS if key in section):
        try:
            values[key] = _REPEAT_READERS[key](section[key])
        except ValueError as error:
            raise InvalidEntry(f"repeat_contacts: {key}: {error}", key) from None
    try:
        return RepeatRules(**values)
    except InvalidRules as error:
        raise InvalidEntry(f"repeat_contacts: {error}", *error.where) from None


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


def load_policies(path: Path) -> PolicyBook:
    """Parse and validate the policy file, or raise PolicyFileError naming file and line."""
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
    specs = document.get("calendars") or {}
    if not isinstance(specs, dict):
        raise PolicyFileError(f"{path}:{_line_of(text, ['calendars'], 1)}: calendars must be a mapping of names")
    calendars: dict[str, Calendar] = {}
    for name, spec in specs.items():
        if name == "__line__":
            continue
        try:
            calendars[name] = read_calendar(name, spec)
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
    except InvalidEntry as error:
        where = ("repeat_contacts", *error.where)
        raise PolicyFileError(f"{path}:{_line_of(text, where, 1)}: {error}") from None
    return PolicyBook(tuple(policies), repeats)
