"""Generated history (devstack.history) sized by rows or events instead of by cases.

`write_history` is told how many cases to open; a case brings a random number of rows
(legs, first and repeat contacts) and events. A pilot of the same shape gives the count
per case, so the files come out within a fraction of a per cent of the target; the
benches then report what was actually written, never the target.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from devstack.history import write_history
from handoff_svc.adapters import csvimport

PILOT_CASES = 20_000

Count = Callable[[Path, Path], int]


def rows_in(handoffs: Path, contacts: Path) -> int:
    """Data rows of both files (headers not counted; generated cells never hold line breaks)."""
    return sum(sum(1 for _ in open(path, "rb")) - 1 for path in (handoffs, contacts))


def events_in(handoffs: Path, contacts: Path) -> int:
    """Events `handoffctl import` writes for both files (heartbeats not counted)."""
    return len(csvimport.validate(handoffs, contacts, datetime.now(timezone.utc)).schedule())


def sized_history(directory: Path, start: datetime, days: int, target: int, count: Count, prefix: str,
                  seed: int = 11) -> tuple[Path, Path]:
    """handoffs.csv and contacts.csv under `directory` with about `target` rows or events (by `count`)."""
    pilot = directory / "pilot"
    pilot.mkdir(parents=True, exist_ok=True)
    try:
        per_case = count(*write_history(pilot, start, days, PILOT_CASES, prefix, seed)) / PILOT_CASES
    finally:
        shutil.rmtree(pilot, ignore_errors=True)
    return write_history(directory, start, days, max(1, math.ceil(target / per_case)), prefix, seed)
