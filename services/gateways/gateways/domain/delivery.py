"""A delivery: one notification, to one target, over one channel, identified for idempotency.

A gateway answers a delivery with a receipt (its own reference to what it sent) or a
failure that says whether trying again may help. Time arrives as an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson

from common.validation import InvalidField

KINDS = ("webhook", "email", "log")
_MAX_DELIVERY_ID = 256
# Time kept back from the caller's deadline to answer it after the downstream call.
DEADLINE_MARGIN = 0.1


@dataclass(frozen=True)
class Notification:
    """What a receiver is told; enum values are names (`breach`, `URGENT`, `resolve`)."""

    notification_id: str
    key: str = ""
    kind: str = "unspecified"
    receiver: str = ""
    department: str = ""
    priority: str = "NORMAL"
    handoff_id: str = ""
    case_id: str = ""
    customer_ref: str = ""
    clock: str = ""
    title: str = ""
    body: str = ""
    occurred_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    escalation_level: int = 0
    items: tuple[Notification, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """A request to deliver `notification` to `target`; `delivery_id` is stable across retries."""

    delivery_id: str
    channel: str
    target: str
    # None only before `check_delivery`: a request may arrive without one.
    notification: Notification | None


class DeliveryFailed(Exception):
    """The downstream did not take the notification; the message says why."""

    retryable = False


class Unavailable(DeliveryFailed):
    """A failure that may pass: the receiver is down, slow, or asked to try later."""

    retryable = True


class Rejected(DeliveryFailed):
    """A failure that will not pass by retrying the same request (a 4xx, an SMTP 5xx)."""


class Channel(Protocol):
    """One way out: sends a delivery within `timeout` seconds and returns its receipt."""

    async def deliver(self, delivery: Delivery, timeout: float) -> str: ...

    async def close(self) -> None: ...


def check_delivery(kind: str, delivery: Delivery) -> Delivery:
    """Raise InvalidField naming the first field a gateway of `kind` cannot use."""
    delivery_id(delivery.delivery_id)
    if not delivery.channel:
        raise InvalidField("channel", "is required")
    if delivery.channel != kind:
        raise InvalidField("channel", f"this gateway delivers {kind!r}, not {delivery.channel!r}")
    if not delivery.target:
        raise InvalidField("target", "is required")
    if delivery.notification is None:
        raise InvalidField("notification", "is required")
    if not delivery.notification.notification_id:
        raise InvalidField("notification.notification_id", "is required")
    return delivery


def delivery_id(value: str) -> str:
    """1-256 visible ASCII characters: it travels in HTTP and SMTP headers."""
    if not value:
        raise InvalidField("delivery_id", "is required")
    # Printable ASCII without the space is "!" to "~".
    if len(value) > _MAX_DELIVERY_ID or not (value.isascii() and value.isprintable()) or " " in value:
        raise InvalidField("delivery_id", f"must be 1-{_MAX_DELIVERY_ID} visible ASCII characters")
    return value


def downstream_timeout(configured: float, remaining: float | None) -> float:
    """Seconds the downstream call may take: the configured limit, cut to the caller's deadline."""
    if remaining is None:
        return configured
    return min(configured, remaining - DEADLINE_MARGIN)


def instant(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, or None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def canonical_json(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON with sorted keys, non-ASCII characters as they are: the bytes
    `json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes,
    for the str, int, bool, None, list and dict values a notification is made of."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def notification_fields(notification: Notification) -> dict[str, Any]:
    """The notification as plain JSON values; digest members nested under `items`."""
    return {
        "notification_id": notification.notification_id,
        "key": notification.key,
        "kind": notification.kind,
        "receiver": notification.receiver,
        "department": notification.department,
        "priority": notification.priority,
        "handoff_id": notification.handoff_id,
        "case_id": notification.case_id,
        "customer_ref": notification.customer_ref,
        "clock": notification.clock or None,
        "title": notification.title,
        "body": notification.body,
        "occurred_at": instant(notification.occurred_at),
        "labels": dict(sorted(notification.labels.items())),
        "escalation_level": notification.escalation_level,
        "items": [notification_fields(item) for item in notification.items],
    }
