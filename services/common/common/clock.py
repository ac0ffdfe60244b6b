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
