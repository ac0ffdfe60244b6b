"""Generated history (devstack.history) sized by rows or events instead of by cases.

`write_history` is told how many cases to open; a case brings a random number of rows
(legs, first and repeat contacts) and events. A pilot of the same shape gives the count
per case, so the files come out within a fraction of a per cent of the target; short of it,
they are written again with more cases, so a figure is measured at the size a goal names
(at least). The benches then report what was actually written, never the target.
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
                  seed: int = 11, pilot_cases: int = PILOT_CASES) -> tuple[Path, Path]:
    """handoffs.csv and contacts.csv under `directory` with at least `target` rows or events
    (by `count`), a fraction of a per cent more as a rule."""
    pilot = directory / "pilot"
    pilot.mkdir(parents=True, exist_ok=True)
    try:
        per_case = count(*write_history(pilot, start, days, pilot_cases, prefix, seed)) / pilot_cases
    finally:
        shutil.rmtree(pilot, ignore_errors=True)
    cases = max(1, math.ceil(target / per_case))
    while True:
        files = write_history(directory, start, days, cases, prefix, seed)
        written = count(*files)
        if written >= target:
            return files
        # Cases differ in size: scale by what this many gave, and one more, so each try grows.
        cases = math.ceil(cases * target / max(written, 1)) + 1
