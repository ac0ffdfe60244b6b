"""A generated history of a contact centre, as the CSV files `handoffctl import` reads.

Customers call; the agent hands the case to a department a few minutes later; the
department acknowledges and resolves it, sometimes late, sometimes after a transfer; some
customers call again within days, about the case or not. Used for replay tests, the
replay benchmark and demonstrations. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from handoff_svc.adapters.csvimport import CONTACT_COLUMNS, HANDOFF_COLUMNS

DEPARTMENTS = ("billing", "field-service", "accounts", "claims")
CHANNELS = ("call", "chat", "email", "messaging")
PRIORITIES = ("low", "normal", "normal", "high", "urgent")


@dataclass(frozen=True)
class Shape:
    """How the generated contact centre behaves (shares are probabilities)."""

    acknowledged: float = 0.93
    resolved: float = 0.8
    cancelled: float = 0.04
    transferred: float = 0.1
    calls_again: float = 0.35
    names_case: float = 0.6
    max_ack_hours: float = 30.0
    max_resolve_days: float = 9.0


def write_history(directory: Path, start: datetime, days: int, cases: int, prefix: str = "g", seed: int = 11,
                  shape: Shape = Shape()) -> tuple[Path, Path]:
    """Write handoffs.csv and contacts.csv for `cases` cases opened over `days` from `start`."""
    rng = random.Random(seed)
    customers = max(cases // 3, 1)
    handoffs, contacts = directory / "handoffs.csv", directory / "contacts.csv"
    with open(handoffs, "w", newline="") as legs_out, open(contacts, "w", newline="") as contacts_out:
        legs_csv, contacts_csv = csv.writer(legs_out), csv.writer(contacts_out)
        legs_csv.writerow(HANDOFF_COLUMNS)
        contacts_csv.writerow(CONTACT_COLUMNS)
        for case in range(cases):
            customer = f"{prefix}-cust{rng.randrange(customers)}"
            case_id = f"{prefix}-case{case}"
            called = start + timedelta(seconds=rng.randrange(days * 86400))
            contacts_csv.writerow([f"{prefix}-k{case}", customer, "", rng.choice(CHANNELS), called.isoformat(),
                                   "asks for help"])
            created = called + timedelta(seconds=rng.randrange(60, 900))
            ended = _write_case(legs_csv, rng, shape, case_id, customer, created)
            for again in range(3 if rng.random() < shape.calls_again else 0):
                if rng.random() < 0.5 and again:
                    break
                at = created + timedelta(seconds=rng.randrange(1800, 7 * 86400))
                if ended is not None and rng.random() < 0.3:
                    at = ended + timedelta(seconds=rng.randrange(600, 3 * 86400))
                contacts_csv.writerow([f"{prefix}-k{case}-{again}", customer,
                                       case_id if rng.random() < shape.names_case else "",
                                       rng.choice(CHANNELS), at.isoformat(), "calls again"])
    return handoffs, contacts


def _write_case(out, rng: random.Random, shape: Shape, case_id: str, customer: str,
                created: datetime) -> datetime | None:
    """Write a case's legs (one, or two after a transfer); when its last leg ended."""
    first, second = f"{case_id}-a", f"{case_id}-b"
    here, there = rng.sample(DEPARTMENTS, 2)
    priority = rng.choice(PRIORITIES)
    if rng.random() < shape.transferred:
        moved = created + timedelta(seconds=rng.randrange(600, 8 * 3600))
        out.writerow(_row(first, case_id, customer, here, priority, created, None, None, None, (there, second), ""))
        return _write_leg(out, rng, shape, second, case_id, customer, there, priority, moved, first)
    return _write_leg(out, rng, shape, first, case_id, customer, here, priority, created, "")


def _write_leg(out, rng: random.Random, shape: Shape, handoff_id: str, case_id: str, customer: str,
               department: str, priority: str, created: datetime, previous: str) -> datetime | None:
    acknowledged = (created + timedelta(seconds=rng.randrange(60, int(shape.max_ack_hours * 3600)))
                    if rng.random() < shape.acknowledged else None)
    end = (acknowledged or created) + timedelta(seconds=rng.randrange(1800, int(shape.max_resolve_days * 86400)))
    outcome = rng.random()
    resolved = end if outcome < shape.resolved else None
    cancelled = end if shape.resolved <= outcome < shape.resolved + shape.cancelled else None
    out.writerow(_row(handoff_id, case_id, customer, department, priority, created, acknowledged, resolved,
                      cancelled, None, previous))
    return resolved or cancelled


def _row(handoff_id: str, case_id: str, customer: str, department: str, priority: str, created: datetime,
         acknowledged: datetime | None, resolved: datetime | None, cancelled: datetime | None,
         transfer: tuple[str, str] | None, previous: str) -> list[str]:
    def iso(at: datetime | None) -> str:
        return at.isoformat() if at else ""

    return [handoff_id, case_id, customer, department, priority, "general", "generated case",
            iso(created), iso(acknowledged), iso(resolved), iso(cancelled),
            transfer[0] if transfer else "", transfer[1] if transfer else "", previous]


def month_of(year: int, month: int) -> datetime:
    """Midnight UTC on the first of a month."""
    return datetime(year, month, 1, tzinfo=timezone.utc)
