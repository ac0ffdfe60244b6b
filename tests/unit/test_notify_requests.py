"""Stage 1: source events -> routed NotificationRequested events, once each; leg ends acknowledge them."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from handoff.v1 import contacts_pb2, envelope_pb2, handoff_events_pb2, notifications_pb2, sla_events_pb2, types_pb2

from common.codec import to_timestamp
from notify.domain.requests import End, Leg, breach_notice, explicitly_matches, new_leg_notice, requests
from notify.entrypoints.requester import Requester, leg_from, leg_value
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import recorder, routing_of

ROUTING = """
receivers:
  - name: ops
    channels: [{type: log}]
  - name: billing
    channels: [{type: subscription}, {type: webhook, name: team-chat, url: "http://127.0.0.1:9/hooks/b"}]
  - name: billing-oncall
    channels: [{type: webhook, url: "http://127.0.0.1:9/hooks/oncall"}]
  - name: billing-head
    channels: [{type: email, to: [head@example.org]}]
route:
  receiver: ops
  routes:
    - matchers: [priority=URGENT]
      continue: true
      routes:
        - {matchers: [department=billing], receiver: billing-oncall}
    - matchers: [department=billing]
      receiver: billing
      routes:
        - {matchers: [kind=avoidable_repeat], receiver: billing-head}
        - {matchers: ["kind=~new_leg|breach"], receiver: billing}
"""


class FixedClock:
    def now(self):
        return T0 + timedelta(minutes=5)


@pytest.fixture
def routing(tmp_path: Path):
    return routing_of(tmp_path, ROUTING)


@pytest.fixture
def stage1(routing):
    sent, send = recorder()
    requester = Requester({}, routing, send, FixedClock())
    return requester, sent


def envelope(event_id: str = "e-1") -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(event_id=event_id, occurred_at=to_timestamp(T0))


def sla(change: str, priority=types_pb2.PRIORITY_HIGH, handoff_id: str = "h-1") -> sla_events_pb2.SlaEvent:
    event = sla_events_pb2.SlaEvent(
        envelope=envelope(), handoff_id=handoff_id, case_id="case-1", customer_ref="cust-1", department="billing",
        priority=priority, category="refund", clock=types_pb2.CLOCK_KIND_ACK, clock_sequence=1)
    if change == "breached":
        event.breached.deadline.CopyFrom(to_timestamp(T0))
    elif change == "warning":
        event.warning.CopyFrom(sla_events_pb2.ClockWarning(fraction=0.8, deadline=to_timestamp(T0)))
    else:
        event.clock_started.deadline.CopyFrom(to_timestamp(T0))
    return event


def leg_event(change: str, handoff_id: str = "h-1", event_id: str = "e-1") -> handoff_events_pb2.HandoffEvent:
    event = handoff_events_pb2.HandoffEvent(envelope=envelope(event_id), handoff_id=handoff_id, case_id="case-1",
                                            customer_ref="cust-1", department="billing")
    changes = {
        "created": lambda: event.created.CopyFrom(handoff_events_pb2.HandoffCreated(
            priority=types_pb2.PRIORITY_NORMAL, category="refund")),
        "acknowledged": lambda: event.acknowledged.CopyFrom(handoff_events_pb2.HandoffAcknowledged()),
        "resolved": lambda: event.resolved.CopyFrom(handoff_events_pb2.HandoffResolved()),
        "heartbeat": lambda: event.heartbeat.CopyFrom(handoff_events_pb2.EventTimeHeartbeat()),
    }
    changes[change]()
    return event


def requested(sent) -> list[tuple[str, notifications_pb2.Notification, list[str]]]:
    return [(key, e.requested.notification, list(e.requested.channels))
            for key, e in sent if e.WhichOneof("change") == "requested"]


def test_a_breach_is_requested_of_the_routed_receiver_with_its_channels_and_labels(stage1) -> None:
    requester, sent = stage1
    requester.on_sla_event(sla("breached"), 0)
    [(key, notification, channels)] = requested(sent)
    assert (key, notification.receiver, channels) == ("billing", "billing", ["subscription", "team-chat"])
    assert notification.kind == notifications_pb2.NOTIFICATION_KIND_BREACH
    assert dict(notification.labels) == {"department": "billing", "priority": "HIGH", "kind": "breach",
                                         "category": "refund", "clock": "ack", "handoff_id": "h-1"}
    assert sent[0][1].envelope.event_id == notification.notification_id


def test_a_breach_read_twice_is_requested_once(stage1) -> None:
    requester, sent = stage1
    requester.on_sla_event(sla("breached"), 0)
    requester.on_sla_event(sla("breached"), 0)
    assert len(requested(sent)) == 1


def test_an_urgent_breach_reaches_every_receiver_a_continue_route_leads_to(stage1) -> None:
    requester, sent = stage1
    requester.on_sla_event(sla("breached", priority=types_pb2.PRIORITY_URGENT), 0)
    assert [key for key, _, _ in requested(sent)] == ["billing-oncall", "billing"]
    ids = [n.notification_id for _, n, _ in requested(sent)]
    assert len(set(ids)) == 2  # one id per (key, receiver)


def test_warnings_are_requested_and_clock_starts_are_not(stage1) -> None:
    requester, sent = stage1
    requester.on_sla_event(sla("clock_started"), 0)
    assert sent == []
    requester.on_sla_event(sla("warning"), 0)
    [(_, notification, _)] = requested(sent)
    assert notification.kind == notifications_pb2.NOTIFICATION_KIND_WARNING


def test_a_new_leg_is_told_only_where_a_route_asks_for_new_legs(stage1, routing) -> None:
    requester, sent = stage1
    requester.on_handoff_event(leg_event("created"), 0)
    assert [(key, n.kind) for key, n, _ in requested(sent)] == [
        ("billing", notifications_pb2.NOTIFICATION_KIND_NEW_LEG)]
    # the catch-all that takes what nobody else does is not told of a new leg elsewhere
    other = new_leg_notice(Leg("h-2", "c", "cust", "marketing"), T0)
    assert requests(other, routing.route(other.labels), routing.root) == []
    assert not explicitly_matches(routing.root, routing.route(other.labels)[0], "kind", "new_leg")


def test_acknowledging_the_leg_acknowledges_what_was_requested_about_it_once(stage1) -> None:
    requester, sent = stage1
    requester.on_handoff_event(leg_event("created"), 0)
    requester.on_sla_event(sla("breached"), 0)
    ids = {n.notification_id for _, n, _ in requested(sent)}
    requester.on_handoff_event(leg_event("acknowledged"), 0)
    acks = [e.acknowledged for _, e in sent if e.WhichOneof("change") == "acknowledged"]
    assert {a.notification_id for a in acks} == ids
    assert {a.acknowledged_by for a in acks} == {"leg acknowledged"}
    requester.on_handoff_event(leg_event("acknowledged", event_id="e-2"), 0)
    assert len([e for _, e in sent if e.WhichOneof("change") == "acknowledged"]) == len(ids)


def test_resolving_a_breached_leg_sends_a_resolution_notice_and_ends_its_escalation(stage1) -> None:
    requester, sent = stage1
    requester.on_handoff_event(leg_event("created"), 0)
    requester.on_sla_event(sla("breached"), 0)
    sent.clear()
    requester.on_handoff_event(leg_event("resolved", event_id="e-9"), 0)
    changes = [e.WhichOneof("change") for _, e in sent]
    assert changes.count("acknowledged") == 2 and changes[-1] == "requested"
    [(_, notice, _)] = requested(sent)
    assert notice.kind == notifications_pb2.NOTIFICATION_KIND_RESOLVED_AFTER_BREACH
    assert {e.acknowledged.acknowledged_by for _, e in sent if e.acknowledged.notification_id} == {"leg resolved"}


def test_resolving_a_leg_that_never_breached_sends_no_notice(stage1) -> None:
    requester, sent = stage1
    requester.on_handoff_event(leg_event("created"), 0)
    sent.clear()
    requester.on_handoff_event(leg_event("resolved"), 0)
    assert requested(sent) == []


def test_heartbeats_of_event_time_are_skipped(stage1) -> None:
    requester, sent = stage1
    requester.on_handoff_event(leg_event("heartbeat"), 0)
    assert sent == []


@pytest.mark.parametrize("cause, told", [(types_pb2.REPEAT_CAUSE_SLA_BREACHED, True),
                                         (types_pb2.REPEAT_CAUSE_WITHIN_SLA, False),
                                         (types_pb2.REPEAT_CAUSE_AFTER_RESOLUTION, False)])
def test_only_avoidable_repeat_contacts_are_notified(stage1, cause, told) -> None:
    requester, sent = stage1
    repeat = contacts_pb2.RepeatContactDetected(
        envelope=envelope(), contact_id="ct-2", customer_ref="cust-1", cause=cause, handoff_id="h-1",
        case_id="case-1", department="billing", contacted_at=to_timestamp(T0))
    requester.on_repeat_contact(repeat, 0)
    assert [(k, n.kind) for k, n, _ in requested(sent)] == (
        [("billing-head", notifications_pb2.NOTIFICATION_KIND_AVOIDABLE_REPEAT)] if told else [])


def test_a_notice_keys_on_what_it_is_about_not_on_the_record_that_carried_it() -> None:
    leg = Leg("h-1", "case-1", "cust-1", "billing", "HIGH", "refund")
    assert breach_notice(leg, "ack", T0).key == f"breach:h-1:ack:{T0.isoformat()}"
    assert breach_notice(leg, "ack", T0) == breach_notice(leg, "ack", T0)


def at(event, instant):
    """`event` as if it happened at `instant`."""
    event.envelope.occurred_at.CopyFrom(to_timestamp(instant))
    return event


def breach_at(deadline) -> sla_events_pb2.SlaEvent:
    event = at(sla("breached"), deadline)
    event.breached.deadline.CopyFrom(to_timestamp(deadline))
    return event


def acknowledged_then_breached(requester, sent, acknowledged_at, breached_at):
    """The leg acknowledged at `acknowledged_at`, then a breach at `breached_at` read: what it requested."""
    requester.on_handoff_event(leg_event("created"), 0)
    requester.on_handoff_event(at(leg_event("acknowledged", event_id="e-2"), acknowledged_at), 0)
    sent.clear()
    requester.on_sla_event(breach_at(breached_at), 0)
    [(_, event)] = sent
    return event


def test_a_breach_read_after_the_leg_was_acknowledged_is_requested_as_acknowledged_then(stage1) -> None:
    requester, sent = stage1
    # the acknowledgement (at T0 + 20 min) is read before the breach it followed (at T0 + 15 min)
    event = acknowledged_then_breached(requester, sent, T0 + timedelta(minutes=20), T0 + timedelta(minutes=15))
    assert event.requested.notification.kind == notifications_pb2.NOTIFICATION_KIND_BREACH
    assert event.requested.acknowledged_at.ToDatetime().replace(tzinfo=T0.tzinfo) == T0 + timedelta(minutes=20)
    assert event.requested.acknowledged_by == "leg acknowledged"
    # and the leg does not hold it open: a later resolution acknowledges nothing more
    sent.clear()
    requester.on_handoff_event(at(leg_event("resolved", event_id="e-3"), T0 + timedelta(hours=1)), 0)
    assert [e.WhichOneof("change") for _, e in sent] == ["requested"]  # the resolution notice only


def test_a_breach_read_after_the_leg_was_resolved_still_earns_its_resolution_notice(stage1) -> None:
    requester, sent = stage1
    requester.on_handoff_event(leg_event("created"), 0)
    requester.on_handoff_event(at(leg_event("resolved", event_id="e-9"), T0 + timedelta(hours=1)), 0)
    assert requested(sent)[-1][1].kind == notifications_pb2.NOTIFICATION_KIND_NEW_LEG  # not breached yet
    sent.clear()
    requester.on_sla_event(breach_at(T0 + timedelta(minutes=15)), 0)
    [breach, resolution] = [e.requested for _, e in sent]
    assert (breach.notification.kind, breach.acknowledged_by) == (
        notifications_pb2.NOTIFICATION_KIND_BREACH, "leg resolved")
    assert resolution.notification.kind == notifications_pb2.NOTIFICATION_KIND_RESOLVED_AFTER_BREACH
    assert resolution.notification.key == "resolved_after_breach:h-1:e-9"
    assert not resolution.HasField("acknowledged_at")


@pytest.mark.parametrize("breach_read_last", [False, True])
def test_a_breach_and_the_resolution_request_the_same_ids_whichever_is_read_first(routing, breach_read_last):
    sent, send = recorder()
    requester = Requester({}, routing, send, FixedClock())
    breach = lambda: requester.on_sla_event(breach_at(T0 + timedelta(minutes=15)), 0)  # noqa: E731
    resolution = lambda: requester.on_handoff_event(  # noqa: E731
        at(leg_event("resolved", event_id="e-9"), T0 + timedelta(hours=1)), 0)
    requester.on_handoff_event(leg_event("created"), 0)
    for step in (resolution, breach) if breach_read_last else (breach, resolution):
        step()
    assert sorted(n.key for _, n, _ in requested(sent)) == [
        f"breach:h-1:ack:{(T0 + timedelta(minutes=15)).isoformat()}", "new_leg:h-1", "resolved_after_breach:h-1:e-9"]


def test_a_breach_after_the_leg_was_acknowledged_is_not_acknowledged_by_it(stage1) -> None:
    requester, sent = stage1
    # the resolve clock breaches later: the notice is open, and the resolution acknowledges it
    event = acknowledged_then_breached(requester, sent, T0 + timedelta(minutes=5), T0 + timedelta(hours=8))
    assert not event.requested.HasField("acknowledged_at")
    sent.clear()
    requester.on_handoff_event(at(leg_event("resolved", event_id="e-3"), T0 + timedelta(hours=9)), 0)
    assert [e.acknowledged.notification_id for _, e in sent if e.WhichOneof("change") == "acknowledged"] == [
        event.requested.notification.notification_id]


def test_on_event_time_a_heartbeat_is_passed_on_after_what_was_requested_before_it(routing) -> None:
    sent, send = recorder()
    forwarded = []

    def forward(instant, partition: int) -> None:
        forwarded.append((instant, partition, len(sent)))

    requester = Requester({}, routing, send, FixedClock(), forward)
    requester.on_sla_event(sla("breached"), 2)
    requester.on_handoff_event(at(leg_event("heartbeat"), T0 + timedelta(hours=2)), 2)
    assert forwarded == [(T0 + timedelta(hours=2), 2, 1)]
    assert len(sent) == 1  # the heartbeat itself is no notification


def test_a_leg_keeps_every_field_across_the_table() -> None:
    leg = Leg("h-1", "case-1", "cust-1", "billing", "HIGH", "refund", True, (("n-1", "billing"),),
              (End(T0, "leg acknowledged"), End(T0 + timedelta(hours=1), "leg resolved", "e-9")),
              notify_history=True, requested=("n-1", "n-2"))
    value = leg_value(leg)
    assert set(value) == {field.name for field in dataclasses.fields(Leg)}
    assert leg_from(json.loads(json.dumps(value))) == leg


def test_a_leg_imported_with_notify_has_its_notifications_delivered_however_old(stage1) -> None:
    requester, sent = stage1
    created = leg_event("created")
    created.created.notify_history = True
    requester.on_handoff_event(created, 0)
    requester.on_sla_event(sla("breached"), 0)
    requester.on_handoff_event(leg_event("created", handoff_id="h-2"), 0)
    requester.on_sla_event(sla("breached", handoff_id="h-2"), 0)
    flags = {e.requested.notification.handoff_id: e.requested.deliver_history
             for _, e in sent if e.WhichOneof("change") == "requested"
             and e.requested.notification.kind == notifications_pb2.NOTIFICATION_KIND_BREACH}
    assert flags == {"h-1": True, "h-2": False}
