"""Where services get `now` from. Domain code never asks; it is given an instant."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    """A source of the current instant (wall time, or event time in replay)."""

    def now(self) -> datetime: ...


class WallClock:
    """Real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class EventTime:
    """Event time for replay and simulation: a watermark per partition.

    A partition's watermark is the latest instant its events and heartbeat ticks have
    reached (it never goes back). `now()` is the earliest watermark of the partitions this
    worker owns, so nothing runs ahead of the slowest partition; it stays at the epoch until
    every owned partition has reported.
    """

    def __init__(self) -> None:
        self._marks: dict[int, datetime] = {}
        self._owned: frozenset[int] = frozenset()

    def own(self, partitions: frozenset[int]) -> None:
        """The partitions whose watermarks `now()` follows (after an assignment)."""
        self._owned = partitions

    def advance(self, partition: int, instant: datetime) -> datetime:
        """Move `partition`'s watermark to `instant` if later; returns the watermark."""
        mark = self._marks.get(partition)
        if mark is None or instant > mark:
            self._marks[partition] = mark = instant
        return mark

    def mark(self, partition: int) -> datetime:
        """`partition`'s watermark (the epoch before anything arrived)."""
        return self._marks.get(partition, EPOCH)

    def now(self) -> datetime:
        if not self._owned:
            return EPOCH
        return min(self.mark(partition) for partition in self._owned)
