"""The states a timer works through: when each falls due, read from its table when it does.

Entries are never removed in place (DueIndex): a state that moved on is simply looked up
again when its old instant comes, and scheduled for its new one.
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

    def __len__(self) -> int:
        return len(self._queue)

    def schedule(self, key: str, at: datetime | None) -> None:
        """Look at `key` again at `at`; None means it has nothing due."""
        if at is not None:
            self._queue.add(at, key)

    def due(self, now: datetime, owned: frozenset[int]) -> Iterator[tuple[str, T, int]]:
        """Each key due by `now` once, with its state and partition, if this worker owns it."""
        for key in dict.fromkeys(self._queue.pop_due(now)):
            value = self._table.get(key)
            parsed = self._parse(value) if value else None
            if parsed is not None and value["partition"] in owned:
                yield key, parsed, value["partition"]

    def clear(self) -> None:
        self._queue.clear()
