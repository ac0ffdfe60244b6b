"""handoffctl for scripts and people: plain JSON (docs/cli-json.md), plain columns when
piped, flags shown as flags, and a `watch` that gives up on a missing server and says so."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import notifications_pb2
from handoff.v1 import sla_service_pb2 as sla_pb2
from handoff.v1 import types_pb2

from common.codec import to_duration, to_timestamp
from handoffctl.output import as_dict


def test_json_is_plain_snake_case_with_every_field_and_enums_without_prefix():
    leg = handoff_pb2.Handoff(handoff_id="h-1", status=types_pb2.LEG_STATUS_IN_PROGRESS,
                              priority=types_pb2.PRIORITY_HIGH,
                              created_at=to_timestamp(datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)))
    plain = as_dict(leg)
    assert (plain["status"], plain["priority"], plain["created_at"]) == ("in_progress", "high", "2025-03-01T09:30:00Z")
    # zero values are present; an unset time is null
    assert (plain["reopen_count"], plain["breached"], plain["case_id"], plain["resolved_at"]) == (0, False, "", None)
    assert set(plain) == {field.name for field in handoff_pb2.Handoff.DESCRIPTOR.fields}


def test_json_numbers_are_numbers_durations_seconds_and_empty_lists_lists():
    card = sla_pb2.Scorecard(legs=12, breaches=0, ack_compliance=0.5, tta_p50=to_duration(timedelta(minutes=90)),
                             repeat_contacts=[sla_pb2.RepeatCount(cause=types_pb2.REPEAT_CAUSE_SLA_BREACHED, count=3)])
    plain = json.loads(json.dumps(as_dict(card)))
    assert (plain["legs"], plain["breaches"], plain["ack_compliance"], plain["tta_p50"]) == (12, 0, 0.5, 5400.0)
    assert plain["repeat_contacts"] == [{"cause": "sla_breached", "count": 3}]
    note = as_dict(notifications_pb2.Notification(kind=notifications_pb2.NOTIFICATION_KIND_AVOIDABLE_REPEAT))
    assert (note["kind"], note["items"], note["labels"]) == ("avoidable_repeat", [], {})


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("HANDOFF_CA", None)
    return subprocess.run([sys.executable, "-m", "handoffctl.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_json_is_offered_as_a_flag_not_a_bool_value():
    shown = _cli("scorecard", "--help")
    line = next(row for row in shown.stdout.splitlines() if "--json" in row)
    assert "<bool>" not in line and "BOOLEAN" not in line


def test_watch_gives_up_when_no_server_answers_and_says_so():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    watched = _cli("watch", "billing", "--notify", f"127.0.0.1:{port}", "--token", "t", "--give-up-after", "2")
    assert watched.returncode == 1
    assert f"no notify service reachable at 127.0.0.1:{port} for 2s; giving up" in watched.stderr
