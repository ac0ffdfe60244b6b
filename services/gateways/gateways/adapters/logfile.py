"""Append notifications as numbered JSON lines to a file; the line's number is the receipt."""

from __future__ import annotations

from pathlib import Path

from common.clock import Clock
from gateways.domain.delivery import Delivery, Unavailable
from gateways.domain.logline import log_line

_CHUNK = 1 << 20


def _lines_in(path: Path) -> int:
    if not path.exists():
        return 0
    count = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            count += chunk.count(b"\n")
    return count


class LogChannel:
    """One append-only file; numbering continues after a restart from the lines already there."""

    def __init__(self, path: Path, clock: Clock) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._written = _lines_in(path)
        self._file = path.open("a", encoding="utf-8")
        self._clock = clock

    @property
    def path(self) -> Path:
        return Path(self._file.name)

    async def deliver(self, delivery: Delivery, timeout: float) -> str:
        """Write one line and flush it; the receipt is its sequence number."""
        [outcome] = await self.deliver_all([delivery], timeout)
        if isinstance(outcome, Unavailable):
            raise outcome
        return outcome

    async def deliver_all(self, deliveries: list[Delivery], timeout: float) -> list[str | Unavailable]:
        """Write a line per delivery and flush them together; the receipts are their numbers.

        Written on the event loop, without awaiting: flushed lines go to the page cache
        (the journal's fsync is what waits for the disk), which costs less than handing them
        to a thread, and nothing else runs in between, so numbers follow the file's order."""
        now = self._clock.now()
        first = self._written + 1
        lines = [log_line(delivery, first + index, now) + "\n" for index, delivery in enumerate(deliveries)]
        try:
            self._file.write("".join(lines))
            self._file.flush()
        except OSError as error:
            failure = f"cannot write {self.path}: {error.strerror or error}"
            return [Unavailable(failure) for _ in deliveries]
        self._written += len(lines)
        return [str(first + index) for index in range(len(lines))]

    async def close(self) -> None:
        self._file.close()
