"""Every notification and what became of it, as read from notifications.v1, on every replica.

`requested` opens a notification; delivered, failed, suppressed, escalated and
acknowledged events (which name it by id) fill in its state. Lists are newest first.

Retention: a notification whose instant lies more than `retention` before the newest one
read is forgotten (with the Acknowledge requests that named it), oldest first, as newer
ones arrive: the read model's own time, so a replay of last month keeps last month's last
week. A `requested` already that old is not taken in, and an event naming an id never
requested is kept as long as one of its instant would be. An Acknowledge of a forgotten id
finds nothing (NOT_FOUND).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.protobuf.message import Message
from sortedcontainers import SortedList

from common.codec import from_timestamp
from common.topics import NOTIFICATIONS, TopicSpec
from notify.settings import DEFAULT_RETENTION

# (occurred_at, notification_id): the order of lists and the position a page token names.
ListKey = tuple[datetime, str]
_NONE = SortedList()  # a department nobody notified


@dataclass
class NotificationRecord:
    """One notification (None until its `requested` event is read) and its state."""

    notification_id: str
    notification: Message | None = None
    delivered: dict[str, datetime] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    suppressed: str = ""
    silence_id: str = ""
    escalation_level: int = 0
    acknowledged_by: str = ""
    # (acknowledged_by, request_id) of the Acknowledge calls that named it: forgotten with it.
    ack_requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def receiver(self) -> str:
        return self.notification.receiver if self.notification is not None else ""

    @property
    def department(self) -> str:
        return self.notification.department if self.notification is not None else ""

    @property
    def occurred_at(self) -> datetime:
        return from_timestamp(self.notification.occurred_at)

    @property
    def is_acknowledged(self) -> bool:
        return bool(self.acknowledged_by)

    @property
    def list_key(self) -> ListKey:
        return (self.occurred_at, self.notification_id)


class NotificationStore:
    """Notifications by id, indexed by department in time order; acknowledgements by request."""

    def __init__(self, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._retention = retention
        self._records: dict[str, NotificationRecord] = {}
        # Ascending list keys: of every notification, and per department. Sorted lists, as
        # notifications arrive in any order (partitions interleave, a replay runs backwards):
        # an insertion costs O(log n), not a shift of every later key.
        self._everyone: SortedList = SortedList()
        self._by_department: dict[str, SortedList] = {}
        # (acknowledged_by, request_id) -> notification_id: the first answer to a retried Acknowledge.
        self._ack_requests: dict[tuple[str, str], str] = {}
        # Records named by an event before (or without) their `requested`, oldest first, with the
        # instant of the event that named them: forgotten by the same rule. (Ordered: its
        # oldest is found in O(1) however many were taken out before; a dict's first item
        # is found past every slot emptied since it last grew.)
        self._unrequested: OrderedDict[str, datetime] = OrderedDict()

    def __len__(self) -> int:
        return sum(1 for record in self._records.values() if record.notification is not None)

    def held(self) -> int:
        """How many records are held, requested or not: what the retention bounds."""
        return len(self._records)

    def apply(self, spec: TopicSpec, event: Message) -> None:
        """A TopicFeed `apply`: take in one NotificationEvent (ValueError if unusable)."""
        if spec.name != NOTIFICATIONS.name:
            raise ValueError(f"NotificationStore reads {NOTIFICATIONS.name}, not {spec.name}")
        change = event.WhichOneof("change")
        if change is None:
            raise ValueError("NotificationEvent without a change")
        if change == "heartbeat":  # event time passing, nobody's notification
            return
        body = getattr(event, change)
        if change == "requested":
            if not self._requested(body.notification):
                return
            if body.acknowledged_by:  # its leg had ended before the notice was read
                record = self._record(body.notification.notification_id)
                record.acknowledged_by = record.acknowledged_by or body.acknowledged_by
            return
        if not body.notification_id:
            raise ValueError(f"{change} event without notification_id")
        if body.notification_id not in self._records:
            self._unrequested[body.notification_id] = from_timestamp(event.envelope.occurred_at)
        record = self._record(body.notification_id)
        if change == "delivered":
            record.delivered[body.channel] = from_timestamp(body.delivered_at)
            record.failed.pop(body.channel, None)
        elif change == "failed":
            record.failed[body.channel] = body.reason
        elif change == "suppressed":
            record.suppressed, record.silence_id = body.reason or "suppressed", body.silence_id
        elif change == "escalated":
            record.escalation_level = max(record.escalation_level, body.level)
        elif change == "acknowledged":
            # The first acknowledgement counts; later ones (a race, a retry) change nothing.
            record.acknowledged_by = record.acknowledged_by or body.acknowledged_by or "unknown"
            if event.envelope.request_id:
                request = (body.acknowledged_by, event.envelope.request_id)
                if self._ack_requests.setdefault(request, body.notification_id) == body.notification_id:
                    record.ack_requests.append(request)

    def _record(self, notification_id: str) -> NotificationRecord:
        return self._records.setdefault(notification_id, NotificationRecord(notification_id))

    def _requested(self, notification: Message) -> bool:
        """Take in a notification; False when it is already older than the retention."""
        if not notification.notification_id:
            raise ValueError("requested event without notification_id")
        record = self._record(notification.notification_id)
        if record.notification is not None:
            return True  # requested twice (a replay): the first stands
        record.notification = notification
        self._unrequested.pop(record.notification_id, None)
        key = record.list_key
        if self._everyone and key[0] < self._everyone[-1][0] - self._retention:
            del self._records[record.notification_id]
            return False
        self._everyone.add(key)
        department = self._by_department.get(record.department)
        if department is None:
            department = self._by_department[record.department] = SortedList()
        department.add(key)
        self._forget_before(self._everyone[-1][0] - self._retention)
        return True

    def _forget_before(self, instant: datetime) -> None:
        """Drop the notifications older than `instant` (the oldest, so the lists lose a head)."""
        while self._unrequested:
            notification_id, named_at = next(iter(self._unrequested.items()))
            if named_at >= instant:
                break
            del self._unrequested[notification_id]
            self._records.pop(notification_id, None)
        cut = self._everyone.bisect_left((instant, ""))
        if not cut:
            return
        gone = self._everyone[:cut]
        del self._everyone[:cut]
        departments = set()
        for _, notification_id in gone:
            record = self._records.pop(notification_id)
            departments.add(record.department)
            for request in record.ack_requests:
                self._ack_requests.pop(request, None)
        for department in departments:
            keys = self._by_department[department]
            del keys[:keys.bisect_left((instant, ""))]
            if not keys:
                del self._by_department[department]

    def get(self, notification_id: str) -> NotificationRecord | None:
        """The notification with this id, None if no `requested` event named it."""
        record = self._records.get(notification_id)
        return record if record is not None and record.notification is not None else None

    def acknowledged_by_request(self, principal: str, request_id: str) -> str | None:
        """The notification `principal` acknowledged with `request_id`, if it did."""
        return self._ack_requests.get((principal, request_id))

    def page(
        self, department: str | None, after: ListKey | None, limit: int
    ) -> tuple[list[NotificationRecord], bool]:
        """Up to `limit` notifications older than `after` (all departments for None), newest
        first, and whether more follow."""
        keys = self._everyone if department is None else self._by_department.get(department, _NONE)
        end = len(keys) if after is None else keys.bisect_left(after)
        start = max(0, end - limit)
        return [self._records[key[1]] for key in reversed(keys[start:end])], start > 0
