"""Import rate: how fast `handoffctl import` checks and writes generated historical rows.

`import_rate(bootstrap, rows, workdir)` is the function a bench runner calls against a
broker that has the project's topics. `python -m bench.importbench --rows 1000000` runs it
on a throwaway local broker of its own, stopped afterwards, and prints the figures. The
goal (report only): a million rows in under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.sizing import rows_in, sized_history
from common.localkafka import LocalKafka, create_topics
from handoff_svc.entrypoints.importer import import_files

START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)
DAYS = 90


def write_files(directory: Path, rows: int, run_id: str, seed: int = 7) -> tuple[Path, Path]:
    """A handoffs file and a contacts file with about `rows` rows between them, all valid:
    devstack.history's contact centre (acknowledged, resolved, cancelled, transferred legs;
    first and repeat contacts) over 90 days, ids prefixed with `run_id`."""
    return sized_history(directory, START, DAYS, rows, rows_in, f"b{run_id}", seed)


async def import_rate(bootstrap: str, rows: int, workdir: Path) -> dict:
    """Generate about `rows` rows under `workdir`, import them, and return the figures
    (for the rows actually generated)."""
    handoffs, contacts = write_files(workdir, rows, uuid.uuid4().hex[:6])
    cpu = time.process_time()
    report = await import_files(bootstrap, handoffs, contacts, progress=False)
    cpu = time.process_time() - cpu
    imported = report.legs + report.contacts
    return {
        "rows_asked": rows, "rows": imported, "legs": report.legs, "contacts": report.contacts,
        "events": report.events, "seconds": round(report.seconds, 2),
        "checking_seconds": round(report.checking_seconds, 2), "cpu_seconds": round(cpu, 2),
        "rows_per_s": round(imported / report.seconds),
        "events_per_s": round(report.events_per_s), "goal_met": imported >= 1_000_000 and report.seconds < 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.importbench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="importbench-") as tmp:
        with LocalKafka(Path(tmp) / "kafka") as kafka:
            create_topics(kafka.bootstrap)
            print(json.dumps(asyncio.run(import_rate(kafka.bootstrap, args.rows, Path(tmp))), indent=2))


if __name__ == "__main__":
    main()
