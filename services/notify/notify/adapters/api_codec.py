"""NotificationService messages <-> the domain: silences, matchers, acknowledgements.

The API's codec (adapters.codec is the pipeline's): the only module of the API that builds
generated `*_pb2` messages other than plain responses.
"""

from __future__ import annotations

from datetime import datetime

from handoff.v1 import notification_service_pb2 as api_pb2
from handoff.v1 import notifications_pb2

from common.codec import from_timestamp, new_envelope, to_timestamp
from notify.domain.routing import InvalidMatcher, Matcher
from notify.domain.silences import Silence

SOURCE = "notify"


def matcher_from_pb(message: api_pb2.Matcher) -> Matcher:
    """A domain matcher; InvalidMatcher for a bad label name or regular expression."""
    return Matcher.of(message.label, message.value, regex=message.is_regex, negative=message.is_negative)


def matcher_pb(matcher: Matcher) -> api_pb2.Matcher:
    return api_pb2.Matcher(
        label=matcher.label, value=matcher.value, is_regex=matcher.is_regex, is_negative=matcher.is_negative
    )


def silence_pb(silence: Silence, now: datetime | None = None) -> api_pb2.Silence:
    """The Silence message; `expired` is set when `now` is given and the silence has ended."""
    return api_pb2.Silence(
        silence_id=silence.silence_id,
        matchers=[matcher_pb(m) for m in silence.matchers],
        starts_at=to_timestamp(silence.starts_at),
        ends_at=to_timestamp(silence.ends_at),
        created_by=silence.created_by,
        comment=silence.comment,
        expired=now is not None and silence.ends_at <= now,
    )


def silence_from_pb(message: api_pb2.Silence) -> Silence:
    """A stored silence; ValueError (InvalidMatcher) when it cannot be one."""
    if not message.silence_id:
        raise ValueError("silence without silence_id")
    try:
        matchers = tuple(matcher_from_pb(m) for m in message.matchers)
    except InvalidMatcher as error:
        raise ValueError(f"silence {message.silence_id}: {error}") from None
    return Silence(
        silence_id=message.silence_id,
        matchers=matchers,
        starts_at=from_timestamp(message.starts_at),
        ends_at=from_timestamp(message.ends_at),
        created_by=message.created_by,
        comment=message.comment,
    )


def encode_silence(silence: Silence) -> bytes:
    """A notify.silences.v1 record value (the whole silence: the topic is compacted)."""
    return silence_pb(silence).SerializeToString()


def encode_acknowledged(
    event_id: str, receiver: str, notification_id: str, acknowledged_by: str, request_id: str, at: datetime
) -> bytes:
    """A NotificationEvent(acknowledged) record value, keyed by `receiver` on notifications.v1."""
    return notifications_pb2.NotificationEvent(
        envelope=new_envelope(SOURCE, at, at, event_id=event_id, request_id=request_id),
        receiver=receiver,
        acknowledged=notifications_pb2.NotificationAcknowledged(
            notification_id=notification_id, acknowledged_by=acknowledged_by
        ),
    ).SerializeToString()


def notification_state_pb(record) -> api_pb2.NotificationState:
    """What became of a notification (a notification_store.NotificationRecord)."""
    return api_pb2.NotificationState(
        notification_id=record.notification_id,
        delivered_channels=sorted(record.delivered),
        failed_channels=record.failed,
        suppressed_reason=record.suppressed,
        silence_id=record.silence_id,
        escalation_level=record.escalation_level,
        acknowledged=record.is_acknowledged,
        acknowledged_by=record.acknowledged_by,
    )
