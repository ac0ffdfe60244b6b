"""The command owner's state stays bounded: a stored reply is forgotten its TTL after it was
given, a closed leg the repeat window after it closed; an open leg is kept. Each forgetting
is a deletion the engine writes as a tombstone on the store's compacted changelog."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from handoff.v1 import handoff_commands_pb2 as commands_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2

from common.clock import epoch_us
from common.codec import new_envelope, to_timestamp
from common.settings import SettingsError
from common.streams.store import due_of
from common.topics import HANDOFF_COMMANDS, HANDOFF_EVENTS, HANDOFF_REPLIES
from handoff_svc.adapters import codec
from handoff_svc.domain import legs
from handoff_svc.entrypoints.app import OwnerProcessor
from handoff_svc.entrypoints.owner import IMPORT_SOURCE
from handoff_svc.entrypoints.requests import new_id
from handoff_svc.settings import Retention, retention_settings
from tests.unit.conftest import T0

TTL, WINDOW = timedelta(hours=2), timedelta(days=3)
MIN = timedelta(minutes=1)
PARTITION = 1


class MovableClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class Owner:
    """The owner's processor over real stores; `tick` fires what the engine's timers would."""

    def __init__(self) -> None:
        self.clock = MovableClock()
        self.sent: list[tuple[str, str, bytes]] = []
        self.processor = OwnerProcessor(self.clock, lambda topic, key, value: self.sent.append((topic, key, value)),
                                        Retention(TTL, WINDOW))
        self.commands = 0

    def command(self, kind: str, request, actor: str = "agent-7") -> commands_pb2.CommandReply:
        self.commands += 1
        at = self.clock.now()
        message = commands_pb2.HandoffCommand(
            envelope=new_envelope("handoff", at, at, event_id=f"cmd-{self.commands}", request_id=request.request_id),
            reply_to="replica-1", customer_ref="cust-1", actor=actor, occurred_at=to_timestamp(at),
            **{kind: request},
        )
        self.processor.process(HANDOFF_COMMANDS, message, PARTITION)
        self.commit()
        topic, _, value = self.sent[-1]
        assert topic == HANDOFF_REPLIES.name
        return commands_pb2.CommandReply.FromString(value)

    def create(self, request_id: str = "req-1") -> str:
        request = api_pb2.CreateHandoffRequest(request_id=request_id, case_id="case-1", customer_ref="cust-1",
                                               department="billing")
        return self.command("create", request).handoffs[0].handoff_id

    def resolve(self, handoff_id: str, request_id: str = "req-2") -> None:
        self.command("resolve", api_pb2.ResolveHandoffRequest(request_id=request_id, handoff_id=handoff_id),
                     actor="billing-3")

    def commit(self) -> list[tuple[int, str, bytes | None]]:
        """What the engine writes to the changelogs at the end of a batch."""
        written = [write for store in self.processor.stores for write in store.writes()]
        for store in self.processor.stores:
            store.commit()
        return written

    def tick(self, instant: datetime) -> list[tuple[int, str, bytes | None]]:
        """Time reaches `instant`: every value whose due instant has come is handed to the
        processor, as the engine's timers do, and the batch is committed."""
        self.clock.at = instant
        now = epoch_us(instant)
        for store in self.processor.stores:
            for key, value in list(store.items()):
                if 0 < due_of(value) <= now:
                    self.processor.due(store, key, PARTITION)
        return self.commit()

    def events(self) -> int:
        return sum(1 for topic, _, _ in self.sent if topic == HANDOFF_EVENTS.name)


def test_a_stored_reply_answers_retries_for_its_ttl_then_is_forgotten_with_a_tombstone():
    # given a create answered at T0
    owner = Owner()
    owner.create()
    key = "create:agent-7:req-1"
    # when time passes to just before the TTL, a retry is answered from the stored reply
    owner.tick(T0 + TTL - MIN)
    owner.create()
    assert key in owner.processor.requests and owner.events() == 1
    # then at the TTL the reply is forgotten, its deletion written to the changelog
    written = owner.tick(T0 + TTL + MIN)
    assert key not in owner.processor.requests
    assert (PARTITION, key, None) in written


def test_a_retry_after_the_ttl_finds_the_leg_and_writes_nothing_new():
    owner = Owner()
    handoff_id = owner.create()
    owner.tick(T0 + TTL + MIN)

    # the leg is still open, so the create is answered with it and no event is written twice
    assert owner.create() == handoff_id
    assert owner.events() == 1


def test_an_open_leg_is_kept_however_long_it_stays_open():
    owner = Owner()
    handoff_id = owner.create()

    owner.tick(T0 + 10 * WINDOW)

    assert handoff_id in owner.processor.legs
    assert due_of(owner.processor.legs[handoff_id]) == 0


def test_a_resolved_leg_is_forgotten_the_repeat_window_after_it_closed():
    # given a leg resolved an hour after it was created
    owner = Owner()
    handoff_id = owner.create()
    owner.clock.at = T0 + timedelta(hours=1)
    owner.resolve(handoff_id)
    # when the window has nearly passed it is still there (a late change finds it)
    owner.tick(T0 + timedelta(hours=1) + WINDOW - MIN)
    assert handoff_id in owner.processor.legs
    # then after the window it is gone, with a tombstone on the changelog
    written = owner.tick(T0 + timedelta(hours=1) + WINDOW + MIN)
    assert handoff_id not in owner.processor.legs
    assert (PARTITION, handoff_id, None) in written


def test_a_change_to_a_forgotten_leg_is_not_found():
    owner = Owner()
    handoff_id = owner.create()
    owner.resolve(handoff_id)
    owner.tick(T0 + WINDOW + TTL + MIN)

    reply = owner.command("reopen", api_pb2.ReopenHandoffRequest(request_id="req-3", handoff_id=handoff_id),
                          actor="billing-3")

    assert "not found" in reply.message


def test_a_reopened_leg_is_kept_while_it_is_open_again():
    owner = Owner()
    handoff_id = owner.create()
    owner.resolve(handoff_id)
    owner.clock.at = T0 + WINDOW / 2
    owner.command("reopen", api_pb2.ReopenHandoffRequest(request_id="req-3", handoff_id=handoff_id),
                  actor="billing-3")

    owner.tick(T0 + 3 * WINDOW)

    assert handoff_id in owner.processor.legs


def test_a_transfer_forgets_the_ended_leg_and_keeps_the_one_it_opened():
    owner = Owner()
    handoff_id = owner.create()
    reply = owner.command("transfer", api_pb2.TransferHandoffRequest(request_id="req-2", handoff_id=handoff_id,
                                                                     to_department="collections"), actor="billing-3")
    opened = reply.handoffs[1].handoff_id

    owner.tick(T0 + WINDOW + MIN)

    assert handoff_id not in owner.processor.legs
    assert opened in owner.processor.legs


def test_an_imported_leg_closed_long_ago_is_kept_a_window_from_its_import():
    # given an import, at T0, of a leg created and resolved a year earlier
    owner = Owner()
    long_ago = T0 - timedelta(days=365)
    leg = legs.create(legs.CreateHandoff(new_id("create", "import", "1"), "case-1", "cust-1", "billing",
                                         legs.Priority.NORMAL, "", "", "import"), long_ago)
    resolved = legs.HandoffResolved(leg.leg.handoff_id, "cust-1", "case-1", "billing", long_ago + MIN, "import")
    for index, event in enumerate((leg, resolved)):
        message = codec.event_message(event, f"imported-{index}", T0)
        message.envelope.source = IMPORT_SOURCE
        owner.processor.process(HANDOFF_EVENTS, message, PARTITION)
    owner.commit()
    # when less than a window has passed since the import, a change still finds it
    owner.tick(T0 + WINDOW - MIN)
    assert leg.leg.handoff_id in owner.processor.legs
    # then a window after the import it is forgotten
    owner.tick(T0 + WINDOW + MIN)
    assert leg.leg.handoff_id not in owner.processor.legs


def test_retention_settings_default_to_a_day_and_a_week_and_name_a_bad_variable():
    assert retention_settings({}) == Retention(timedelta(hours=24), timedelta(days=7))
    assert retention_settings({"HANDOFF_REPLY_TTL": "90m", "HANDOFF_REPEAT_WINDOW": "14d"}) == Retention(
        timedelta(minutes=90), timedelta(days=14))
    with pytest.raises(SettingsError, match="HANDOFF_REPEAT_WINDOW"):
        retention_settings({"HANDOFF_REPEAT_WINDOW": "a week"})

