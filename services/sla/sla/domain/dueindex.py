"""Which clock is due next: a min-heap of (deadline, handoff id) with lazy deletion.

Entries are never removed in place; a popped entry is checked against the table, so a
stopped or moved clock costs one stale pop. Next due in O(1), insert and pop in O(log n).
"""

from __future__ import annotations

import heapq
from datetime import datetime


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, deadline: datetime, handoff_id: str) -> None:
        heapq.heappush(self._heap, (deadline, handoff_id))

    def next_deadline(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[str]:
        """Remove and return the handoff ids whose deadline is at or before `now`."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[1])
        return due

    def clear(self) -> None:
        self._heap.clear()
