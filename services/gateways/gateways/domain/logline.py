"""A notification as one JSON line of a delivery log, numbered so the number is the receipt."""

from __future__ import annotations

import re
from datetime import datetime

from common.validation import InvalidField
from gateways.domain.delivery import Delivery, canonical_json, instant, notification_fields

_MAX_TARGET = 256
_CONTROL = re.compile(r"[\x00-\x1f]")


def log_target(field: str, value: str) -> str:
    """A name for the stream the line belongs to (e.g. `ops`): one line, at most 256 characters."""
    if not value.strip():
        raise InvalidField(field, "is required")
    if len(value) > _MAX_TARGET or _CONTROL.search(value):
        raise InvalidField(field, f"must be one line of at most {_MAX_TARGET} characters")
    return value


def log_line(delivery: Delivery, sequence: int, logged_at: datetime) -> str:
    """`{"seq": n, ...}` with sorted keys and no newline inside."""
    document = {
        "seq": sequence,
        "logged_at": instant(logged_at),
        "delivery_id": delivery.delivery_id,
        "target": delivery.target,
        "notification": notification_fields(delivery.notification),
    }
    return canonical_json(document).decode()
