"""Requests on an existing leg -> domain commands, by the caller as `actor`; every bad field is
an InvalidField naming it, and every converter feeds its own domain handler."""

from __future__ import annotations

from dataclasses import replace

import pytest
from handoff.v1 import handoff_commands_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common.validation import InvalidField
from handoff_svc.domain import legs
from handoff_svc.domain.legs import (
    AcknowledgeHandoff,
    CancelHandoff,
    ChangePriority,
    CreateHandoff,
    Priority,
    ReopenHandoff,
    ResolveHandoff,
    Status,
    TransferHandoff,
    UpdateHandoffStatus,
)
from handoff_svc.entrypoints.requests import (
    LEG_COMMANDS,
    acknowledge_command,
    cancel_command,
    change_priority_command,
    new_id,
    reopen_command,
    resolve_command,
    transfer_command,
    update_status_command,
)
from tests.unit.conftest import T0

ACTOR = "billing-3"
LEG = dict(request_id="req-2", handoff_id="h-1")

# kind -> (converter, request type, the request's own good fields, the command expected).
GOOD = {
    "acknowledge": (acknowledge_command, api_pb2.AcknowledgeHandoffRequest, {}, AcknowledgeHandoff("h-1", ACTOR)),
    "update_status": (
        update_status_command, api_pb2.UpdateHandoffStatusRequest,
        {"status": types_pb2.LEG_STATUS_IN_PROGRESS, "note": "on it"},
        UpdateHandoffStatus("h-1", ACTOR, status=Status.IN_PROGRESS, note="on it"),
    ),
    "change_priority": (
        change_priority_command, api_pb2.ChangePriorityRequest, {"priority": types_pb2.PRIORITY_URGENT},
        ChangePriority("h-1", ACTOR, priority=Priority.URGENT),
    ),
    "transfer": (
        transfer_command, api_pb2.TransferHandoffRequest,
        {"to_department": "collections", "reason": "owes a balance", "priority": types_pb2.PRIORITY_LOW},
        TransferHandoff("h-1", ACTOR, to_department="collections", new_handoff_id=new_id("transfer", ACTOR, "req-2"),
                        reason="owes a balance", priority=Priority.LOW),
    ),
    "resolve": (
        resolve_command, api_pb2.ResolveHandoffRequest, {"resolution": "refunded"},
        ResolveHandoff("h-1", ACTOR, resolution="refunded"),
    ),
    "reopen": (reopen_command, api_pb2.ReopenHandoffRequest, {"reason": "bounced"}, ReopenHandoff("h-1", ACTOR, reason="bounced")),
    "cancel": (cancel_command, api_pb2.CancelHandoffRequest, {"reason": "duplicate"}, CancelHandoff("h-1", ACTOR, reason="duplicate")),
}


def leg_request(kind: str, **changes):
    _, request_type, fields, _ = GOOD[kind]
    return request_type(**{**LEG, **fields, **changes})


def convert(kind: str, **changes):
    return GOOD[kind][0](leg_request(kind, **changes), ACTOR)


@pytest.mark.parametrize("kind", GOOD)
def test_a_good_request_becomes_its_command_by_the_actor(kind):
    assert convert(kind) == GOOD[kind][3]


def test_every_leg_command_of_the_command_topic_has_a_converter_and_a_handler():
    kinds = {f.name for f in handoff_commands_pb2.HandoffCommand.DESCRIPTOR.oneofs_by_name["command"].fields}

    assert set(LEG_COMMANDS) == kinds - {"create", "record_contact"} == set(GOOD)
    assert {kind: convert_ for kind, (convert_, _) in LEG_COMMANDS.items()} == {k: v[0] for k, v in GOOD.items()}


# A state each command applies to.
FROM = {
    "acknowledge": Status.OPEN, "update_status": Status.ACKNOWLEDGED, "change_priority": Status.OPEN,
    "transfer": Status.IN_PROGRESS, "resolve": Status.IN_PROGRESS, "reopen": Status.RESOLVED, "cancel": Status.OPEN,
}


@pytest.mark.parametrize("kind", GOOD)
def test_each_converted_command_is_accepted_by_its_handler(kind):
    # given
    leg = replace(
        legs.create(CreateHandoff("h-1", "case-1", "cust-1", "billing", Priority.NORMAL, "", "Refund", "agent-7"), T0).leg,
        status=FROM[kind],
    )
    convert_, handle = LEG_COMMANDS[kind]

    # when
    result = handle(leg, convert_(leg_request(kind), ACTOR), T0)

    # then
    events = list(result) if isinstance(result, (list, tuple)) else [result]
    assert events and all(e.handoff_id in ("h-1", new_id("transfer", ACTOR, "req-2")) for e in events)


@pytest.mark.parametrize("kind", GOOD)
@pytest.mark.parametrize(
    "field, value",
    [("request_id", ""), ("request_id", "has space"), ("handoff_id", ""), ("handoff_id", "h/1")],
    ids=["request_id-missing", "request_id-malformed", "handoff_id-missing", "handoff_id-malformed"],
)
def test_every_leg_request_refuses_a_bad_leg_field_naming_it(kind, field, value):
    with pytest.raises(InvalidField) as raised:
        convert(kind, **{field: value})

    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "kind, field, value",
    [
        ("update_status", "status", types_pb2.LEG_STATUS_UNSPECIFIED),
        *(("update_status", "status", types_pb2.LegStatus.Value(f"LEG_STATUS_{s.value}"))
          for s in sorted(set(Status) - {Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER})),
        ("update_status", "status", 42),
        ("update_status", "note", "x" * 1001),
        ("change_priority", "priority", types_pb2.PRIORITY_UNSPECIFIED),
        ("change_priority", "priority", 42),
        ("transfer", "to_department", ""),
        ("transfer", "to_department", "Collections"),
        ("transfer", "to_department", "debt collection"),
        ("transfer", "reason", "x" * 1001),
        ("transfer", "priority", 42),
        ("resolve", "resolution", "x" * 1001),
        ("reopen", "reason", "x" * 1001),
        ("cancel", "reason", "x" * 1001),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else (f"{len(v)}-chars" if isinstance(v, str) else str(v)),
)
def test_a_leg_request_refuses_a_bad_field_of_its_own_naming_it(kind, field, value):
    with pytest.raises(InvalidField) as raised:
        convert(kind, **{field: value})

    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize("status", [Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER], ids=lambda s: s.value)
def test_update_status_accepts_the_settable_statuses(status):
    command = convert("update_status", status=types_pb2.LegStatus.Value(f"LEG_STATUS_{status.value}"))

    assert command.status is status


@pytest.mark.parametrize("priority", list(Priority), ids=lambda p: p.value)
def test_change_priority_reads_every_priority(priority):
    assert convert("change_priority", priority=types_pb2.Priority.Value(f"PRIORITY_{priority.value}")).priority is priority


@pytest.mark.parametrize(
    "kind, field",
    [("update_status", "note"), ("transfer", "reason"), ("resolve", "resolution"), ("reopen", "reason"),
     ("cancel", "reason")],
)
def test_free_text_may_be_empty_or_exactly_1000_characters(kind, field):
    assert getattr(convert(kind, **{field: ""}), field) == ""
    assert getattr(convert(kind, **{field: "x" * 1000}), field) == "x" * 1000


def test_a_transfer_without_a_priority_keeps_the_legs():
    assert convert("transfer", priority=types_pb2.PRIORITY_UNSPECIFIED).priority is None


def test_the_new_legs_id_derives_from_the_request_id_so_a_retry_gets_the_same_one():
    first = convert("transfer", request_id="req-2")
    retry = convert("transfer", request_id="req-2", reason="edited on retry")
    other = convert("transfer", request_id="req-3")

    assert first.new_handoff_id == retry.new_handoff_id
    assert first.new_handoff_id != other.new_handoff_id
    assert first.new_handoff_id not in ("req-2", "h-1")

