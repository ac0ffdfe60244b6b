"""A leg and the commands that change it.

Each command handler checks the command against the leg's current state and returns the
event that records the change; `apply` folds events into legs. Replaying the events of
handoff.events.v1 through `apply` rebuilds every leg.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum


class Status(str, Enum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING_ON_CUSTOMER = "WAITING_ON_CUSTOMER"
    RESOLVED = "RESOLVED"
    REOPENED = "REOPENED"
    TRANSFERRED = "TRANSFERRED"
    CANCELLED = "CANCELLED"


class Priority(str, Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


class InvalidTransition(Exception):
    """The command does not apply to the leg in its current state."""

    def __init__(self, handoff_id: str, current: Status, command: str) -> None:
        super().__init__(f"handoff {handoff_id} is {current.value}; cannot {command}")
        self.current = current


@dataclass(frozen=True)
class Leg:
    handoff_id: str
    case_id: str
    customer_ref: str
    department: str
    priority: Priority
    category: str
    summary: str
    status: Status
    created_at: datetime
    created_by: str
    acknowledged_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CreateHandoff:
    handoff_id: str
    case_id: str
    customer_ref: str
    department: str
    priority: Priority
    category: str
    summary: str
    created_by: str


@dataclass(frozen=True)
class AcknowledgeHandoff:
    handoff_id: str
    acknowledged_by: str


@dataclass(frozen=True)
class HandoffCreated:
    leg: Leg

    @property
    def handoff_id(self) -> str:
        return self.leg.handoff_id


@dataclass(frozen=True)
class HandoffAcknowledged:
    handoff_id: str
    customer_ref: str
    case_id: str
    department: str
    acknowledged_by: str
    acknowledged_at: datetime


HandoffEvent = HandoffCreated | HandoffAcknowledged

# States from which a leg can be acknowledged (a reopened leg is acknowledged again).
_ACKNOWLEDGEABLE = frozenset({Status.OPEN, Status.REOPENED})


def create(command: CreateHandoff, at: datetime) -> HandoffCreated:
    """Open a new leg for the receiving department."""
    return HandoffCreated(
        Leg(
            handoff_id=command.handoff_id,
            case_id=command.case_id,
            customer_ref=command.customer_ref,
            department=command.department,
            priority=command.priority,
            category=command.category,
            summary=command.summary,
            status=Status.OPEN,
            created_at=at,
            created_by=command.created_by,
            updated_at=at,
        )
    )


def acknowledge(leg: Leg, command: AcknowledgeHandoff, at: datetime) -> HandoffAcknowledged:
    """The receiving department has seen the leg; stops its ack clock."""
    if leg.status not in _ACKNOWLEDGEABLE:
        raise InvalidTransition(leg.handoff_id, leg.status, "acknowledge")
    return HandoffAcknowledged(
        handoff_id=leg.handoff_id,
        customer_ref=leg.customer_ref,
        case_id=leg.case_id,
        department=leg.department,
        acknowledged_by=command.acknowledged_by,
        acknowledged_at=at,
    )


def apply(leg: Leg | None, event: HandoffEvent) -> Leg:
    """The leg after `event`."""
    if isinstance(event, HandoffCreated):
        return event.leg
    if leg is None:
        raise ValueError(f"{type(event).__name__} for unknown handoff {event.handoff_id}")
    return replace(
        leg,
        status=Status.ACKNOWLEDGED,
        acknowledged_at=event.acknowledged_at,
        updated_at=event.acknowledged_at,
    )
