"""Generated history sized by rows (bench.sizing): a bench's figure is measured at the size
its goal names, at least, not a fraction of a per cent short of it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.sizing import rows_in, sized_history

START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("target", [997, 1_000, 2_503])
def test_a_try_short_of_the_rows_asked_for_is_written_again_with_more_cases(tmp_path: Path, target: int) -> None:
    counted: list[int] = []

    def count(handoffs: Path, contacts: Path) -> int:
        counted.append(rows_in(handoffs, contacts))
        return counted[-1]

    # A pilot of 20 cases misjudges the rows per case: the first try falls short.
    files = sized_history(tmp_path, START, 30, target, count, "t", seed=3, pilot_cases=20)
    pilot, first_try, *_ = counted
    assert first_try < target
    assert target <= rows_in(*files) == counted[-1] <= target * 1.25
    assert not (tmp_path / "pilot").exists()
