"""Stage 2's table values (JSON) <-> the domain: pending deliveries, escalations, groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notify.adapters.codec import notification_bytes, notification_parsed, restored, stored, stored_bytes, stored_text
from notify.adapters.routing_file import RoutingConfig
from notify.domain import escalation, grouping
from notify.domain.notifications import Notification
from notify.domain.routing import RouteMatch, Timing


@dataclass
class Job:
    """One notification to deliver on one channel of its receiver."""

    delivery_id: str
    notification: Notification
    channel: str
    partition: int
    offset: int
    first_attempt_at: datetime
    attempts: int = 0
    # When the next attempt is due (None: at once); kept, so a restart keeps the backoff.
    next_attempt_at: datetime | None = None
    # The notification serialized (codec.notification_bytes), as its `pending` entry holds it
    # and each gateway call sends it: made once.
    encoded: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.encoded:
            self.encoded = notification_bytes(self.notification)


def job_value(job: Job) -> dict:
    return {"n": stored_text(job.encoded), "channel": job.channel, "partition": job.partition,
            "offset": job.offset, "first": job.first_attempt_at.isoformat(), "attempts": job.attempts,
            "next": job.next_attempt_at.isoformat() if job.next_attempt_at else None}


def job_from(delivery_id: str, value: dict) -> Job:
    upcoming = value.get("next")
    encoded = stored_bytes(value["n"])
    return Job(delivery_id, notification_parsed(encoded), value["channel"], value["partition"], value["offset"],
               datetime.fromisoformat(value["first"]), value.get("attempts", 0),
               datetime.fromisoformat(upcoming) if upcoming else None, encoded)


def escalation_value(state: escalation.EscalationState, notification: Notification, partition: int) -> dict:
    return {
        "n": stored(notification), "partition": partition, "at": state.notified_at.isoformat(),
        "level": state.level, "reminded": state.reminded,
        "remind": state.remind_every.total_seconds() if state.remind_every else None,
        "acked": state.acknowledged_at.isoformat() if state.acknowledged_at else None, "by": state.acknowledged_by,
    }


def escalation_from(value: dict, routing: RoutingConfig) -> tuple[escalation.EscalationState, Notification] | None:
    """The state and its notification; None for an acknowledgement that came first, or a
    receiver whose policy the routing file no longer has."""
    if "n" not in value:
        return None
    notification = restored(value["n"])
    receiver = routing.receivers.get(notification.receiver)
    if receiver is None or receiver.escalation is None:
        return None
    state = escalation.EscalationState(
        notification.notification_id, notification.receiver, datetime.fromisoformat(value["at"]),
        receiver.escalation, timedelta(seconds=value["remind"]) if value["remind"] else None,
        level=value["level"], reminded=value["reminded"],
        acknowledged_at=datetime.fromisoformat(value["acked"]) if value["acked"] else None,
        acknowledged_by=value.get("by", ""),
    )
    return state, notification


def group_value(state: grouping.GroupState, partition: int) -> dict:
    return {
        "key": state.key, "receiver": state.receiver, "partition": partition,
        "timing": [t.total_seconds() for t in (state.timing.group_wait, state.timing.group_interval,
                                                 state.timing.repeat_interval)],
        "members": [stored(m) for m in state.members], "unsent": list(state.unsent),
        "first": state.first_seen.isoformat() if state.first_seen else None,
        "last": state.last_flush_at.isoformat() if state.last_flush_at else None, "flushes": state.flushes,
    }


def group_from(value: dict) -> grouping.GroupState:
    wait, interval, repeat = (timedelta(seconds=s) for s in value["timing"])
    return grouping.GroupState(
        key=value["key"], receiver=value["receiver"], timing=Timing(wait, interval, repeat),
        members=tuple(restored(m) for m in value["members"]), unsent=tuple(value["unsent"]),
        first_seen=datetime.fromisoformat(value["first"]) if value["first"] else None,
        last_flush_at=datetime.fromisoformat(value["last"]) if value["last"] else None, flushes=value["flushes"],
    )


def new_group(key: str, match: RouteMatch) -> grouping.GroupState:
    return grouping.new_group(key, match)
