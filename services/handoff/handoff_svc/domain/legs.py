"""A leg and the commands that change it: the leg state machine drawn below.

Each command handler checks the command against the leg's current state and returns the
events that record the change; `apply` folds events into legs. Replaying the events of
handoff.events.v1 through `apply` rebuilds every leg.

    OPEN -> ACKNOWLEDGED -> IN_PROGRESS <-> WAITING_ON_CUSTOMER -> RESOLVED
    RESOLVED -> REOPENED -> ACKNOWLEDGED ...
    any unresolved state -> TRANSFERRED (ends the leg; a new leg opens) or CANCELLED
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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


UNRESOLVED = frozenset(
    {Status.OPEN, Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER, Status.REOPENED}
)
# Where each command may start from.
ALLOWED_FROM: dict[str, frozenset[Status]] = {
    "acknowledge": frozenset({Status.OPEN, Status.REOPENED}),
    "start work": frozenset({Status.ACKNOWLEDGED, Status.WAITING_ON_CUSTOMER}),
    "wait on customer": frozenset({Status.IN_PROGRESS}),
    "resolve": UNRESOLVED,
    "reopen": frozenset({Status.RESOLVED}),
    "transfer": UNRESOLVED,
    "cancel": UNRESOLVED,
    "change priority": UNRESOLVED,
}
# Statuses UpdateHandoffStatus may set; the others have commands of their own.
SETTABLE_STATUS = {Status.IN_PROGRESS: "start work", Status.WAITING_ON_CUSTOMER: "wait on customer"}


class InvalidTransition(Exception):
    """The command does not apply to the leg in its current state."""

    def __init__(self, handoff_id: str, current: Status, command: str) -> None:
        super().__init__(f"handoff {handoff_id} is {current.value}; cannot {command}")
        self.current = current


class InvalidCommand(ValueError):
    """A command that can never apply to this leg, whatever its state; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True, slots=True)
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
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    previous_handoff_id: str = ""
    next_handoff_id: str = ""
    reopen_count: int = 0


# Commands ----------------------------------------------------------------------------


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
    previous_handoff_id: str = ""


@dataclass(frozen=True)
class LegCommand:
    """A command on an existing leg, by `actor`."""

    handoff_id: str
    actor: str


@dataclass(frozen=True)
class AcknowledgeHandoff(LegCommand):
    pass


@dataclass(frozen=True)
class UpdateHandoffStatus(LegCommand):
    status: Status
    note: str = ""


@dataclass(frozen=True)
class ChangePriority(LegCommand):
    priority: Priority


@dataclass(frozen=True)
class TransferHandoff(LegCommand):
    to_department: str
    new_handoff_id: str
    reason: str = ""
    priority: Priority | None = None


@dataclass(frozen=True)
class ResolveHandoff(LegCommand):
    resolution: str = ""


@dataclass(frozen=True)
class ReopenHandoff(LegCommand):
    reason: str = ""


@dataclass(frozen=True)
class CancelHandoff(LegCommand):
    reason: str = ""


# Events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffCreated:
    leg: Leg

    @property
    def handoff_id(self) -> str:
        return self.leg.handoff_id

    @property
    def at(self) -> datetime:
        return self.leg.created_at


@dataclass(frozen=True)
class LegChanged:
    """Base of every change to an existing leg: which leg, when, by whom."""

    handoff_id: str
    customer_ref: str
    case_id: str
    department: str
    at: datetime
    actor: str


@dataclass(frozen=True)
class HandoffAcknowledged(LegChanged):
    pass


@dataclass(frozen=True)
class HandoffStatusChanged(LegChanged):
    from_status: Status = Status.OPEN
    to_status: Status = Status.OPEN
    note: str = ""


@dataclass(frozen=True)
class HandoffPriorityChanged(LegChanged):
    from_priority: Priority = Priority.NORMAL
    to_priority: Priority = Priority.NORMAL


@dataclass(frozen=True)
class HandoffTransferred(LegChanged):
    to_department: str = ""
    new_handoff_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class HandoffResolved(LegChanged):
    resolution: str = ""


@dataclass(frozen=True)
class HandoffReopened(LegChanged):
    reason: str = ""


@dataclass(frozen=True)
class HandoffCancelled(LegChanged):
    reason: str = ""


HandoffEvent = HandoffCreated | LegChanged


# Handlers ----------------------------------------------------------------------------


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
            previous_handoff_id=command.previous_handoff_id,
        )
    )


def _check(leg: Leg, action: str) -> None:
    if leg.status not in ALLOWED_FROM[action]:
        raise InvalidTransition(leg.handoff_id, leg.status, action)


def _about(leg: Leg, command: LegCommand, at: datetime) -> dict:
    if at < leg.created_at:
        raise InvalidCommand("occurred_at", f"lies before the leg was created ({leg.created_at.isoformat()})")
    return dict(handoff_id=leg.handoff_id, customer_ref=leg.customer_ref, case_id=leg.case_id,
                department=leg.department, at=at, actor=command.actor)


def acknowledge(leg: Leg, command: AcknowledgeHandoff, at: datetime) -> HandoffAcknowledged:
    """The receiving department has seen the leg; stops its ack clock."""
    _check(leg, "acknowledge")
    return HandoffAcknowledged(**_about(leg, command, at))


def update_status(leg: Leg, command: UpdateHandoffStatus, at: datetime) -> HandoffStatusChanged:
    """Work starts, or waits on the customer (which pauses the resolve clock)."""
    _check(leg, SETTABLE_STATUS[command.status])
    return HandoffStatusChanged(
        **_about(leg, command, at), from_status=leg.status, to_status=command.status, note=command.note
    )


def change_priority(leg: Leg, command: ChangePriority, at: datetime) -> list[HandoffPriorityChanged]:
    """A new priority (the SLA recomputes deadlines); nothing when it is the same."""
    _check(leg, "change priority")
    if command.priority == leg.priority:
        return []
    return [HandoffPriorityChanged(**_about(leg, command, at), from_priority=leg.priority, to_priority=command.priority)]


def transfer(leg: Leg, command: TransferHandoff, at: datetime) -> tuple[HandoffTransferred, HandoffCreated]:
    """End this leg and open the next one, linked, for the target department."""
    _check(leg, "transfer")
    if command.to_department == leg.department:
        raise InvalidCommand("to_department", f"the leg is already with {leg.department}")
    ended = HandoffTransferred(
        **_about(leg, command, at), to_department=command.to_department,
        new_handoff_id=command.new_handoff_id, reason=command.reason,
    )
    opened = create(
        CreateHandoff(
            handoff_id=command.new_handoff_id,
            case_id=leg.case_id,
            customer_ref=leg.customer_ref,
            department=command.to_department,
            priority=command.priority or leg.priority,
            category=leg.category,
            summary=command.reason or leg.summary,
            created_by=command.actor,
            previous_handoff_id=leg.handoff_id,
        ),
        at,
    )
    return ended, opened


def resolve(leg: Leg, command: ResolveHandoff, at: datetime) -> HandoffResolved:
    _check(leg, "resolve")
    return HandoffResolved(**_about(leg, command, at), resolution=command.resolution)


def reopen(leg: Leg, command: ReopenHandoff, at: datetime) -> HandoffReopened:
    """The issue came back: a new resolve clock on the same leg, a reopen counted."""
    _check(leg, "reopen")
    return HandoffReopened(**_about(leg, command, at), reason=command.reason)


def cancel(leg: Leg, command: CancelHandoff, at: datetime) -> HandoffCancelled:
    _check(leg, "cancel")
    return HandoffCancelled(**_about(leg, command, at), reason=command.reason)


# Folding events into legs -------------------------------------------------------------

_CHANGES = {
    HandoffAcknowledged: lambda leg, e: replace(leg, status=Status.ACKNOWLEDGED, acknowledged_at=e.at),
    HandoffStatusChanged: lambda leg, e: replace(leg, status=e.to_status),
    HandoffPriorityChanged: lambda leg, e: replace(leg, priority=e.to_priority),
    HandoffTransferred: lambda leg, e: replace(leg, status=Status.TRANSFERRED, next_handoff_id=e.new_handoff_id),
    HandoffResolved: lambda leg, e: replace(leg, status=Status.RESOLVED, resolved_at=e.at),
    HandoffReopened: lambda leg, e: replace(
        leg, status=Status.REOPENED, resolved_at=None, reopen_count=leg.reopen_count + 1
    ),
    HandoffCancelled: lambda leg, e: replace(leg, status=Status.CANCELLED),
}


def apply(leg: Leg | None, event: HandoffEvent) -> Leg:
    """The leg after `event`."""
    if isinstance(event, HandoffCreated):
        return event.leg
    if leg is None:
        raise ValueError(f"{type(event).__name__} for unknown handoff {event.handoff_id}")
    return replace(_CHANGES[type(event)](leg, event), updated_at=event.at)
