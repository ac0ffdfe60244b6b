"""Checks for request fields; each failure names the field, for INVALID_ARGUMENT."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from common.auth import is_pseudonym

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,63}")
# Event time may lag (imports) but not run ahead of the server by more than clock skew.
_MAX_FUTURE_SKEW = timedelta(minutes=5)


class InvalidField(ValueError):
    """A request field that is missing or malformed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def identifier(field: str, value: str) -> str:
    """An id: 1-128 characters of letters, digits and . _ : - ."""
    if not value:
        raise InvalidField(field, "is required")
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidField(field, "must be 1-128 letters, digits or . _ : - (starting with a letter or digit)")
    return value


def pseudonym(field: str, value: str) -> str:
    """A customer_ref: the shape of our pseudonyms, so that it cannot carry personal data."""
    if not value:
        raise InvalidField(field, "is required")
    if not is_pseudonym(value):
        raise InvalidField(field, "must be a pseudonym, c- and 32 lower-case hex digits; send a raw id as "
                                  "customer_id and the service pseudonymises it")
    return value


def label(field: str, value: str) -> str:
    """A department or category name: lower case, digits, _ and -, up to 64 characters."""
    if not value:
        raise InvalidField(field, "is required")
    if not _LABEL.fullmatch(value):
        raise InvalidField(field, "must be lower case letters, digits, _ or - (up to 64, starting with a letter)")
    return value


def text(field: str, value: str, max_length: int, required: bool = False) -> str:
    """Free text of bounded length."""
    if required and not value.strip():
        raise InvalidField(field, "is required")
    if len(value) > max_length:
        raise InvalidField(field, f"is {len(value)} characters; at most {max_length}")
    return value


def event_time(field: str, value: datetime | None, now: datetime) -> datetime:
    """The instant a change happened: `now` when unset, never in the future."""
    if value is None:
        return now
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if value > now + _MAX_FUTURE_SKEW:
        raise InvalidField(field, "lies in the future")
    return value


def instant(text: str) -> datetime:
    """An RFC 3339 time with its offset (`2026-03-01T00:00:00Z`); ValueError saying what is wrong."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time, e.g. 2026-03-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset, e.g. Z")
    return moment
