"""What falls due next: a min-heap of (instant, key) with lazy deletion.

Entries are never removed in place; whoever pops a key checks it against its state, so a
finished or moved item costs one stale pop. Next due in O(1), insert and pop in O(log n).
sla indexes clock deadlines by leg, notify its deliveries, group flushes and escalations.
"""

from __future__ import annotations

import heapq
from datetime import datetime


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, at: datetime, key: str) -> None:
        heapq.heappush(self._heap, (at, key))

    def next_deadline(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime, limit: int | None = None) -> list[str]:
        """Remove and return the keys due at or before `now`, soonest first (a key may repeat);
        at most `limit` of them, the rest left in place."""
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now and (limit is None or len(due) < limit):
            due.append(heapq.heappop(heap)[1])
        return due

    def clear(self) -> None:
        self._heap.clear()
