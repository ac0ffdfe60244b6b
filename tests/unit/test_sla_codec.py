"""sla.adapters.codec: clock state <-> store values, clock events -> SlaEvent records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from handoff.v1 import envelope_pb2, handoff_events_pb2, sla_events_pb2, types_pb2

from common.codec import from_duration, from_timestamp, to_timestamp
from common.streams.store import header_of
from tests.unit.conftest import T0, leg_info, policy
from sla.adapters.codec import (
    decode_state,
    encode_sla_events,
    encode_state,
    leg_info as leg_info_of,
    priority_name,
)
from sla.domain.calendar import AlwaysOpen
from sla.domain.clocks import ACK, breach_due, due_events, start, stop

ACK_TARGET = timedelta(hours=4)
DEADLINE = T0 + ACK_TARGET
RECORDED = T0 + timedelta(days=1)


def started(priority: str = "HIGH"):
    return start(leg_info(priority=priority), policy(ack=ACK_TARGET), T0)


def parse(value: bytes) -> sla_events_pb2.SlaEvent:
    message = sla_events_pb2.SlaEvent()
    message.ParseFromString(value)
    return message


@pytest.mark.parametrize(
    "make_state",
    [
        lambda: started()[0],
        lambda: breach_due(started()[0], DEADLINE + timedelta(minutes=1))[0],
        lambda: stop(started()[0], ACK, T0 + timedelta(minutes=90, microseconds=5), AlwaysOpen())[0],
    ],
    ids=["running", "breached", "stopped"],
)
def test_state_survives_a_round_trip_through_a_store_value(make_state):
    # given
    state = make_state()

    # when
    decoded, partition = decode_state(encode_state(state, partition=3))

    # then
    assert decoded == state
    assert partition == 3
    assert decoded.clocks[ACK].deadline.utcoffset() == timedelta(0)


def test_warnings_read_back_from_a_store_value_are_a_tuple_and_not_warned_again():
    # given a clock warned at half its target, stored and read back
    state, _ = due_events(started()[0], T0 + ACK_TARGET / 2 + timedelta(seconds=1), AlwaysOpen(), (0.5, 0.8))
    decoded, _ = decode_state(encode_state(state, partition=0))

    # when the same instant is looked at again
    again, events = due_events(decoded, T0 + ACK_TARGET / 2 + timedelta(seconds=1), AlwaysOpen(), (0.5, 0.8))

    # then
    assert decoded.clocks[ACK].warned == (0.5,) and isinstance(decoded.clocks[ACK].warned, tuple)
    assert events == [] and again == decoded


def test_a_store_value_carries_its_partition_due_instant_and_running_clocks_in_its_header():
    state, _ = started()

    header = header_of(encode_state(state, partition=5, due=DEADLINE))

    assert header.partition == 5
    assert header.due_us == int((DEADLINE - T0).total_seconds() * 1_000_000) + int(T0.timestamp()) * 1_000_000
    assert header.tag == 1


def test_clock_started_becomes_an_sla_event_with_envelope_deadline_and_target():
    # given
    _, [event] = started()

    # when
    message = parse(*encode_sla_events([event], RECORDED))

    # then
    assert message.WhichOneof("change") == "clock_started"
    assert message.envelope.event_id == event.event_id
    assert message.envelope.source == "sla"
    assert from_timestamp(message.envelope.occurred_at) == T0
    assert from_timestamp(message.envelope.recorded_at) == RECORDED
    assert (message.handoff_id, message.case_id, message.customer_ref) == ("h-1", "case-1", "cust-1")
    assert (message.department, message.category) == ("billing", "refund")
    assert message.priority == types_pb2.PRIORITY_HIGH
    assert message.clock == types_pb2.CLOCK_KIND_ACK
    assert message.clock_sequence == 1
    assert message.policy_version == event.clock.policy_version != ""
    assert from_timestamp(message.clock_started.started_at) == T0
    assert from_timestamp(message.clock_started.deadline) == DEADLINE
    assert from_duration(message.clock_started.target) == ACK_TARGET


def test_clock_breached_becomes_an_sla_event_with_deadline_and_breach_time():
    _, [event] = breach_due(started()[0], DEADLINE + timedelta(minutes=3))

    message = parse(*encode_sla_events([event], RECORDED))

    assert message.WhichOneof("change") == "breached"
    assert message.envelope.event_id == event.event_id
    assert from_timestamp(message.breached.deadline) == DEADLINE
    assert from_timestamp(message.breached.breached_at) == DEADLINE


def test_late_clock_met_becomes_an_sla_event_with_overdue_and_elapsed():
    # given
    stopped_at = DEADLINE + timedelta(minutes=45)
    _, [_, met] = stop(started()[0], ACK, stopped_at, AlwaysOpen())

    # when
    message = parse(*encode_sla_events([met], RECORDED))

    # then
    assert message.WhichOneof("change") == "met"
    assert message.envelope.event_id == met.event_id
    assert from_timestamp(message.met.deadline) == DEADLINE
    assert from_timestamp(message.met.stopped_at) == stopped_at
    assert message.met.late is True
    assert from_duration(message.met.overdue) == timedelta(minutes=45)
    assert from_duration(message.met.elapsed) == ACK_TARGET + timedelta(minutes=45)


def test_clock_met_at_its_deadline_carries_a_zero_overdue_and_is_not_late():
    # given
    _, [met] = stop(started()[0], ACK, DEADLINE, AlwaysOpen())

    # when
    message = parse(*encode_sla_events([met], RECORDED))

    # then the zero span is written, not left out
    assert message.met.HasField("overdue")
    assert from_duration(message.met.overdue) == timedelta(0)
    assert message.met.late is False
    assert from_duration(message.met.elapsed) == ACK_TARGET


@pytest.mark.parametrize(
    "value, name",
    [
        (types_pb2.PRIORITY_LOW, "LOW"),
        (types_pb2.PRIORITY_NORMAL, "NORMAL"),
        (types_pb2.PRIORITY_HIGH, "HIGH"),
        (types_pb2.PRIORITY_URGENT, "URGENT"),
        (types_pb2.PRIORITY_UNSPECIFIED, "NORMAL"),
        (99, "NORMAL"),
    ],
)
def test_priority_name_reads_unset_and_unknown_as_normal(value, name):
    assert priority_name(value) == name


def test_leg_info_reads_the_leg_a_created_event_opens():
    message = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1", occurred_at=to_timestamp(T0)),
        handoff_id="h-1",
        case_id="case-1",
        customer_ref="cust-1",
        department="billing",
        created=handoff_events_pb2.HandoffCreated(priority=types_pb2.PRIORITY_URGENT, category="refund"),
    )

    assert leg_info_of(message) == leg_info(priority="URGENT")
