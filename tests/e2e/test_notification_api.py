"""NotificationService end to end on the real broker: silences set, listed and expired by
an admin (and by nobody else), a breach notification listed for its department only and
acknowledged once by it, and `handoffctl silence / notifications / ack --notification` run
as processes."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import cache

import grpc
import pytest
from google.protobuf import timestamp_pb2
from handoff.v1 import handoff_service_pb2 as handoff_api
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import notification_service_pb2 as api_pb2
from handoff.v1 import notification_service_pb2_grpc as api_grpc
from handoff.v1 import notifications_pb2

from common.grpcclient import channel
from common.localkafka import LocalKafka, create_topics
from common.topics import NOTIFICATIONS, SILENCES
from devstack.stack import ADMIN_TOKEN, AGENT_TOKEN, Stack
from tests.support import (around_the_clock, pseudonym, read_events, read_records, rpc_error, unique, wait_for,
                           write_evenly, write_policies)

pytestmark = pytest.mark.e2e

BILLING_TOKEN, CLAIMS_TOKEN = "dev-token-billing", "dev-token-claims"
TIMEOUT = 15
# Acks breach within seconds, so a breach notification follows soon after a leg is opened.
POLICIES = around_the_clock("2s", "1h")
# Every leg's notifications a group of their own, sent at once, to the department's live
# feed only: what a test waits for arrives in seconds and needs no gateway.
ROUTING = """
receivers:
  - {name: contact-centre-ops, channels: [{type: subscription}]}
  - {name: billing, channels: [{type: subscription}]}
  - {name: claims, channels: [{type: subscription}]}
route:
  receiver: contact-centre-ops
  group_by: [department, handoff_id, kind]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
  routes: [{matchers: [department=billing], receiver: billing}, {matchers: [department=claims], receiver: claims}]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("notification-api")
    (workdir / "routing.yaml").write_text(ROUTING)
    with LocalKafka(workdir / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        # notify keeps its port across the restart test, so watchers reconnect to it
        stack = Stack(workdir, write_policies(workdir, POLICIES), bootstrap=kafka.bootstrap,
                      routing_file=workdir / "routing.yaml", ports={"notify": (free_port(), 0)})
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


@cache
def _channel(address: str, token: str) -> grpc.Channel:
    return channel(address, token)


def notify(stack: Stack, token: str = ADMIN_TOKEN) -> api_grpc.NotificationServiceStub:
    return api_grpc.NotificationServiceStub(_channel(stack.services["notify"].grpc, token))


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


def silence_request(*matchers: tuple[str, str], request_id: str | None = None, hours: int = 2):
    return api_pb2.CreateSilenceRequest(
        request_id=request_id or str(uuid.uuid4()), comment="e2e: known outage",
        ends_at=stamp(datetime.now(timezone.utc) + timedelta(hours=hours)),
        matchers=[api_pb2.Matcher(label=label, value=value) for label, value in matchers],
    )


def listed_silences(stack: Stack, token: str = ADMIN_TOKEN, include_expired: bool = False) -> list[str]:
    answer = notify(stack, token).ListSilences(api_pb2.ListSilencesRequest(include_expired=include_expired),
                                                timeout=TIMEOUT)
    return [s.silence_id for s in answer.silences]


# --- silences --------------------------------------------------------------------------


def test_an_admin_creates_lists_and_expires_a_silence_and_a_retry_writes_nothing_twice(stack) -> None:
    # avoidable repeats of accounts only: nothing else in this module is held back
    request = silence_request(("department", "accounts"), ("kind", "avoidable_repeat"))
    created = notify(stack).CreateSilence(request, timeout=TIMEOUT)
    retried = notify(stack).CreateSilence(request, timeout=TIMEOUT)

    assert retried == created
    assert (created.created_by, created.comment, created.expired) == ("ops-admin", "e2e: known outage", False)
    assert created.silence_id in listed_silences(stack)
    records = read_records(stack.bootstrap, SILENCES.name, lambda found: False, timeout=3)
    assert [r.key.decode() for r in records].count(created.silence_id) == 1

    expired = notify(stack).ExpireSilence(api_pb2.ExpireSilenceRequest(silence_id=created.silence_id),
                                          timeout=TIMEOUT)
    again = notify(stack).ExpireSilence(api_pb2.ExpireSilenceRequest(silence_id=created.silence_id), timeout=TIMEOUT)

    assert expired.expired and again == expired
    assert created.silence_id not in listed_silences(stack)
    assert created.silence_id in listed_silences(stack, include_expired=True)


def test_only_admins_set_silences_and_a_department_lists_those_that_pin_it(stack) -> None:
    pinned = notify(stack).CreateSilence(silence_request(("department", "claims"), ("kind", "avoidable_repeat")),
                                         timeout=TIMEOUT)
    other = notify(stack).CreateSilence(silence_request(("department", "accounts"), ("kind", "new_leg")),
                                        timeout=TIMEOUT)

    denied = rpc_error(lambda: notify(stack, CLAIMS_TOKEN).CreateSilence(
        silence_request(("department", "claims")), timeout=TIMEOUT))
    expire_denied = rpc_error(lambda: notify(stack, CLAIMS_TOKEN).ExpireSilence(
        api_pb2.ExpireSilenceRequest(silence_id=pinned.silence_id), timeout=TIMEOUT))
    agent_denied = rpc_error(lambda: listed_silences(stack, AGENT_TOKEN))

    assert denied.code() == expire_denied.code() == agent_denied.code() == grpc.StatusCode.PERMISSION_DENIED
    seen_by_claims = listed_silences(stack, CLAIMS_TOKEN)
    assert pinned.silence_id in seen_by_claims and other.silence_id not in seen_by_claims
    assert {pinned.silence_id, other.silence_id} <= set(listed_silences(stack))


@pytest.mark.parametrize("request_, field", [
    (silence_request(("team", "billing")), "matchers[0].label"),
    (silence_request(), "matchers"),
    (silence_request(("department", "billing"), hours=-1), "ends_at"),
    (api_pb2.CreateSilenceRequest(comment="x", matchers=[api_pb2.Matcher(label="kind", value="breach")]), "request_id"),
])
def test_a_bad_silence_is_invalid_argument_naming_the_field(stack, request_, field) -> None:
    error = rpc_error(lambda: notify(stack).CreateSilence(request_, timeout=TIMEOUT))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


def test_a_silence_record_notify_cannot_read_goes_to_its_dead_letter_topic_with_the_reason(stack) -> None:
    key = unique("unreadable-silence").encode()
    write_evenly(stack.bootstrap, SILENCES.name, iter([(key, b"\x0a\xff not a silence")]), count=1, seconds=0)

    def dead_letters() -> list:
        return [r for r in read_records(stack.bootstrap, SILENCES.dlq, lambda found: False, timeout=2) if r.key == key]

    assert wait_for(lambda: len(dead_letters()) == 1, timeout=TIMEOUT)
    headers = {name: value.decode() for name, value in dead_letters()[0].headers}
    assert (headers["dlq.topic"], headers["dlq.consumer"]) == (SILENCES.name, "notify-silences")
    assert headers["dlq.error"].startswith("not a Silence")


def test_expiring_an_unknown_silence_is_not_found(stack) -> None:
    error = rpc_error(lambda: notify(stack).ExpireSilence(
        api_pb2.ExpireSilenceRequest(silence_id="no-such-silence"), timeout=TIMEOUT))

    assert error.code() == grpc.StatusCode.NOT_FOUND


# --- notifications ---------------------------------------------------------------------


def about(notification, handoff_id: str) -> bool:
    """Whether a notification (or a digest of them) is about the leg."""
    return notification.handoff_id == handoff_id or any(item.handoff_id == handoff_id for item in notification.items)


def listed(stack: Stack, token: str, department: str = "") -> list:
    answer = notify(stack, token).ListNotifications(
        api_pb2.ListNotificationsRequest(department=department, page_size=500), timeout=TIMEOUT)
    return list(zip(answer.notifications, answer.states))


def open_leg(stack: Stack, department: str = "billing") -> handoff_api.Handoff:
    """A leg left to breach its 2 s ack target."""
    handoffs = handoff_grpc.HandoffServiceStub(_channel(stack.services["handoff"].grpc, AGENT_TOKEN))
    return handoffs.CreateHandoff(handoff_api.CreateHandoffRequest(
        request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(), department=department),
        timeout=TIMEOUT)


def test_a_silenced_breach_is_recorded_as_suppressed_and_delivered_again_once_expired(stack) -> None:
    silence = notify(stack).CreateSilence(silence_request(("department", "accounts"), ("kind", "breach")),
                                          timeout=TIMEOUT)
    held = open_leg(stack, "accounts")

    def state_of_breach(leg) -> api_pb2.NotificationState | None:
        return next((state for note, state in listed(stack, ADMIN_TOKEN, "accounts")
                     if about(note, leg.handoff_id) and note.kind == notifications_pb2.NOTIFICATION_KIND_BREACH
                     and (state.suppressed_reason or state.delivered_channels)), None)

    assert wait_for(lambda: state_of_breach(held) is not None, timeout=60)
    state = state_of_breach(held)
    assert (state.suppressed_reason, state.silence_id, list(state.delivered_channels)) == (
        "silence", silence.silence_id, [])

    notify(stack).ExpireSilence(api_pb2.ExpireSilenceRequest(silence_id=silence.silence_id), timeout=TIMEOUT)
    heard = open_leg(stack, "accounts")
    assert wait_for(lambda: state_of_breach(heard) is not None, timeout=60)
    assert (state_of_breach(heard).suppressed_reason, list(state_of_breach(heard).delivered_channels)) == (
        "", ["subscription"])


@pytest.fixture(scope="module")
def breach_notification(stack: Stack):
    """A billing leg left to breach its 2 s ack target, and the notification about it."""
    leg = open_leg(stack)
    found = []

    def notified() -> bool:
        found[:] = [n for n, _ in listed(stack, BILLING_TOKEN) if about(n, leg.handoff_id)]
        return bool(found)

    assert wait_for(notified, timeout=90), "no notification about the breached leg was listed"
    return leg, found[0]


def test_a_breach_notification_is_listed_for_its_department_only(stack, breach_notification) -> None:
    leg, notification = breach_notification

    assert notification.department == "billing"
    assert any(about(n, leg.handoff_id) for n, _ in listed(stack, ADMIN_TOKEN, "billing"))
    assert not any(about(n, leg.handoff_id) for n, _ in listed(stack, CLAIMS_TOKEN))
    for token, department in ((CLAIMS_TOKEN, "billing"), (AGENT_TOKEN, "billing"), (AGENT_TOKEN, "")):
        error = rpc_error(lambda: listed(stack, token, department))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_department_acknowledges_its_notification_once(stack, breach_notification) -> None:
    _, notification = breach_notification
    notification_id = notification.notification_id
    denied = rpc_error(lambda: notify(stack, CLAIMS_TOKEN).Acknowledge(
        api_pb2.AcknowledgeRequest(request_id=str(uuid.uuid4()), notification_id=notification_id), timeout=TIMEOUT))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    request = api_pb2.AcknowledgeRequest(request_id=str(uuid.uuid4()), notification_id=notification_id)
    first = notify(stack, BILLING_TOKEN).Acknowledge(request, timeout=TIMEOUT)
    retry = notify(stack, BILLING_TOKEN).Acknowledge(request, timeout=TIMEOUT)
    repeat = notify(stack, BILLING_TOKEN).Acknowledge(
        api_pb2.AcknowledgeRequest(request_id=str(uuid.uuid4()), notification_id=notification_id), timeout=TIMEOUT)

    assert (first.notification_id, first.already_acknowledged) == (notification_id, False)
    assert retry == first
    assert repeat.already_acknowledged
    events = read_events(stack.bootstrap, NOTIFICATIONS,
                         lambda e: e.WhichOneof("change") == "acknowledged" and e.acknowledged.notification_id == notification_id,
                         lambda found: False, timeout=3)
    assert [(e.acknowledged.acknowledged_by, e.receiver, e.envelope.request_id) for e in events] == [
        ("billing-team", notification.receiver, request.request_id)]
    state = next(s for n, s in listed(stack, BILLING_TOKEN) if n.notification_id == notification_id)
    assert (state.acknowledged, state.acknowledged_by) == (True, "billing-team")


@pytest.mark.parametrize("request_, code, field", [
    (api_pb2.AcknowledgeRequest(request_id="r-1", notification_id="no-such-notification"),
     grpc.StatusCode.NOT_FOUND, ""),
    (api_pb2.AcknowledgeRequest(notification_id="n-1"), grpc.StatusCode.INVALID_ARGUMENT, "request_id"),
    (api_pb2.AcknowledgeRequest(request_id="r-1"), grpc.StatusCode.INVALID_ARGUMENT, "notification_id"),
])
def test_unknown_or_malformed_acknowledgements(stack, request_, code, field) -> None:
    error = rpc_error(lambda: notify(stack, BILLING_TOKEN).Acknowledge(request_, timeout=TIMEOUT))

    assert error.code() == code
    assert error.details().startswith(f"{field}:" if field else "notification no-such-notification")


def test_bad_list_arguments_name_the_field(stack) -> None:
    for request, field in ((api_pb2.ListNotificationsRequest(page_size=-1), "page_size"),
                           (api_pb2.ListNotificationsRequest(page_token="nope"), "page_token"),
                           (api_pb2.ListNotificationsRequest(department="Billing!"), "department")):
        error = rpc_error(lambda: notify(stack).ListNotifications(request, timeout=TIMEOUT))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith(f"{field}:")


# --- handoffctl ------------------------------------------------------------------------


def handoffctl(stack: Stack, *args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess:
    env = {**os.environ, "NOTIFY_GRPC": stack.services["notify"].grpc, "HANDOFF_TOKEN": token, "COLUMNS": "200"}
    env.pop("HANDOFF_CA", None)
    return subprocess.run([sys.executable, "-m", "handoffctl.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_handoffctl_adds_lists_and_expires_silences(stack) -> None:
    added = handoffctl(stack, "silence", "add", "--match", "department=field-service",
                       "--match", 'priority=~"HIGH|URGENT"', "--for", "2h", "--comment", "van fleet down", "--json")
    assert added.returncode == 0, added.stderr
    silence = json.loads(added.stdout)
    assert [(m["label"], m["value"], m.get("is_regex", False)) for m in silence["matchers"]] == [
        ("department", "field-service", False), ("priority", "HIGH|URGENT", True)]

    table = handoffctl(stack, "silence", "list")
    assert table.returncode == 0 and silence["silence_id"] in table.stdout and "van fleet down" in table.stdout
    expired = handoffctl(stack, "silence", "expire", silence["silence_id"])
    assert expired.returncode == 0 and "expired" in expired.stdout
    listing = handoffctl(stack, "silence", "list", "--all", "--json")
    assert [s.get("expired") for s in json.loads(listing.stdout)["silences"]
            if s["silence_id"] == silence["silence_id"]] == [True]

    denied = handoffctl(stack, "silence", "add", "--match", "department=billing", "--for", "1h", "--comment", "x",
                        token=BILLING_TOKEN)
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    bad = handoffctl(stack, "silence", "add", "--match", "department==billing", "--for", "1h", "--comment", "x")
    assert bad.returncode == 2 and "--match" in bad.stderr


def test_handoffctl_lists_and_acknowledges_notifications(stack, breach_notification) -> None:
    leg, notification = breach_notification
    shown = handoffctl(stack, "notifications", "--department", "billing", "--json", token=BILLING_TOKEN)
    assert shown.returncode == 0, shown.stderr
    assert notification.notification_id in [n["notification_id"] for n in json.loads(shown.stdout)["notifications"]]
    table = handoffctl(stack, "notifications", token=BILLING_TOKEN)
    assert table.returncode == 0 and notification.notification_id in table.stdout

    acked = handoffctl(stack, "ack", "--notification", notification.notification_id, token=BILLING_TOKEN)
    assert acked.returncode == 0, acked.stderr
    assert notification.notification_id in acked.stdout and "acknowledged" in acked.stdout
    other = handoffctl(stack, "ack", "--notification", notification.notification_id, token=CLAIMS_TOKEN)
    assert other.returncode == 1 and "PERMISSION_DENIED" in other.stderr
    missing = handoffctl(stack, "ack", "--notification", "no-such-notification", token=BILLING_TOKEN)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def watch(stack: Stack, *args: str) -> tuple[subprocess.Popen, queue.Queue]:
    """`handoffctl watch billing --json ...` running, and its output lines as they come."""
    env = {**os.environ, "NOTIFY_GRPC": stack.services["notify"].grpc, "HANDOFF_TOKEN": BILLING_TOKEN}
    env.pop("HANDOFF_CA", None)
    process = subprocess.Popen([sys.executable, "-m", "handoffctl.main", "watch", "billing", "--json", *args],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    return process, lines


def printed_until_about(lines: queue.Queue, handoff_id: str, timeout: float = 120) -> list[dict]:
    """The notifications printed up to the first about the leg (TimeoutError if none comes)."""
    deadline, printed = time.monotonic() + timeout, []
    while not printed or not (printed[-1].get("handoff_id") == handoff_id
                              or any(i.get("handoff_id") == handoff_id for i in printed[-1].get("items", ()))):
        try:
            printed.append(json.loads(lines.get(timeout=max(deadline - time.monotonic(), 0.1))))
        except queue.Empty:
            raise TimeoutError(f"no notification about {handoff_id}; printed {printed}") from None
    return printed


def stopped(process: subprocess.Popen) -> str:
    process.terminate()
    return process.communicate(timeout=10)[1]


def test_handoffctl_watch_resumes_from_a_cursor_with_what_it_missed(stack) -> None:
    process, lines = watch(stack)
    time.sleep(3)  # subscribed before the leg breaches
    try:
        seen = printed_until_about(lines, open_leg(stack).handoff_id)
    finally:
        stopped(process)
    cursor = seen[-1]["cursor"]

    missed = open_leg(stack)  # breaches while nobody watches
    process, lines = watch(stack, "--cursor", cursor)
    try:
        resumed = printed_until_about(lines, missed.handoff_id)
    finally:
        stopped(process)
    assert cursor not in [item["cursor"] for item in resumed], "the resumed watch repeated the last one seen"


def test_handoffctl_watch_reconnects_after_a_notify_restart_and_misses_nothing(stack) -> None:
    process, lines = watch(stack)
    time.sleep(3)
    try:
        before = printed_until_about(lines, open_leg(stack).handoff_id)
        stack.services.pop("notify").stop()
        missed = open_leg(stack)  # breaches while notify is down
        stack.start_service("notify")
        after = printed_until_about(lines, missed.handoff_id)
    finally:
        errors = stopped(process)
    assert "reconnecting" in errors
    cursors = [item["cursor"] for item in before + after]
    assert len(cursors) == len(set(cursors)), "a notification was printed twice"
