"""Read config/sla-policies.yaml into a PolicyBook; every error names the file and line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from sla.domain.calendar import AlwaysOpen
from sla.domain.policy import ANY, Policy, PolicyBook

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_PRIORITIES = {ANY, "LOW", "NORMAL", "HIGH", "URGENT"}


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


def _calendar(name: str, spec: Any) -> AlwaysOpen:
    if not isinstance(spec, dict):
        raise ValueError(f"calendar {name!r} must be a mapping such as {{hours: 24x7}}")
    if spec.get("hours") != "24x7":
        raise ValueError(f"calendar {name!r}: only 'hours: 24x7' is supported")
    return AlwaysOpen(name)


def _names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of names, e.g. [WAITING_ON_CUSTOMER]")
    return tuple(value)


def _names_or_numbers(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("warning_fractions must be a list, e.g. [0.5, 0.8]")
    return list(value)


def _policy(entry: Any, calendars: dict[str, AlwaysOpen], defaults: dict[str, Any]) -> Policy:
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


def _line(node: Any, parent: dict[str, Any]) -> int:
    """The line a mapping starts on; for a scalar, the line of the mapping that holds it."""
    return node.get("__line__", 0) if isinstance(node, dict) else parent.get("__line__", 0)


def load_policies(path: Path) -> PolicyBook:
    """Parse and validate the policy file, or raise PolicyFileError naming file and line."""
    try:
        document = yaml.load(path.read_text(), Loader=_LineLoader)
    except OSError as error:
        raise PolicyFileError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise PolicyFileError(f"{path}:{line}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("policies"), list):
        raise PolicyFileError(f"{path}:1: expected a mapping with a 'policies' list")
    calendars: dict[str, AlwaysOpen] = {}
    for name, spec in (document.get("calendars") or {}).items():
        if name == "__line__":
            continue
        try:
            calendars[name] = _calendar(name, spec)
        except ValueError as error:
            raise PolicyFileError(f"{path}:{_line(spec, document)}: {error}") from None
    defaults = {k: v for k, v in (document.get("defaults") or {}).items() if k != "__line__"}
    policies = []
    for entry in document["policies"]:
        try:
            policies.append(_policy(entry, calendars, defaults))
        except (ValueError, TypeError) as error:
            raise PolicyFileError(f"{path}:{_line(entry, document)}: {error}") from None
    return PolicyBook(tuple(policies))
