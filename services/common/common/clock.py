"""Where services get `now` from. Domain code never asks; it is given an instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

from common.settings import SettingsError


class Clock(Protocol):
    """A source of the current instant (wall time, or event time in replay)."""

    def now(self) -> datetime: ...


class WallClock:
    """Real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


_MICROSECOND = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact (a float timestamp is not), and compact to store."""
    return (moment - EPOCH) // _MICROSECOND


def from_epoch_us(us: int) -> datetime:
    """Inverse of `epoch_us`, in UTC."""
    return EPOCH + timedelta(microseconds=us)


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

    def reset(self, partition: int, instant: datetime) -> None:
        """Put `partition`'s watermark at `instant`, even back (a restored or rolled-back state)."""
        self._marks[partition] = instant

    def mark(self, partition: int) -> datetime:
        """`partition`'s watermark (the epoch before anything arrived)."""
        return self._marks.get(partition, EPOCH)

    def now(self) -> datetime:
        if not self._owned:
            return EPOCH
        return min(self.mark(partition) for partition in self._owned)


class MergedEventTime:
    """Event time of a stage fed by an upstream stage's partitions (notify's stage 2).

    Each of this stage's partitions hears heartbeats from every upstream (source)
    partition; a partition's time is the earliest of its sources' watermarks, and `now()` is
    the earliest over the partitions this worker owns. It stays at the epoch until every
    source has reported to every owned partition.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, EventTime] = {}
        self._owned: frozenset[int] = frozenset()

    def own(self, partitions: frozenset[int]) -> None:
        self._owned = partitions

    def advance(self, partition: int, source: int, sources: int, instant: datetime) -> datetime:
        """`source` (of `sources` upstream partitions) reached `instant` on `partition`; its watermark there."""
        marks = self._partitions.setdefault(partition, EventTime())
        marks.own(frozenset(range(sources)))
        return marks.advance(source, instant)

    def now(self) -> datetime:
        if not self._owned:
            return EPOCH
        return min(self._partitions[p].now() if p in self._partitions else EPOCH for p in self._owned)


def named_clock(variable: str, value: str, event_clock: Callable[[], Clock]) -> Clock:
    """The clock a setting names: "wall" in production, "event" (a fresh `event_clock()`)
    for replay and simulation (docs/architecture.md, "Rules the code keeps")."""
    clocks: dict[str, Callable[[], Clock]] = {"wall": WallClock, "event": event_clock}
    if value not in clocks:
        raise SettingsError(f"{variable}={value!r} is not one of: {', '.join(clocks)}")
    return clocks[value]()
