"""Import rate: how fast `handoffctl import` checks and writes generated historical rows.

`import_rate(bootstrap, rows, workdir)` is the function a bench runner calls against a
broker that has the project's topics. `python -m bench.importbench --rows 1000000` runs it
on a throwaway local broker of its own, stopped afterwards, and prints the figures. The
goal (report only): a million rows in under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common.localkafka import LocalKafka, create_topics
from handoff_svc.adapters.csvimport import CONTACT_COLUMNS, HANDOFF_COLUMNS
from handoff_svc.entrypoints.importer import import_files

DEPARTMENTS = ("billing", "field-service", "accounts", "claims", "retention")
CASE_SHARE = 0.9  # of the rows go to cases (their legs and one contact each); the rest are repeat contacts
START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))


def write_files(directory: Path, rows: int, run_id: str, seed: int = 7) -> tuple[Path, Path]:
    """A handoffs file and a contacts file with `rows` rows between them, all valid:
    most legs acknowledged and resolved, some cancelled, one case in eight transferred."""
    rng = random.Random(seed)
    customers = max(rows // 10, 1)
    handoffs, contacts = directory / "handoffs.csv", directory / "contacts.csv"
    with open(handoffs, "w", newline="") as legs_out, open(contacts, "w", newline="") as contacts_out:
        legs_csv, contacts_csv = csv.writer(legs_out), csv.writer(contacts_out)
        legs_csv.writerow(HANDOFF_COLUMNS)
        contacts_csv.writerow(CONTACT_COLUMNS)
        legs, case = 0, 0
        while legs + case < rows * CASE_SHARE:
            case += 1
            customer = f"b{run_id}-c{rng.randrange(customers)}"
            created = START + timedelta(minutes=rng.randrange(90 * 24 * 60))
            transferred = rng.random() < 0.125
            first, second = f"b{run_id}-h{case}a", f"b{run_id}-h{case}b"
            moved = created + timedelta(minutes=rng.randrange(30, 600))
            case_id = f"b{run_id}-case{case}"
            here, there = rng.sample(DEPARTMENTS, 2)
            legs_csv.writerow(_leg(rng, first, case_id, customer, here, created, moved if transferred else None,
                                   (there, second) if transferred else None, ""))
            legs += 1
            if transferred:
                legs_csv.writerow(_leg(rng, second, case_id, customer, there, moved, None, None, first))
                legs += 1
            contacts_csv.writerow([f"b{run_id}-k{case}", customer, case_id,
                                   rng.choice(("call", "chat", "email", "messaging")),
                                   (created - timedelta(minutes=5)).isoformat(), "asks about the case"])
        for number in range(rows - legs - case):
            at = START + timedelta(minutes=rng.randrange(90 * 24 * 60))
            contacts_csv.writerow([f"b{run_id}-r{number}", f"b{run_id}-c{rng.randrange(customers)}", "",
                                   "call", at.astimezone(CET).isoformat(), "calls again"])
    return handoffs, contacts


def _leg(rng: random.Random, handoff_id: str, case_id: str, customer: str, department: str, created: datetime,
         ended_by_transfer: datetime | None, transfer: tuple[str, str] | None, previous: str) -> list[str]:
    acknowledged = created + timedelta(minutes=rng.randrange(1, 30)) if rng.random() < 0.9 else None
    if ended_by_transfer and acknowledged and acknowledged > ended_by_transfer:
        acknowledged = None
    end = (acknowledged or created) + timedelta(hours=rng.randrange(1, 72))
    outcome = None if transfer else rng.choices(("resolved", "cancelled", None), (0.75, 0.05, 0.2))[0]
    return [
        handoff_id, case_id, customer, department,
        rng.choice(("low", "normal", "high", "urgent")), "refund", "Refund not received",
        created.isoformat(), acknowledged.isoformat() if acknowledged else "",
        end.isoformat() if outcome == "resolved" else "", end.isoformat() if outcome == "cancelled" else "",
        transfer[0] if transfer else "", transfer[1] if transfer else "", previous,
    ]


async def import_rate(bootstrap: str, rows: int, workdir: Path) -> dict:
    """Generate `rows` rows under `workdir`, import them, and return the figures."""
    handoffs, contacts = write_files(workdir, rows, uuid.uuid4().hex[:6])
    cpu = time.process_time()
    report = await import_files(bootstrap, handoffs, contacts, progress=False)
    cpu = time.process_time() - cpu
    return {
        "rows": report.legs + report.contacts, "legs": report.legs, "contacts": report.contacts,
        "events": report.events, "seconds": round(report.seconds, 2),
        "checking_seconds": round(report.checking_seconds, 2), "cpu_seconds": round(cpu, 2),
        "rows_per_s": round((report.legs + report.contacts) / report.seconds),
        "events_per_s": round(report.events_per_s), "goal_met": rows >= 1_000_000 and report.seconds < 60,
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
