"""A stream processor's state: bytes values by key in memory, backed by a compacted changelog.

Every value starts with a small header the engine reads without decoding the rest: the
partition that owns the key, the instant the key next wants the processor's attention
(0: never; the engine's timers), and one byte the service may use as it likes (sla counts
running clocks in it). A batch's writes are kept as the keys it touched; the engine writes
each touched key once to the changelog, in the same transaction as the batch's outputs and
input offsets, and then commits the store. An aborted batch rolls the store back to where it
was, so memory never holds what the broker does not.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

_HEADER = struct.Struct(">HqB")
HEADER_SIZE = _HEADER.size
_MISSING = object()


@dataclass(frozen=True)
class Header:
    partition: int
    due_us: int  # microseconds since the epoch; 0 when nothing is due
    tag: int


# Forget instants are whole seconds: what comes due within a second is deleted in one pass,
# one transaction, where instants to the microsecond cost a transaction per entry.
FORGET_GRAIN_US = 1_000_000


def forget_due(at_us: int) -> int:
    """A forget instant (µs since the epoch), rounded up to FORGET_GRAIN_US."""
    return -(-at_us // FORGET_GRAIN_US) * FORGET_GRAIN_US


def framed(partition: int, payload: bytes, due_us: int = 0, tag: int = 0) -> bytes:
    """A store value: the header, then the service's payload."""
    return _HEADER.pack(partition, due_us, min(tag, 255)) + payload


def header_of(value: bytes) -> Header:
    """The header of a store value."""
    return Header(*_HEADER.unpack_from(value))


def payload_of(value: bytes) -> bytes:
    """The service's part of a store value."""
    return value[HEADER_SIZE:]


def partition_of(value: bytes) -> int:
    return int.from_bytes(value[:2], "big")


def due_of(value: bytes) -> int:
    return _HEADER.unpack_from(value)[1]


class ChangelogStore:
    """Values by key for the partitions this worker owns; `changelog` is its compacted topic."""

    def __init__(self, name: str, changelog: str) -> None:
        self.name = name
        self.changelog = changelog
        self._values: dict[str, bytes] = {}
        # Keys written since the last commit -> (value before the batch, partition it lived on).
        self._touched: dict[str, tuple[object, int]] = {}

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> bytes:
        return self._values[key]

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        return self._values.get(key, default)

    def __setitem__(self, key: str, value: bytes) -> None:
        before = self._values.get(key, _MISSING)
        if key not in self._touched:
            self._touched[key] = (before, partition_of(value))
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        before = self._values.pop(key)
        if key not in self._touched:
            self._touched[key] = (before, partition_of(before))

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(self._values.items())

    def values(self) -> Iterator[bytes]:
        return iter(self._values.values())

    def writes(self) -> list[tuple[int, str, bytes | None]]:
        """(partition, key, value or None for a deletion) of every key touched since the last commit."""
        return [(partition, key, self._values.get(key)) for key, (_, partition) in self._touched.items()]

    def commit(self) -> None:
        """The touched keys reached the broker: forget how they were."""
        self._touched.clear()

    def rollback(self) -> list[str]:
        """Put every touched key back as it was at the last commit; returns those keys."""
        keys = list(self._touched)
        for key, (before, _) in self._touched.items():
            if before is _MISSING:
                self._values.pop(key, None)
            else:
                self._values[key] = cast(bytes, before)
        self._touched.clear()
        return keys

    def restore(self, key: str, value: bytes | None) -> None:
        """A changelog record read back at assignment (None: a tombstone)."""
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value

    def drop(self, partitions: frozenset[int]) -> int:
        """Forget the keys of `partitions` (revoked); returns how many went."""
        gone = [key for key, value in self._values.items() if partition_of(value) in partitions]
        for key in gone:
            del self._values[key]
        return len(gone)
