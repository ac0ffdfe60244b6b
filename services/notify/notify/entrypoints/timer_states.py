"""The states a timer works through: when each falls due, and what it has moved on.

A faust timer cannot write tables, so a timer that advances a state (the Escalator's
steps, the Grouper's flushes) keeps it here until the agent has read it back into the
table; until then a lookup prefers the copy kept ahead to the table's record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Generic, TypeVar

from common.dueindex import DueIndex

T = TypeVar("T")


class TimerStates(Generic[T]):
    def __init__(self, table: Mapping[str, dict], parse: Callable[[dict], T | None]) -> None:
        self._table = table
        self._parse = parse
        self._queue = DueIndex()
        self._ahead: dict[str, tuple[T, int]] = {}

    def __len__(self) -> int:
        return len(self._queue)

    def schedule(self, key: str, at: datetime | None) -> None:
        """Look at `key` again at `at`; None means it has nothing due."""
        if at is not None:
            self._queue.add(at, key)

    def due(self, now: datetime, owned: frozenset[int]) -> Iterator[tuple[str, T, int]]:
        """Each key due by `now` once, with its state and partition, if this worker owns it."""
        for key in dict.fromkeys(self._queue.pop_due(now)):
            entry = self._load(key)
            if entry is not None and entry[1] in owned:
                yield key, *entry

    def _load(self, key: str) -> tuple[T, int] | None:
        if key in self._ahead:
            return self._ahead[key]
        value = self._table.get(key)
        parsed = self._parse(value) if value else None
        return (parsed, value["partition"]) if parsed is not None else None

    def ahead(self, key: str) -> T | None:
        """The state kept ahead of the table for `key`, if any."""
        entry = self._ahead.get(key)
        return entry[0] if entry else None

    def keep(self, key: str, state: T, partition: int) -> None:
        self._ahead[key] = (state, partition)

    def revise(self, key: str, change: Callable[[T], T]) -> None:
        """Apply `change` to the state kept ahead for `key`, if there is one."""
        if key in self._ahead:
            state, partition = self._ahead[key]
            self._ahead[key] = (change(state), partition)

    def forget(self, key: str) -> None:
        self._ahead.pop(key, None)

    def clear(self) -> None:
        self._queue.clear()
        self._ahead.clear()
