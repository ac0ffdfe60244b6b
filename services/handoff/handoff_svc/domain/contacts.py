"""Inbound customer contacts, as the contact centre records them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Channel(str, Enum):
    CALL = "CALL"
    CHAT = "CHAT"
    EMAIL = "EMAIL"
    MESSAGING = "MESSAGING"


@dataclass(frozen=True)
class Contact:
    contact_id: str
    customer_ref: str
    case_id: str
    channel: Channel
    contacted_at: datetime
    reason: str


@dataclass(frozen=True)
class RecordContact:
    contact_id: str
    customer_ref: str
    case_id: str
    channel: Channel
    reason: str


@dataclass(frozen=True)
class ContactRecorded:
    contact: Contact


def record(command: RecordContact, at: datetime) -> ContactRecorded:
    """A contact happened at `at`."""
    return ContactRecorded(
        Contact(command.contact_id, command.customer_ref, command.case_id, command.channel, at, command.reason)
    )
