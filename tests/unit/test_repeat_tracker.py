"""The repeat tracker and the clock engine together, on in-memory tables, on wall time and on
event time: repeats attributed and priced, nothing twice, contacts held for the watermark, a
restart's rebuild, and the engine emitting what fell due before a change."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import pytest
from handoff.v1 import contacts_pb2, handoff_events_pb2, types_pb2
from prometheus_client import REGISTRY

from common.clock import EventTime
from common.codec import decode, from_timestamp, new_envelope, to_timestamp
from common.ids import derived_event_id
from common.streams.store import payload_of
from common.ticks import heartbeat_value
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_EVENTS
from sla.adapters import repeat_codec
from sla.domain.policy import PolicyBook
from sla.domain.repeats import RepeatRules
from sla.entrypoints.engine import ClockEngine
from sla.entrypoints.worker import SlaWorker
from tests.live_reference import SteppedClock
from tests.unit.conftest import T0, policy

MIN, H, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
TICK = timedelta(microseconds=1)
CUSTOMER, OTHER = "cust-1", "cust-2"
P = 0  # the partition of CUSTOMER (and of OTHER: the tests place them)
COSTS = {"call": 450, "chat": 250, "email": 300, "messaging": 200}
RULES = RepeatRules(window=7 * DAY, transfer_grace=15 * MIN, cost_per_contact=COSTS)
# billing and claims legs: acknowledge within 4 h, resolve within 2 days, 24x7; warnings at 50 % and 80 %.
POLICIES = PolicyBook((policy(ack=4 * H), policy(department="claims", ack=4 * H)), RULES)
WALL, EVENT = "wall", "event"
MODES = [WALL, EVENT]
CAUSE = {
    "sla_breached": types_pb2.REPEAT_CAUSE_SLA_BREACHED,
    "within_sla": types_pb2.REPEAT_CAUSE_WITHIN_SLA,
    "after_resolution": types_pb2.REPEAT_CAUSE_AFTER_RESOLUTION,
    "unattributed": types_pb2.REPEAT_CAUSE_UNATTRIBUTED,
}


# --- records as the handoff service and telephony write them -------------------------------


def _handoff(handoff_id: str, at, customer: str = CUSTOMER, case_id: str = "case-1", department: str = "billing",
             **change) -> handoff_events_pb2.HandoffEvent:
    return handoff_events_pb2.HandoffEvent(
        envelope=new_envelope("handoff", at, at), handoff_id=handoff_id, case_id=case_id, customer_ref=customer,
        department=department, **change,
    )


def created(handoff_id: str, at, **leg) -> handoff_events_pb2.HandoffEvent:
    return _handoff(handoff_id, at, created=handoff_events_pb2.HandoffCreated(
        priority=types_pb2.PRIORITY_NORMAL, created_at=to_timestamp(at)), **leg)


def acknowledged(handoff_id: str, at, **leg):
    return _handoff(handoff_id, at, acknowledged=handoff_events_pb2.HandoffAcknowledged(acknowledged_by="ann"),
                    **leg)


def resolved(handoff_id: str, at, **leg):
    return _handoff(handoff_id, at, resolved=handoff_events_pb2.HandoffResolved(resolution="refunded"), **leg)


def transferred(handoff_id: str, at, to: str, new_handoff_id: str, **leg):
    return _handoff(handoff_id, at, transferred=handoff_events_pb2.HandoffTransferred(
        to_department=to, new_handoff_id=new_handoff_id), **leg)


def in_progress(handoff_id: str, at, **leg):
    return _handoff(handoff_id, at, status_changed=handoff_events_pb2.HandoffStatusChanged(
        from_status=types_pb2.LEG_STATUS_ACKNOWLEDGED, to_status=types_pb2.LEG_STATUS_IN_PROGRESS), **leg)


def contact(contact_id: str, at, channel: str = "call", customer: str = CUSTOMER,
            case_id: str = "case-1") -> contacts_pb2.ContactRecorded:
    return contacts_pb2.ContactRecorded(
        envelope=new_envelope("handoff", at, at), contact_id=contact_id, customer_ref=customer, case_id=case_id,
        channel=repeat_codec.channel_value(channel), contacted_at=to_timestamp(at),
    )


# --- the worker -------------------------------------------------------------------------------


class Worker:
    """The engine and the tracker wired as sla.entrypoints.app wires them, on plain dicts as
    tables; what they send is kept, and SLA events are read back only when told (`tick`)."""

    def __init__(self, mode: str, customers: dict | None = None, clocks: dict | None = None,
                 partitions: Iterable[int] = (P,), marks: dict | None = None) -> None:
        self.mode = mode
        self.customers = {} if customers is None else customers
        self.clocks = {} if clocks is None else clocks
        self.wall = SteppedClock(T0)
        self.sla_sent: list[bytes] = []
        self.sla_events: list = []
        self.repeats: list[contacts_pb2.RepeatContactDetected] = []
        self.sla = SlaWorker(self.clocks, self.customers, POLICIES, EventTime() if mode == EVENT else self.wall,
                             self._send_sla, self._send_repeat, recorded=self.wall, marks=marks)
        self.event_time, self.engine, self.tracker = self.sla.event_time, self.sla.engine, self.sla.tracker
        self.assign(frozenset(partitions))

    def assign(self, partitions: frozenset[int]) -> None:
        """What the app's timer does when the worker's assignment changes."""
        self.sla.assign(partitions)

    def _send_sla(self, _: str, value: bytes) -> None:
        self.sla_sent.append(value)

    def _send_repeat(self, _: str, value: bytes) -> None:
        self.repeats.append(decode(REPEAT_CONTACTS, value))

    def handoff(self, message, partition: int = P) -> list:
        """app.on_handoff_event: the watermark, the clocks, the customer's legs, the waiting contacts."""
        return self.sla.on_handoff_event(message, partition)

    def heartbeat(self, at, partition: int = P) -> None:
        self.handoff(decode(HANDOFF_EVENTS, heartbeat_value(at, partition, "test", at)), partition)

    def contact(self, message, partition: int = P) -> None:
        """A contact arrives; on wall time it does after the instant it was made."""
        if self.mode == WALL:
            self.wall.at = max(self.wall.at, from_timestamp(message.contacted_at) + TICK)
        self.sla.on_contact(decode(CONTACTS, message.SerializeToString()), partition)

    def tick(self, at) -> None:
        """The timer at `at` (wall time; on event time the watermark decides); what it sent is kept."""
        self.wall.at = max(self.wall.at, at)
        self.sla.fire_due()
        self.sla_events += [decode(SLA_EVENTS, value) for value in self.sla_sent]
        self.sla_sent.clear()

    def caught_up(self, at) -> None:
        """Event time reaches `at` (a heartbeat); on wall time contacts were examined on arrival."""
        if self.event_time is not None:
            self.heartbeat(at)

    def feed(self, steps, live: bool = True) -> None:
        """Deliver each record in turn; `live`: the timer keeps up with each record's instant."""
        for message in steps:
            at = from_timestamp(message.envelope.occurred_at)
            if live:
                self.tick(at)
            if isinstance(message, contacts_pb2.ContactRecorded):
                self.contact(message)
            else:
                self.handoff(message)


def summary(message: contacts_pb2.RepeatContactDetected) -> tuple:
    return (message.contact_id, message.previous_contact_id, message.cause, message.handoff_id, message.department,
            message.cost_minor, message.currency)


def last_instant(steps) -> object:
    return max(from_timestamp(m.envelope.occurred_at) for m in steps)


# --- causes, on either clock --------------------------------------------------------------------

SCENARIOS = {
    "within-sla": (
        [created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 2 * H, "chat")],
        ("c-2", "c-1", CAUSE["within_sla"], "h-1", "billing", 250, "EUR"),
    ),
    "breached-while-open": (
        [created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 5 * H, "chat")],
        ("c-2", "c-1", CAUSE["sla_breached"], "h-1", "billing", 250, "EUR"),
    ),
    "breached-then-resolved-late": (
        [created("h-1", T0), contact("c-1", T0 + 30 * MIN), resolved("h-1", T0 + 5 * H),
         contact("c-2", T0 + 6 * H, "email")],
        ("c-2", "c-1", CAUSE["sla_breached"], "h-1", "billing", 300, "EUR"),
    ),
    "after-resolution": (
        [created("h-1", T0), contact("c-1", T0 + 30 * MIN), resolved("h-1", T0 + H),
         contact("c-2", T0 + 3 * H, "email")],
        ("c-2", "c-1", CAUSE["after_resolution"], "h-1", "billing", 300, "EUR"),
    ),
    "unattributed": (
        [contact("c-1", T0), contact("c-2", T0 + H, "messaging")],
        ("c-2", "c-1", CAUSE["unattributed"], "", "", 200, "EUR"),
    ),
    "transferred-to-the-next-leg": (
        [created("h-1", T0), contact("c-1", T0 + 30 * MIN), transferred("h-1", T0 + H, "claims", "h-2"),
         created("h-2", T0 + H, department="claims"), contact("c-2", T0 + 2 * H)],
        ("c-2", "c-1", CAUSE["within_sla"], "h-2", "claims", 450, "EUR"),
    ),
}


@pytest.mark.parametrize("live", [True, False], ids=["timer-on-time", "timer-behind"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps, expected", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_a_repeat_is_attributed_to_its_leg_with_its_cause_and_the_cost_of_its_channel(steps, expected, mode, live):
    # given a worker on wall or event time, whose timer keeps up or lags behind
    worker = Worker(mode)

    # when the customer's legs and contacts arrive in the order they happened
    worker.feed(steps, live)
    worker.caught_up(last_instant(steps))

    # then exactly one repeat, of the later contact, with its cause, leg, department and cost
    assert [summary(m) for m in worker.repeats] == [expected]
    [repeat] = worker.repeats
    assert repeat.envelope.event_id == derived_event_id("c-2", "repeat")
    assert repeat.customer_ref == CUSTOMER


@pytest.mark.parametrize("mode", MODES)
def test_a_breach_tells_the_cause_whether_it_came_back_through_kafka_or_only_the_clocks_show_it(mode):
    # given a leg whose ack clock breached at T0 + 4 h: one worker read the breach back, one did not
    steps = [created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 5 * H)]
    read_back, unread = Worker(mode), Worker(mode)
    read_back.feed(steps[:2])
    read_back.tick(T0 + 5 * H)
    unread.feed(steps[:2], live=False)
    if mode == WALL:
        assert [e.WhichOneof("change") for e in read_back.sla_events].count("breached") == 1
    assert not unread.sla_events

    # when the customer calls again after the deadline
    for worker in (read_back, unread):
        worker.contact(steps[2])
        worker.caught_up(T0 + 5 * H)

    # then both blame the breach
    assert [m.cause for m in read_back.repeats] == [CAUSE["sla_breached"]]
    assert [m.cause for m in unread.repeats] == [CAUSE["sla_breached"]]


@pytest.mark.parametrize("mode", MODES)
def test_a_contact_within_the_transfer_grace_is_no_repeat_and_only_the_latest_earlier_contact_counts(mode):
    # given a leg, a call, and the customer transferred back 10 minutes later
    worker = Worker(mode)
    steps = [created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 40 * MIN)]
    worker.feed(steps)
    worker.caught_up(T0 + 40 * MIN)

    # then no repeat
    assert worker.repeats == []

    # when the customer calls again an hour later, it repeats the transferred call, not the first
    worker.feed([contact("c-3", T0 + 100 * MIN)])
    worker.caught_up(T0 + 100 * MIN)
    assert [(m.contact_id, m.previous_contact_id) for m in worker.repeats] == [("c-3", "c-2")]


@pytest.mark.parametrize("mode", MODES)
def test_a_contact_exactly_the_grace_after_the_last_is_no_repeat_and_one_a_second_later_is(mode):
    worker = Worker(mode)
    worker.feed([contact("c-1", T0), contact("c-2", T0 + 15 * MIN),
                     contact("c-3", T0 + 30 * MIN + timedelta(seconds=1), customer=CUSTOMER)])
    worker.caught_up(T0 + H)

    assert [(m.contact_id, m.previous_contact_id) for m in worker.repeats] == [("c-3", "c-2")]


@pytest.mark.parametrize("mode", MODES)
def test_a_contact_a_window_and_more_after_the_last_is_a_first_contact_again(mode):
    worker = Worker(mode)
    worker.feed([contact("c-1", T0), contact("c-2", T0 + 7 * DAY + MIN)])
    worker.caught_up(T0 + 7 * DAY + MIN)

    assert worker.repeats == []
    assert contacts_kept(worker) == ["c-2"]


def document(value: bytes) -> dict:
    """A customer's record as the customers store holds it, without the store header."""
    return json.loads(payload_of(value))


def contacts_kept(worker: Worker) -> list[str]:
    return [c[0] for c in document(worker.customers[CUSTOMER])["contacts"]]


# --- redelivery ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_redelivered_contact_emits_nothing_the_second_time(mode):
    # given a repeat already emitted
    worker = Worker(mode)
    steps = [created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 2 * H)]
    worker.feed(steps)
    worker.caught_up(T0 + 2 * H)
    assert len(worker.repeats) == 1

    # when Kafka delivers the same contact again (a restart before the commit)
    worker.contact(steps[2])
    worker.caught_up(T0 + 3 * H)

    # then nothing more
    assert len(worker.repeats) == 1


def test_on_event_time_a_contact_redelivered_while_it_waits_is_examined_once():
    # given a repeat contact waiting for the watermark
    worker = Worker(EVENT)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN)])
    worker.heartbeat(T0 + 30 * MIN)
    worker.contact(contact("c-2", T0 + 2 * H))
    worker.contact(contact("c-2", T0 + 2 * H))
    assert [c[0] for c in document(worker.customers[CUSTOMER])["pending"]] == ["c-2"]

    # when the watermark passes it
    worker.heartbeat(T0 + 2 * H)

    # then one repeat, and nothing waits any more
    assert [m.contact_id for m in worker.repeats] == ["c-2"]
    assert document(worker.customers[CUSTOMER])["pending"] == []
    worker.heartbeat(T0 + 3 * H)
    assert len(worker.repeats) == 1


# --- leg changes at an instant come before contacts at that instant ---------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_contact_at_the_instant_of_a_transfer_is_examined_on_the_leg_the_transfer_opened(mode):
    # given case k0's leg at billing, and the customer's contact on 2025-11-27 01:16
    k0, transfer = "case-k0", datetime(2025, 11, 30, 1, 25, tzinfo=timezone.utc)
    worker = Worker(mode)
    worker.feed([created("h-1", transfer - 4 * DAY, case_id="case-k0"),
                 contact("c-1", datetime(2025, 11, 27, 1, 16, tzinfo=timezone.utc), case_id=k0)])

    # when everything at 01:25 arrives together, the customer's contact read first: the contact,
    # then the transfer to claims and the leg it opens
    worker.wall.at = transfer
    worker.sla.on_contact(decode(CONTACTS, contact("c-2", transfer, case_id=k0).SerializeToString()), P)
    worker.handoff(transferred("h-1", transfer, "claims", "h-2", case_id=k0))
    worker.handoff(created("h-2", transfer, case_id=k0, department="claims"))
    assert [m.contact_id for m in worker.repeats] == []

    # and time moves on (the wall clock, or the import's heartbeat at its last instant)
    worker.tick(transfer + MIN) if mode == WALL else worker.heartbeat(transfer)

    # then the contact is examined after the changes at its instant: on the leg the transfer opened
    [repeat] = worker.repeats
    assert (repeat.contact_id, repeat.cause, repeat.handoff_id, repeat.department) == (
        "c-2", CAUSE["within_sla"], "h-2", "claims")


def test_on_event_time_a_leg_change_at_the_contacts_instant_does_not_release_it_but_a_later_one_does():
    worker = Worker(EVENT)
    worker.feed([contact("c-1", T0), contact("c-2", T0 + 2 * H)])
    worker.heartbeat(T0)

    worker.handoff(created("h-1", T0 + 2 * H))
    assert worker.repeats == []
    worker.handoff(created("h-9", T0 + 2 * H + TICK, customer=OTHER, case_id="case-9"))

    assert [(m.contact_id, m.handoff_id) for m in worker.repeats] == [("c-2", "h-1")]


# --- event time: contacts wait for the watermark --------------------------------------------------


@pytest.mark.parametrize(
    "release",
    [
        lambda w: w.heartbeat(T0 + 2 * H),
        lambda w: w.heartbeat(T0 + 3 * H),
        lambda w: w.handoff(created("h-9", T0 + 3 * H, customer=OTHER, case_id="case-9")),
    ],
    ids=["heartbeat-at-the-contact", "heartbeat-after-it", "another-customers-later-handoff-event"],
)
def test_on_event_time_a_contact_waits_for_the_watermark_and_sees_a_leg_whose_event_came_after_it(release):
    # given a first contact examined, and a second one read before the leg created before it
    worker = Worker(EVENT)
    worker.contact(contact("c-1", T0))
    worker.heartbeat(T0)
    worker.contact(contact("c-2", T0 + 2 * H))
    assert worker.repeats == []

    # when the leg's creation (T0 + 1 h) arrives: the watermark is still before the contact
    worker.handoff(created("h-1", T0 + H))
    assert worker.repeats == []

    # and then the partition's watermark reaches the contact
    release(worker)

    # then the contact is examined against the leg created before it
    assert [summary(m) for m in worker.repeats] == [("c-2", "c-1", CAUSE["within_sla"], "h-1", "billing", 450, "EUR")]


def test_on_wall_time_the_same_arrival_order_examines_the_contact_at_once_without_the_late_leg():
    # the contrast: on wall time a contact is examined when it arrives
    worker = Worker(WALL)
    worker.contact(contact("c-1", T0))
    worker.contact(contact("c-2", T0 + 2 * H))
    worker.handoff(created("h-1", T0 + H))

    assert [m.cause for m in worker.repeats] == [CAUSE["unattributed"]]


def test_on_event_time_another_partitions_watermark_does_not_release_a_contact():
    # given a worker owning partitions 0 and 1, and a contact waiting on partition 0
    worker = Worker(EVENT, partitions=(0, 1))
    worker.feed([contact("c-1", T0), contact("c-2", T0 + 2 * H)])
    worker.heartbeat(T0)

    # when only partition 1 moves past it
    worker.heartbeat(T0 + 5 * H, partition=1)

    # then it still waits, until its own partition does
    assert worker.repeats == []
    worker.heartbeat(T0 + 2 * H, partition=0)
    assert [m.contact_id for m in worker.repeats] == ["c-2"]


def test_on_event_time_a_contact_whose_instant_the_watermark_passed_is_examined_on_arrival():
    # given a partition whose watermark is already past the contact (contacts read behind handoff events)
    worker = Worker(EVENT)
    worker.contact(contact("c-1", T0))
    worker.handoff(created("h-1", T0 + H))
    worker.heartbeat(T0 + 5 * H)

    # when the contact arrives
    worker.contact(contact("c-2", T0 + 2 * H))

    # then it is examined at once, against the legs as they stood at its instant
    assert [summary(m) for m in worker.repeats] == [("c-2", "c-1", CAUSE["within_sla"], "h-1", "billing", 450, "EUR")]


def test_on_event_time_a_resolution_after_the_contact_does_not_change_its_cause():
    # given a contact at T0 + 2 h waiting, and the leg resolved at T0 + 3 h arriving first
    worker = Worker(EVENT)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 2 * H)])
    worker.handoff(resolved("h-1", T0 + 3 * H))

    # then the leg was open at the contact: within its SLA, not after its resolution
    assert [m.cause for m in worker.repeats] == [CAUSE["within_sla"]]


def test_on_event_time_a_pending_contact_still_finds_a_leg_a_later_change_would_prune():
    # given a leg resolved at T0 + 1 h, a first contact, and a second one 6 days on waiting for the watermark
    worker = Worker(EVENT)
    worker.feed([created("h-1", T0), resolved("h-1", T0 + H), contact("c-1", T0 + 2 * H)])
    worker.heartbeat(T0 + 2 * H)
    worker.contact(contact("c-2", T0 + 6 * DAY))

    # when the next record of the partition is the customer's new leg, 9 days on (the old
    # leg ended more than the window before it)
    worker.handoff(created("h-2", T0 + 9 * DAY))

    # then the waiting contact is still blamed on the leg resolved within the window before it
    assert [summary(m) for m in worker.repeats] == [
        ("c-2", "c-1", CAUSE["after_resolution"], "h-1", "billing", 450, "EUR")
    ]


def test_on_event_time_contacts_waiting_together_are_each_judged_by_the_legs_live_at_their_instant():
    # given a leg resolved at T0 + 1 h, and three contacts waiting: days 5 and 6, and day 8 (past
    # the window after the resolution)
    worker = Worker(EVENT)
    worker.feed([created("h-1", T0), resolved("h-1", T0 + H)])
    for contact_id, at in (("c-1", T0 + 5 * DAY), ("c-2", T0 + 6 * DAY), ("c-3", T0 + 8 * DAY)):
        worker.contact(contact(contact_id, at))
    assert worker.repeats == []

    # when the customer's next leg, on day 9, moves the watermark past all three
    worker.handoff(created("h-2", T0 + 9 * DAY))

    # then the day-6 contact is blamed on the resolved leg, the day-8 one on none
    assert [(m.contact_id, m.previous_contact_id, m.cause, m.handoff_id) for m in worker.repeats] == [
        ("c-2", "c-1", CAUSE["after_resolution"], "h-1"),
        ("c-3", "c-2", CAUSE["unattributed"], ""),
    ]


@pytest.mark.parametrize("first_contact_late", [False, True], ids=["first-contact-examined", "both-contacts-late"])
def test_on_event_time_contacts_read_behind_the_customers_later_legs_are_judged_as_of_their_instant(
    first_contact_late,
):
    # given a leg resolved at T0 + 1 h and the customer's next leg 9 days on, read before contacts
    # the telephony system wrote earlier (contacts.v1 is consumed apart from handoff.events.v1)
    worker = Worker(EVENT)
    if not first_contact_late:
        worker.feed([created("h-1", T0), resolved("h-1", T0 + H), contact("c-1", T0 + 2 * H)])
    else:
        worker.feed([created("h-1", T0), resolved("h-1", T0 + H)])
    worker.handoff(created("h-2", T0 + 9 * DAY))

    # when the contacts arrive
    if first_contact_late:
        worker.contact(contact("c-1", T0 + 2 * H))
    worker.contact(contact("c-2", T0 + 6 * DAY))

    # then the second is blamed on the leg resolved within the window before it, as live processing would
    assert [summary(m) for m in worker.repeats] == [
        ("c-2", "c-1", CAUSE["after_resolution"], "h-1", "billing", 450, "EUR")
    ]


# --- rebuild after a restart or a rebalance ----------------------------------------------------


def test_rebuild_re_indexes_waiting_contacts_from_the_table():
    # given a worker on event time holding a contact that waits for the watermark
    customers, clocks = {}, {}
    before = Worker(EVENT, customers, clocks)
    before.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 2 * H)])
    before.heartbeat(T0 + H)
    assert before.repeats == [] and document(customers[CUSTOMER])["pending"]

    # when the worker restarts on the same tables: one rebuilds its index on assignment, one did not
    restarted = Worker(EVENT, customers, clocks)
    not_rebuilt = Worker(EVENT, dict(customers), dict(clocks), partitions=())
    not_rebuilt.event_time.own(frozenset({P}))
    for worker in (restarted, not_rebuilt):
        worker.heartbeat(T0 + 3 * H)

    # then the rebuilt worker examines the waiting contact, as the first would have
    assert [summary(m) for m in restarted.repeats] == [("c-2", "c-1", CAUSE["within_sla"], "h-1", "billing", 450,
                                                         "EUR")]
    assert not_rebuilt.repeats == []
    assert document(customers[CUSTOMER])["pending"] == []


def test_rebuild_takes_only_the_waiting_contacts_of_the_partitions_owned():
    # given contacts waiting on partitions 0 and 1
    customers: dict = {}
    before = Worker(EVENT, customers, partitions=(0, 1))
    for partition, customer in ((0, CUSTOMER), (1, OTHER)):
        before.contact(contact("c-1" + customer, T0, customer=customer), partition)
        before.heartbeat(T0, partition)
        before.contact(contact("c-2" + customer, T0 + 2 * H, customer=customer), partition)

    # when a worker is assigned partition 0 only, and both partitions' watermarks pass the contacts
    after = Worker(EVENT, customers, partitions=(0,))
    after.heartbeat(T0 + 3 * H, partition=0)
    after.heartbeat(T0 + 3 * H, partition=1)

    # then only partition 0's contact is examined; partition 1's still waits for its owner
    assert [m.contact_id for m in after.repeats] == ["c-2" + CUSTOMER]
    assert [c[0] for c in document(customers[OTHER])["pending"]] == ["c-2" + OTHER]


def test_rebuild_on_wall_time_has_nothing_to_wait_for():
    worker = Worker(WALL)
    worker.feed([contact("c-1", T0), contact("c-2", T0 + H)])

    worker.assign(frozenset({P}))

    assert [m.contact_id for m in worker.repeats] == ["c-2"]
    assert document(worker.customers[CUSTOMER])["pending"] == []


# --- metrics ------------------------------------------------------------------------------------


def _sample(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_avoidable_repeat_counts_by_cause_and_its_cost_as_failure_demand_in_major_units():
    # given the counters before
    repeats = {"department": "billing", "cause": "sla_breached", "channel": "chat"}
    cost = {"department": "billing", "channel": "chat", "currency": "EUR"}
    before = _sample("handoff_repeat_contacts_total", repeats), _sample("handoff_failure_demand_cost_total", cost)

    # when a chat repeats a call after the leg breached
    worker = Worker(WALL)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN), contact("c-2", T0 + 5 * H, "chat")])

    # then one more repeat of that cause, and EUR 2.50 of failure demand
    assert _sample("handoff_repeat_contacts_total", repeats) - before[0] == 1
    assert _sample("handoff_failure_demand_cost_total", cost) - before[1] == pytest.approx(2.5)


def test_a_repeat_within_sla_is_counted_but_not_charged_as_failure_demand():
    repeats = {"department": "claims", "cause": "within_sla", "channel": "email"}
    cost = {"department": "claims", "channel": "email", "currency": "EUR"}
    before = _sample("handoff_repeat_contacts_total", repeats), _sample("handoff_failure_demand_cost_total", cost)

    worker = Worker(WALL)
    worker.feed([created("h-1", T0, department="claims"), contact("c-1", T0 + 30 * MIN),
                     contact("c-2", T0 + 2 * H, "email")])

    assert _sample("handoff_repeat_contacts_total", repeats) - before[0] == 1
    assert _sample("handoff_failure_demand_cost_total", cost) - before[1] == 0


# --- the engine: what fell due before a change comes first ---------------------------------------


def _kinds(values: list[bytes]) -> list[tuple[str, float]]:
    events = [decode(SLA_EVENTS, v) for v in values]
    return [(e.WhichOneof("change"), round(e.warning.fraction, 2)) for e in events]


def _ids(values: list[bytes]) -> list[str]:
    return [decode(SLA_EVENTS, v).envelope.event_id for v in values]


@pytest.mark.parametrize(
    "change",
    [acknowledged("h-1", T0 + 5 * H), in_progress("h-1", T0 + 5 * H), resolved("h-1", T0 + 5 * H)],
    ids=["acknowledged", "status-changed", "resolved"],
)
def test_a_change_after_a_deadline_emits_the_warnings_and_breach_first_with_the_timers_ids(change):
    # given two workers with a leg whose ack clock (4 h) fell due at T0 + 4 h; one timer fired
    late, timely = Worker(WALL), Worker(WALL)
    for worker in (late, timely):
        worker.handoff(created("h-1", T0))
        worker.sla_sent.clear()
    timely.wall.at = T0 + 5 * H
    timely.sla.fire_due()
    fired = list(timely.sla_sent)

    # when the change at T0 + 5 h reaches the worker whose timer has not got there
    decided = late.handoff(change)

    # then it first emits the ack clock's warnings and breach, with the ids the timer used
    assert _kinds(fired) == [("warning", 0.5), ("warning", 0.8), ("breached", 0.0)]
    assert _kinds(late.sla_sent)[:3] == _kinds(fired)
    assert _ids(late.sla_sent)[:3] == _ids(fired)
    # and returns what it decided, breach included, for the repeat tracker
    assert [e.event_id for e in decided] == _ids(late.sla_sent)


def test_a_late_acknowledgement_is_met_late_after_the_breach():
    worker = Worker(WALL)
    worker.handoff(created("h-1", T0))
    worker.sla_sent.clear()

    worker.handoff(acknowledged("h-1", T0 + 5 * H))

    assert _kinds(worker.sla_sent) == [("warning", 0.5), ("warning", 0.8), ("breached", 0.0), ("met", 0.0)]
    assert decode(SLA_EVENTS, worker.sla_sent[-1]).met.late


def test_a_change_after_the_timer_emitted_the_breach_does_not_send_it_again():
    # given a worker whose timer emitted the breach (the leg's state records it in the same step)
    worker = Worker(WALL)
    worker.handoff(created("h-1", T0))
    worker.wall.at = T0 + 5 * H
    worker.sla.fire_due()
    breach_id = _ids(worker.sla_sent)[-1]
    worker.sla_sent.clear()

    # when a status change at T0 + 5 h arrives, and the timer runs again
    decided = worker.handoff(in_progress("h-1", T0 + 5 * H))
    worker.sla.fire_due()

    # then the breach is neither sent nor decided twice
    assert breach_id not in _ids(worker.sla_sent)
    assert breach_id not in [e.event_id for e in decided]


def test_a_change_before_any_deadline_emits_no_warning_or_breach():
    worker = Worker(WALL)
    worker.handoff(created("h-1", T0))
    worker.sla_sent.clear()

    worker.handoff(acknowledged("h-1", T0 + H))

    assert _kinds(worker.sla_sent) == [("met", 0.0)]
    assert not decode(SLA_EVENTS, worker.sla_sent[0]).met.late


def test_the_engine_counts_running_clocks_as_legs_open_stop_and_after_a_rebuild():
    # given an engine on an in-memory table
    def noop(_: str, __: bytes) -> None:
        return None

    table: dict = {}
    engine = ClockEngine(table, POLICIES, SteppedClock(T0), noop, recorded=SteppedClock(T0))
    engine.rebuild(frozenset({P}))

    # when two legs open, one is acknowledged and the other resolved
    def feed() -> list[int]:
        counts = []
        for message in (created("h-1", T0), created("h-2", T0 + MIN), acknowledged("h-1", T0 + H),
                        resolved("h-2", T0 + 2 * H)):
            engine.on_handoff_event(message, P)
            counts.append(engine.running_clocks)
        return counts

    # then each leg starts two clocks, an ack stops one, a resolution both
    assert feed() == [2, 4, 3, 1]
    # and a rebuild from the table finds the same count, none for partitions it does not own
    engine.rebuild(frozenset({P}))
    assert engine.running_clocks == 1
    engine.rebuild(frozenset({P + 1}))
    assert engine.running_clocks == 0
