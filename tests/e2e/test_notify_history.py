"""Importing history pages nobody: a month of legs imported into a running system (wall
time) has its warnings and breaches recorded by notify as `suppressed` (reason `history`),
and no gateway is called; an import with `--notify` has them delivered."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.e2e.test_notify_helpers import counter, notification_events, notify_stack
from tests.support import unique, wait_for

pytestmark = pytest.mark.e2e

COLUMNS = ("handoff_id,case_id,customer_ref,department,priority,category,summary,created_at,acknowledged_at,"
           "resolved_at,cancelled_at,transferred_to,next_handoff_id,previous_handoff_id")
GATEWAYS = ("gateway-webhook", "gateway-email", "gateway-log")
# Per open leg on the suite's 24x7 policy (ack 3s, resolve 1m): two warnings and a breach per clock.
NOTICES_PER_LEG = 6


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with notify_stack(tmp_path_factory.mktemp("notify-history")) as env:
        yield env


def write_legs(path: Path, legs: list[tuple[str, str, datetime]]) -> Path:
    """A handoffs CSV of open legs: (handoff id, department, created at)."""
    rows = [f"{leg},case-{leg},{unique('cust')},{department},normal,refund,,{created.isoformat()},,,,,,"
            for leg, department, created in legs]
    path.write_text("\n".join([COLUMNS, *rows]) + "\n")
    return path


def handoffctl_import(stack, handoffs: Path, *options: str) -> None:
    imported = subprocess.run(
        [sys.executable, "-m", "handoffctl.main", "import", "--handoffs", str(handoffs), "--quiet", *options],
        env={**os.environ, "KAFKA_BOOTSTRAP": stack.bootstrap}, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr


def gateway_calls(stack) -> float:
    """Every Deliver call the gateways have answered, whatever its outcome."""
    return sum(counter(stack, gateway, "handoff_gateway_deliveries") for gateway in GATEWAYS)


def requested_about(stack, legs: set[str], count: int) -> set[str]:
    found = notification_events(stack, "requested", lambda events: len(events) >= count, timeout=60,
                                match=lambda e: e.requested.notification.handoff_id in legs)
    return {e.requested.notification.notification_id for e in found}


def test_a_month_of_imported_history_is_recorded_and_no_gateway_is_called(env, tmp_path: Path) -> None:
    stack, hooks = env
    now = datetime.now(timezone.utc)
    # given a month of legs, one a day for billing (subscription, webhook) and accounts (webhook)
    legs = [(unique("hist"), ("billing", "accounts")[day % 2], now - timedelta(days=day, hours=1))
            for day in range(30, 0, -1)]
    ids = {leg for leg, _, _ in legs}
    calls_before = gateway_calls(stack)
    history_before = counter(stack, "notify", "handoff_notifications_suppressed", reason="history")
    # when the month is imported into the running system
    handoffctl_import(stack, write_legs(tmp_path / "month.csv", legs))
    # then notify records each warning and breach it hears of as history
    requested = requested_about(stack, ids, NOTICES_PER_LEG * len(legs))
    assert len(requested) == NOTICES_PER_LEG * len(legs)
    suppressed = notification_events(stack, "suppressed", lambda events: len(events) >= len(requested), timeout=60,
                                     match=lambda e: e.suppressed.notification_id in requested)
    assert {e.suppressed.notification_id for e in suppressed} == requested
    assert {e.suppressed.reason for e in suppressed} == {"history"}
    assert counter(stack, "notify", "handoff_notifications_suppressed", reason="history") - history_before \
        == len(requested)
    # and nothing is delivered: no gateway is called, no subscriber hears of it, nothing escalates
    assert notification_events(stack, "delivered", timeout=3, match=lambda e: e.delivered.notification_id in requested) == []
    assert notification_events(stack, "escalated", timeout=1, match=lambda e: e.escalated.notification_id in requested) == []
    assert gateway_calls(stack) == calls_before
    assert [r for r in list(hooks.received) if r["handoff_id"] in ids] == []


def test_an_import_with_notify_has_its_history_delivered(env, tmp_path: Path) -> None:
    stack, hooks = env
    leg = unique("hist-notify")
    # given an accounts leg of ten days ago, imported with --notify
    handoffctl_import(stack, write_legs(tmp_path / "notify.csv",
                                        [(leg, "accounts", datetime.now(timezone.utc) - timedelta(days=10))]),
                      "--notify")
    # then its warnings and breaches reach the accounts webhook, each once
    assert wait_for(lambda: len(hooks.at("accounts", leg)) >= NOTICES_PER_LEG, timeout=60), hooks.at("accounts", leg)
    assert sorted(r["kind"] for r in hooks.at("accounts", leg)) == ["breach"] * 2 + ["warning"] * 4
    assert hooks.repeated_deliveries() == {}
