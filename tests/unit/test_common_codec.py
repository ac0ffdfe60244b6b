"""common.codec: timestamps and durations, envelopes, and refusing unreadable records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from handoff.v1 import envelope_pb2, handoff_events_pb2, sla_events_pb2

from common.codec import (
    VALUE_TYPES,
    MalformedRecord,
    decode,
    from_duration,
    from_timestamp,
    new_envelope,
    to_duration,
    to_timestamp,
)
from common.topics import CATALOGUE, CONTACTS, HANDOFF_EVENTS, SLA_EVENTS
from tests.unit.conftest import T0

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        datetime(2025, 3, 30, 3, 30, 0, 123456, tzinfo=BERLIN),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["utc", "berlin-after-spring-change-with-microseconds", "fixed-offset"],
)
def test_a_timestamp_round_trip_keeps_the_instant_and_comes_back_in_utc(moment):
    back = from_timestamp(to_timestamp(moment))

    assert back == moment
    assert back.tzinfo is timezone.utc


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive"):
        to_timestamp(datetime(2025, 3, 3, 9, 0))


@pytest.mark.parametrize(
    "span",
    [timedelta(0), timedelta(minutes=45), timedelta(days=10, microseconds=7), timedelta(seconds=-90)],
)
def test_a_duration_round_trip_keeps_the_span(span):
    assert from_duration(to_duration(span)) == span


def test_new_envelope_carries_times_source_and_the_given_ids():
    envelope = new_envelope(
        "sla", T0, T0 + timedelta(seconds=2), event_id="e-1", request_id="r-1", traceparent="00-abc-def-01"
    )

    assert envelope.event_id == "e-1"
    assert envelope.source == "sla"
    assert envelope.request_id == "r-1"
    assert envelope.trace.traceparent == "00-abc-def-01"
    assert from_timestamp(envelope.occurred_at) == T0
    assert from_timestamp(envelope.recorded_at) == T0 + timedelta(seconds=2)


def test_new_envelope_without_an_event_id_gets_a_fresh_one_each_time():
    first = new_envelope("handoff", T0, T0).event_id
    second = new_envelope("handoff", T0, T0).event_id

    assert first and second and first != second


def test_every_catalogue_topic_has_a_value_type_to_decode_with():
    assert set(VALUE_TYPES) == {spec.name for spec in CATALOGUE}


def test_decode_reads_a_record_of_its_topic():
    value = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1"), handoff_id="h-1"
    ).SerializeToString()

    message = decode(HANDOFF_EVENTS, value)

    assert isinstance(message, handoff_events_pb2.HandoffEvent)
    assert (message.envelope.event_id, message.handoff_id) == ("e-1", "h-1")


@pytest.mark.parametrize(
    "topic, value, reason",
    [
        (HANDOFF_EVENTS, b"", "empty"),
        (HANDOFF_EVENTS, None, "empty"),
        (HANDOFF_EVENTS, b"\xff\xff\xff\xff", "not a HandoffEvent"),
        (SLA_EVENTS, b"garbage", "not a SlaEvent"),
        (CONTACTS, b"\x0a\x05ab", "not a ContactRecorded"),
        (
            HANDOFF_EVENTS,
            handoff_events_pb2.HandoffEvent(handoff_id="h-1").SerializeToString(),
            "without envelope.event_id",
        ),
        (
            SLA_EVENTS,
            sla_events_pb2.SlaEvent(envelope=envelope_pb2.Envelope(source="sla"), handoff_id="h-1").SerializeToString(),
            "without envelope.event_id",
        ),
    ],
    ids=["empty-bytes", "none", "garbage", "garbage-text", "truncated", "no-envelope", "envelope-without-id"],
)
def test_decode_refuses_an_unreadable_record_as_malformed_with_the_reason(topic, value, reason):
    with pytest.raises(MalformedRecord, match=reason):
        decode(topic, value)
