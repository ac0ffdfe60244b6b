"""YAML config files whose every value can be traced back to the line it sits on.

`read_yaml` returns plain dicts and lists (subclasses that remember lines), so a config
reader checks values as usual and still reports `file:line: reason` (loud on bad
configuration). A key given twice in one mapping is an error, not a silent
overwrite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ConfigProblem(ValueError):
    """A config value is unusable; `line` (1-based, 0 when unknown) is where it sits."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason

    def located(self, path: Path | str) -> str:
        """The problem as `path:line: reason` (or `path: reason` without a line)."""
        return f"{path}:{self.line}: {self.reason}" if self.line else f"{path}: {self.reason}"


class LineMap(dict):
    """A YAML mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """The line of `key` if present, else the mapping's own line."""
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        """The line of item `index`."""
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineMap:
        result = LineMap()
        result.line, result.key_lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (LineMap, LineList)):
                raise ConfigProblem(key_node.start_mark.line + 1, "a key must be a plain value")
            if key in result.key_lines:
                raise ConfigProblem(key_node.start_mark.line + 1,
                                    f"key {key!r} given twice (first at line {result.key_lines[key]})")
            result.key_lines[key] = key_node.start_mark.line + 1
            result[key] = self.construct_object(value_node, deep=True)
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line, result.item_lines = node.start_mark.line + 1, [c.start_mark.line + 1 for c in node.value]
        return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


def read_yaml(path: Path) -> Any:
    """The document in `path`, mappings as LineMap and sequences as LineList; ConfigProblem if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigProblem(0, f"cannot read: {error.strerror or error}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ConfigProblem(mark.line + 1 if mark else 0,
                            f"not valid YAML: {getattr(error, 'problem', None) or error}") from None


def mapping(value: Any, line: int, what: str, allowed: Iterable[str], required: Iterable[str] = ()) -> LineMap:
    """`value` as a mapping with only `allowed` keys and every `required` one."""
    if not isinstance(value, LineMap):
        raise ConfigProblem(line, f"{what} must be a mapping, not {value!r}")
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise ConfigProblem(value.line_of(key), f"{what}: unknown key {key!r}; expected one of {sorted(allowed)}")
    for key in required:
        if key not in value:
            raise ConfigProblem(value.line, f"{what}: {key!r} is required")
    return value


def sequence(value: Any, line: int, what: str) -> LineList:
    """`value` as a list (an absent value is an empty list)."""
    if value is None:
        empty = LineList()
        empty.line, empty.item_lines = line, []
        return empty
    if not isinstance(value, LineList):
        raise ConfigProblem(line, f"{what} must be a list, not {value!r}")
    return value


def parse_duration(text: Any, allow_zero: bool = False) -> timedelta:
    """'90s', '15m', '4h', '2d', '1h30m' (and '0s' when `allow_zero`) -> timedelta."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 4h, 2d or 1h30m")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not duration and not allow_zero:
        raise ValueError(f"{text!r} is zero; it must be longer than that")
    return duration
