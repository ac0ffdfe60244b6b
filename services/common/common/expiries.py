"""When each entry of a read model is forgotten: a min-heap of (expiry, key) with lazy deletion.

An entry's expiry may move (a leg reopened, closed again) or go (a leg open again): the
newest one is remembered per key and a popped pair counts only if it still matches, so
a moved expiry costs one stale pop. Setting and popping are O(log n); nothing is scanned.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from datetime import datetime


class Expiries:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, Hashable]] = []
        self._at: dict[Hashable, datetime] = {}

    def __len__(self) -> int:
        """How many keys have an expiry pending."""
        return len(self._at)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._at

    @property
    def heap_size(self) -> int:
        return len(self._heap)

    def expire(self, key: Hashable, at: datetime | None) -> None:
        """`key` expires at `at`; None keeps it (no expiry)."""
        if at is None:
            self._at.pop(key, None)
        elif self._at.get(key) != at:
            self._at[key] = at
            heapq.heappush(self._heap, (at, key))

    def due(self, now: datetime) -> Iterator[Hashable]:
        """Remove and yield, one at a time, the keys whose expiry is at or before `now`."""
        while self._heap and self._heap[0][0] <= now:
            at, key = heapq.heappop(self._heap)
            if self._at.get(key) == at:
                del self._at[key]
                yield key
