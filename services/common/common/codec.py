"""Protobuf helpers shared by every codec: timestamps, durations, envelopes, record decoding.

Only codec modules import generated `*_pb2` classes; they build on these helpers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message

from handoff.v1 import (
    contacts_pb2,
    envelope_pb2,
    handoff_commands_pb2,
    handoff_events_pb2,
    notification_service_pb2,
    notifications_pb2,
    sla_events_pb2,
    types_pb2,
)

from common.ids import new_event_id
from common.topics import (
    CONTACTS,
    HANDOFF_COMMANDS,
    HANDOFF_EVENTS,
    HANDOFF_REPLIES,
    NOTIFICATIONS,
    REPEAT_CONTACTS,
    SILENCES,
    SLA_EVENTS,
    TopicSpec,
)

VALUE_TYPES: dict[str, type[Message]] = {
    CONTACTS.name: contacts_pb2.ContactRecorded,
    HANDOFF_EVENTS.name: handoff_events_pb2.HandoffEvent,
    HANDOFF_COMMANDS.name: handoff_commands_pb2.HandoffCommand,
    HANDOFF_REPLIES.name: handoff_commands_pb2.CommandReply,
    SLA_EVENTS.name: sla_events_pb2.SlaEvent,
    REPEAT_CONTACTS.name: contacts_pb2.RepeatContactDetected,
    NOTIFICATIONS.name: notifications_pb2.NotificationEvent,
    SILENCES.name: notification_service_pb2.Silence,
}


class MalformedRecord(ValueError):
    """A record that cannot be read as its topic's value type; it belongs in the DLQ."""


# common.clock.EPOCH; not imported from there, which would import the settings (and the engine) here.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# ClockKind values and the clock names the domain uses.
CLOCK_NAMES = {types_pb2.CLOCK_KIND_ACK: "ack", types_pb2.CLOCK_KIND_RESOLVE: "resolve"}


_PRIORITY_NAMES = {value: name.removeprefix("PRIORITY_") for name, value in types_pb2.Priority.items()
                   if value != types_pb2.PRIORITY_UNSPECIFIED}


def priority_name(value: int) -> str:
    """'HIGH' for PRIORITY_HIGH; unset or unknown values count as NORMAL."""
    return _PRIORITY_NAMES.get(value, "NORMAL")


def timestamp_fields(moment: datetime) -> tuple[int, int]:
    """A protobuf Timestamp's (seconds, nanos) for an aware datetime."""
    # From the span's own fields (normalised: days may be negative, the rest never is), as
    # divmod(epoch_us(moment), 10**6) would give them, without the division; protobuf's
    # FromDatetime is twice as slow, and this runs several times per record.
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every instant must carry a time zone")
    since = moment - _EPOCH
    return since.days * 86_400 + since.seconds, since.microseconds * 1000


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp for an aware datetime."""
    seconds, nanos = timestamp_fields(moment)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    """An aware UTC datetime for a protobuf Timestamp (to the microsecond, as datetimes go)."""
    # Directly from the fields: protobuf's ToDatetime is several times slower, and this runs per record.
    try:
        return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {stamp.seconds} s, {stamp.nanos} ns since the epoch") from None


def to_duration(span: timedelta) -> duration_pb2.Duration:
    """A protobuf Duration for a timedelta."""
    duration = duration_pb2.Duration()
    duration.FromTimedelta(span)
    return duration


def from_duration(duration: duration_pb2.Duration) -> timedelta:
    """A timedelta for a protobuf Duration."""
    return duration.ToTimedelta()


def new_envelope(
    source: str,
    occurred_at: datetime,
    recorded_at: datetime,
    *,
    event_id: str | None = None,
    request_id: str = "",
    traceparent: str = "",
) -> envelope_pb2.Envelope:
    """The envelope every event carries."""
    return envelope_pb2.Envelope(
        event_id=event_id or new_event_id(),
        occurred_at=to_timestamp(occurred_at),
        recorded_at=to_timestamp(recorded_at),
        source=source,
        request_id=request_id,
        trace=envelope_pb2.TraceContext(traceparent=traceparent),
    )


def decode(topic: TopicSpec, payload: bytes | None) -> Message:
    """Parse a record of `topic`, or raise MalformedRecord with the reason."""
    if not payload:
        raise MalformedRecord("empty value")
    message = VALUE_TYPES[topic.name]()
    try:
        message.ParseFromString(payload)
    except DecodeError as error:
        raise MalformedRecord(f"not a {message.DESCRIPTOR.name}: {error}") from error
    envelope = getattr(message, "envelope", None)
    if envelope is not None and not envelope.event_id:
        raise MalformedRecord(f"{message.DESCRIPTOR.name} without envelope.event_id")
    return message
