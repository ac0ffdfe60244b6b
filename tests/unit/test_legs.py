"""A leg's lifecycle: every command against every state, and `apply`.

The table below states, independently of the module's own ALLOWED_FROM, where each command
may start from and what it must produce; the tests run every (command x status) pair.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from handoff_svc.domain import legs
from handoff_svc.domain.legs import (
    SETTABLE_STATUS,
    UNRESOLVED,
    AcknowledgeHandoff,
    CancelHandoff,
    ChangePriority,
    CreateHandoff,
    HandoffAcknowledged,
    HandoffCancelled,
    HandoffCreated,
    HandoffPriorityChanged,
    HandoffReopened,
    HandoffResolved,
    HandoffStatusChanged,
    HandoffTransferred,
    InvalidTransition,
    Leg,
    LegChanged,
    Priority,
    ReopenHandoff,
    ResolveHandoff,
    Status,
    TransferHandoff,
    UpdateHandoffStatus,
    apply,
    create,
)
from tests.unit.conftest import T0

CREATE = CreateHandoff(
    handoff_id="h-1",
    case_id="case-1",
    customer_ref="cust-1",
    department="billing",
    priority=Priority.HIGH,
    category="refund",
    summary="Refund not received",
    created_by="agent-7",
)
ACKNOWLEDGED_AT = T0 + timedelta(minutes=10)
RESOLVED_AT = T0 + timedelta(hours=1)
AT = T0 + timedelta(hours=2)
ACTOR = "billing-3"
# What every change to h-1 carries besides its own fields.
ABOUT = dict(handoff_id="h-1", customer_ref="cust-1", case_id="case-1", department="billing", at=AT, actor=ACTOR)

ENDED = {Status.RESOLVED, Status.TRANSFERRED, Status.CANCELLED}
OPEN_STATES = set(Status) - ENDED  # "any unresolved state"


def leg_in(status: Status) -> Leg:
    """h-1 as it would be in `status`: acknowledged unless OPEN, resolved once when RESOLVED,
    reopened once before (so a reopen counts a second time)."""
    leg = replace(create(CREATE, T0).leg, status=status, reopen_count=1, updated_at=RESOLVED_AT)
    if status is not Status.OPEN:
        leg = replace(leg, acknowledged_at=ACKNOWLEDGED_AT)
    if status is Status.RESOLVED:
        leg = replace(leg, resolved_at=RESOLVED_AT)
    return leg


def events_of(result) -> list:
    """Handlers return one event, a list or a tuple; tests compare lists."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def opened_leg(priority: Priority) -> Leg:
    """The leg a transfer of h-1 to collections opens."""
    return Leg(
        handoff_id="h-2",
        case_id="case-1",
        customer_ref="cust-1",
        department="collections",
        priority=priority,
        category="refund",
        summary="Owes a balance",
        status=Status.OPEN,
        created_at=AT,
        created_by=ACTOR,
        updated_at=AT,
        previous_handoff_id="h-1",
    )


@dataclass(frozen=True)
class Case:
    handle: Callable
    command: legs.LegCommand
    allowed_from: set[Status]
    events: Callable[[Leg], list]  # expected events from the leg at AT
    after: Callable[[Leg], Leg]  # expected leg after applying the first event


CASES: dict[str, Case] = {
    "acknowledge": Case(
        legs.acknowledge,
        AcknowledgeHandoff("h-1", ACTOR),
        {Status.OPEN, Status.REOPENED},
        lambda leg: [HandoffAcknowledged(**ABOUT)],
        lambda leg: replace(leg, status=Status.ACKNOWLEDGED, acknowledged_at=AT, updated_at=AT),
    ),
    "start work": Case(
        legs.update_status,
        UpdateHandoffStatus("h-1", ACTOR, status=Status.IN_PROGRESS, note="on it"),
        {Status.ACKNOWLEDGED, Status.WAITING_ON_CUSTOMER},
        lambda leg: [HandoffStatusChanged(**ABOUT, from_status=leg.status, to_status=Status.IN_PROGRESS, note="on it")],
        lambda leg: replace(leg, status=Status.IN_PROGRESS, updated_at=AT),
    ),
    "wait on customer": Case(
        legs.update_status,
        UpdateHandoffStatus("h-1", ACTOR, status=Status.WAITING_ON_CUSTOMER, note="asked for IBAN"),
        {Status.IN_PROGRESS},
        lambda leg: [
            HandoffStatusChanged(
                **ABOUT, from_status=leg.status, to_status=Status.WAITING_ON_CUSTOMER, note="asked for IBAN"
            )
        ],
        lambda leg: replace(leg, status=Status.WAITING_ON_CUSTOMER, updated_at=AT),
    ),
    "change priority": Case(
        legs.change_priority,
        ChangePriority("h-1", ACTOR, priority=Priority.URGENT),
        OPEN_STATES,
        lambda leg: [HandoffPriorityChanged(**ABOUT, from_priority=Priority.HIGH, to_priority=Priority.URGENT)],
        lambda leg: replace(leg, priority=Priority.URGENT, updated_at=AT),
    ),
    "transfer keeping the priority": Case(
        legs.transfer,
        TransferHandoff("h-1", ACTOR, to_department="collections", new_handoff_id="h-2", reason="Owes a balance"),
        OPEN_STATES,
        lambda leg: [
            HandoffTransferred(**ABOUT, to_department="collections", new_handoff_id="h-2", reason="Owes a balance"),
            HandoffCreated(opened_leg(Priority.HIGH)),
        ],
        lambda leg: replace(leg, status=Status.TRANSFERRED, next_handoff_id="h-2", updated_at=AT),
    ),
    "transfer at a new priority": Case(
        legs.transfer,
        TransferHandoff(
            "h-1", ACTOR, to_department="collections", new_handoff_id="h-2", reason="Owes a balance",
            priority=Priority.LOW,
        ),
        OPEN_STATES,
        lambda leg: [
            HandoffTransferred(**ABOUT, to_department="collections", new_handoff_id="h-2", reason="Owes a balance"),
            HandoffCreated(opened_leg(Priority.LOW)),
        ],
        lambda leg: replace(leg, status=Status.TRANSFERRED, next_handoff_id="h-2", updated_at=AT),
    ),
    "resolve": Case(
        legs.resolve,
        ResolveHandoff("h-1", ACTOR, resolution="refunded"),
        OPEN_STATES,
        lambda leg: [HandoffResolved(**ABOUT, resolution="refunded")],
        lambda leg: replace(leg, status=Status.RESOLVED, resolved_at=AT, updated_at=AT),
    ),
    "reopen": Case(
        legs.reopen,
        ReopenHandoff("h-1", ACTOR, reason="refund bounced"),
        {Status.RESOLVED},
        lambda leg: [HandoffReopened(**ABOUT, reason="refund bounced")],
        lambda leg: replace(leg, status=Status.REOPENED, resolved_at=None, reopen_count=2, updated_at=AT),
    ),
    "cancel": Case(
        legs.cancel,
        CancelHandoff("h-1", ACTOR, reason="duplicate"),
        OPEN_STATES,
        lambda leg: [HandoffCancelled(**ABOUT, reason="duplicate")],
        lambda leg: replace(leg, status=Status.CANCELLED, updated_at=AT),
    ),
}

PAIRS = [(name, status) for name in CASES for status in Status]
ALLOWED = [(n, s) for n, s in PAIRS if s in CASES[n].allowed_from]
REFUSED = [(n, s) for n, s in PAIRS if s not in CASES[n].allowed_from]


def pair_id(pair: tuple[str, Status]) -> str:
    return f"{pair[0]}-from-{pair[1].value}"


# Creating ------------------------------------------------------------------------------


def test_create_opens_a_leg_with_the_commands_fields_at_the_given_instant():
    # when
    event = create(CREATE, T0)

    # then
    assert (event.handoff_id, event.at) == ("h-1", T0)
    assert event.leg == Leg(
        handoff_id="h-1",
        case_id="case-1",
        customer_ref="cust-1",
        department="billing",
        priority=Priority.HIGH,
        category="refund",
        summary="Refund not received",
        status=Status.OPEN,
        created_at=T0,
        created_by="agent-7",
        acknowledged_at=None,
        resolved_at=None,
        updated_at=T0,
        previous_handoff_id="",
        next_handoff_id="",
        reopen_count=0,
    )


# Every command from every state ----------------------------------------------------------


@pytest.mark.parametrize("name, status", ALLOWED, ids=map(pair_id, ALLOWED))
def test_an_allowed_command_yields_its_events_and_apply_gives_the_leg_after_them(name, status):
    # given
    case, leg = CASES[name], leg_in(status)

    # when
    events = events_of(case.handle(leg, case.command, AT))

    # then
    assert events == case.events(leg)
    assert apply(leg, events[0]) == case.after(leg)


@pytest.mark.parametrize("name, status", REFUSED, ids=map(pair_id, REFUSED))
def test_a_refused_command_raises_invalid_transition_naming_the_current_status(name, status):
    # given
    case, leg = CASES[name], leg_in(status)

    # when
    with pytest.raises(InvalidTransition) as raised:
        case.handle(leg, case.command, AT)

    # then
    assert raised.value.current is status
    # \b keeps OPEN from matching inside REOPENED.
    assert re.search(rf"\b{status.value}\b", str(raised.value))
    assert "h-1" in str(raised.value)


def test_the_table_covers_every_command_against_every_status():
    # A new handler without a row here would escape the pair tests above.
    handlers = {legs.acknowledge, legs.update_status, legs.change_priority, legs.transfer, legs.resolve,
                legs.reopen, legs.cancel}

    assert {case.handle for case in CASES.values()} == handlers
    assert len(ALLOWED) + len(REFUSED) == len(CASES) * len(Status)


def test_unresolved_is_every_state_but_resolved_transferred_and_cancelled():
    assert UNRESOLVED == OPEN_STATES


# Transfer ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(OPEN_STATES), ids=lambda s: s.value)
def test_transfer_ends_the_leg_and_the_opened_leg_replays_from_nothing(status):
    # given
    leg = leg_in(status)

    # when
    ended, opened = events_of(legs.transfer(leg, CASES["transfer keeping the priority"].command, AT))

    # then: the old leg points forward, the new one back, and the new one is OPEN
    old, new = apply(leg, ended), apply(None, opened)
    assert (old.status, old.next_handoff_id) == (Status.TRANSFERRED, "h-2")
    assert (new.status, new.department, new.previous_handoff_id) == (Status.OPEN, "collections", "h-1")
    assert (new.acknowledged_at, new.resolved_at, new.reopen_count) == (None, None, 0)


@pytest.mark.parametrize(
    "reason, summary",
    [("Owes a balance", "Owes a balance"), ("", "Refund not received")],
    ids=["reason-given", "no-reason"],
)
def test_the_opened_legs_summary_is_the_transfer_reason_or_else_the_old_summary(reason, summary):
    command = TransferHandoff("h-1", ACTOR, to_department="collections", new_handoff_id="h-2", reason=reason)

    _, opened = legs.transfer(leg_in(Status.IN_PROGRESS), command, AT)

    assert opened.leg.summary == summary


# Priority ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(OPEN_STATES), ids=lambda s: s.value)
def test_changing_to_the_same_priority_yields_no_event(status):
    leg = leg_in(status)

    assert legs.change_priority(leg, ChangePriority("h-1", ACTOR, priority=leg.priority), AT) == []


@pytest.mark.parametrize("status", sorted(ENDED), ids=lambda s: s.value)
def test_changing_an_ended_legs_priority_is_refused_even_to_the_same_priority(status):
    leg = leg_in(status)

    with pytest.raises(InvalidTransition) as raised:
        legs.change_priority(leg, ChangePriority("h-1", ACTOR, priority=leg.priority), AT)

    assert raised.value.current is status


# Update status -------------------------------------------------------------------------


def test_update_status_sets_only_in_progress_and_waiting_on_customer():
    assert set(SETTABLE_STATUS) == {Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER}


@pytest.mark.parametrize(
    "target, status",
    [(t, s) for t in sorted(set(Status) - set(SETTABLE_STATUS)) for s in sorted(Status)],
    ids=lambda v: v.value,
)
def test_update_status_refuses_a_status_that_has_its_own_command(target, status):
    # Requests never carry such a status (requests.py refuses it); the domain must not act on one either.
    with pytest.raises((InvalidTransition, ValueError, KeyError)):
        legs.update_status(leg_in(status), UpdateHandoffStatus("h-1", ACTOR, status=target), AT)


# Apply ---------------------------------------------------------------------------------


def test_apply_created_yields_the_new_leg_even_without_a_prior_leg():
    event = create(CREATE, T0)

    assert apply(None, event) == event.leg


CHANGES = [event for name, status in ALLOWED for event in CASES[name].events(leg_in(status))
           if isinstance(event, LegChanged)]


@pytest.mark.parametrize("kind", sorted({type(e) for e in CHANGES}, key=lambda k: k.__name__), ids=lambda k: k.__name__)
def test_apply_of_a_change_for_an_unknown_leg_raises_naming_the_handoff(kind):
    event = next(e for e in CHANGES if type(e) is kind)

    with pytest.raises(ValueError, match="h-1"):
        apply(None, event)


def test_every_kind_of_change_is_exercised():
    assert {type(e) for e in CHANGES} == set(LegChanged.__subclasses__())


# (command, minutes after T0) in lifecycle order; each leaves updated_at at its own instant.
LIFECYCLE = [
    (AcknowledgeHandoff("h-1", ACTOR), 5),
    (UpdateHandoffStatus("h-1", ACTOR, status=Status.IN_PROGRESS), 30),
    (UpdateHandoffStatus("h-1", ACTOR, status=Status.WAITING_ON_CUSTOMER), 45),
    (UpdateHandoffStatus("h-1", ACTOR, status=Status.IN_PROGRESS), 90),
    (ChangePriority("h-1", ACTOR, priority=Priority.URGENT), 100),
    (ResolveHandoff("h-1", ACTOR, resolution="refunded"), 120),
    (ReopenHandoff("h-1", ACTOR, reason="bounced"), 600),
    (AcknowledgeHandoff("h-1", ACTOR), 610),
    (ResolveHandoff("h-1", ACTOR, resolution="refunded again"), 700),
]
HANDLERS = {
    AcknowledgeHandoff: legs.acknowledge, UpdateHandoffStatus: legs.update_status,
    ChangePriority: legs.change_priority, ResolveHandoff: legs.resolve, ReopenHandoff: legs.reopen,
}


def test_updated_at_follows_each_events_time_through_a_lifecycle():
    # given
    leg = apply(None, create(CREATE, T0))

    for command, minutes in LIFECYCLE:
        at = T0 + timedelta(minutes=minutes)

        # when
        for event in events_of(HANDLERS[type(command)](leg, command, at)):
            leg = apply(leg, event)

        # then
        assert leg.updated_at == at, type(command).__name__


def test_replaying_a_lifecycle_rebuilds_the_leg():
    # given: the events of the lifecycle above
    events: list = [create(CREATE, T0)]
    leg = events[0].leg
    for command, minutes in LIFECYCLE:
        for event in events_of(HANDLERS[type(command)](leg, command, T0 + timedelta(minutes=minutes))):
            events.append(event)
            leg = apply(leg, event)

    # when
    replayed = None
    for event in events:
        replayed = apply(replayed, event)

    # then
    assert replayed == leg
    assert replayed.status is Status.RESOLVED
    assert replayed.priority is Priority.URGENT
    assert replayed.reopen_count == 1
    assert replayed.created_at == T0
    assert replayed.acknowledged_at == T0 + timedelta(minutes=610)
    assert replayed.resolved_at == T0 + timedelta(minutes=700)


def test_reopen_clears_resolved_at_until_the_next_resolution():
    # given
    leg = leg_in(Status.RESOLVED)

    # when
    reopened = apply(leg, legs.reopen(leg, ReopenHandoff("h-1", ACTOR), AT))

    # then
    assert reopened.resolved_at is None
    later: datetime = AT + timedelta(hours=1)
    acknowledged = apply(reopened, legs.acknowledge(reopened, AcknowledgeHandoff("h-1", ACTOR), later))
    resolved = apply(acknowledged, legs.resolve(acknowledged, ResolveHandoff("h-1", ACTOR), later))
    assert resolved.resolved_at == later


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_change_dated_before_the_leg_was_created_is_refused_naming_occurred_at(name):
    # given a leg in a state the command accepts
    case = CASES[name]
    status = sorted(case.allowed_from, key=lambda s: s.value)[0]
    leg = leg_in(status)
    # when the change claims to have happened before the leg existed
    with pytest.raises(legs.InvalidCommand) as refused:
        case.handle(leg, case.command, leg.created_at - timedelta(seconds=1))
    # then it is refused, naming the field
    assert refused.value.field == "occurred_at"


def test_a_transfer_to_the_legs_own_department_is_refused_naming_to_department():
    leg = leg_in(Status.ACKNOWLEDGED)
    command = legs.TransferHandoff(handoff_id=leg.handoff_id, actor=ACTOR, to_department=leg.department,
                                   new_handoff_id="h-2")
    with pytest.raises(legs.InvalidCommand) as refused:
        legs.transfer(leg, command, AT)
    assert refused.value.field == "to_department"
