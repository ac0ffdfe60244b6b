"""Generated history sized by rows (bench.sizing): a bench's figure is measured at the size
its goal names, at least, not a fraction of a per cent short of it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.sizing import rows_in, sized_history

START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("target", [997, 1_000, 2_503])
def test_the_files_hold_at_least_the_rows_asked_for_and_little_more(tmp_path: Path, target: int) -> None:
    # A pilot of few cases misjudges the rows per case, so the first try may well fall short.
    files = sized_history(tmp_path, START, 30, target, rows_in, "t", seed=3, pilot_cases=20)
    written = rows_in(*files)
    assert target <= written <= target * 1.25
    assert not (tmp_path / "pilot").exists()


def test_a_try_that_falls_short_is_written_again_with_more_cases(tmp_path: Path) -> None:
    # given a count that reports the first try as half of what was asked
    tries: list[int] = []

    def count(handoffs: Path, contacts: Path) -> int:
        rows = rows_in(handoffs, contacts)
        tries.append(rows)
        return rows if len(tries) > 2 else rows // 2  # the pilot and the first try are halved

    files = sized_history(tmp_path, START, 30, 500, count, "t", seed=3, pilot_cases=50)
    assert len(tries) >= 3 and rows_in(*files) >= 500 and tries[-1] >= 500
