"""Shared givens for the unit tests: instants, a leg, a policy, a policy file on disk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from sla.domain.calendar import AlwaysOpen
from sla.domain.clocks import LegInfo
from sla.domain.policy import Policy

# A Monday morning, UTC: far from any DST change, so arithmetic on it is unambiguous.
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)


def utc(*args: int) -> datetime:
    """An aware UTC instant, e.g. utc(2025, 3, 3, 9, 0)."""
    return datetime(*args, tzinfo=timezone.utc)


def leg_info(handoff_id: str = "h-1", priority: str = "NORMAL") -> LegInfo:
    """A billing leg, as the SLA clocks see it."""
    return LegInfo(
        handoff_id=handoff_id,
        case_id="case-1",
        customer_ref="cust-1",
        department="billing",
        priority=priority,
        category="refund",
    )


def policy(
    department: str = "billing",
    priority: str = "*",
    category: str = "*",
    ack: timedelta = timedelta(hours=4),
    resolve: timedelta = timedelta(days=2),
) -> Policy:
    """A versioned 24x7 policy."""
    return Policy(
        department=department,
        priority=priority,
        category=category,
        ack_target=ack,
        resolve_target=resolve,
        calendar=AlwaysOpen("always"),
    ).with_version()


@pytest.fixture
def policy_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a policy file (dedented) under tmp_path and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "sla-policies.yaml"
        path.write_text(dedent(text).lstrip("\n"))
        return path

    return write
