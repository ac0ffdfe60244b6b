"""The sla read model: records of the four topics (decoded by its codec) applied to the
store, and what it answers: a leg's clocks, breaches newest first in pages, scorecards."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from handoff.v1 import contacts_pb2, handoff_events_pb2, sla_events_pb2, types_pb2

from common.codec import new_envelope, to_duration, to_timestamp
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_EVENTS
from sla.adapters import readmodel_codec as codec
from sla.adapters.readmodel import apply_record
from sla.adapters.readmodel_store import SlaReadModel
from sla.domain.scorecard import Period
from tests.unit.conftest import T0

H = timedelta(hours=1)
ACK, RESOLVE = types_pb2.CLOCK_KIND_ACK, types_pb2.CLOCK_KIND_RESOLVE


def sla_event(change: str, body, handoff_id: str = "h-1", clock: int = ACK, sequence: int = 1,
              department: str = "billing", priority: int = types_pb2.PRIORITY_NORMAL, version: str = "v1"):
    event = sla_events_pb2.SlaEvent(
        envelope=new_envelope("sla", T0, T0), handoff_id=handoff_id, case_id=f"case-{handoff_id}",
        customer_ref="cust-1", department=department, priority=priority, clock=clock, policy_version=version,
        clock_sequence=sequence, category="refund",
    )
    getattr(event, change).CopyFrom(body)
    return event


def started(at: datetime = T0, target: timedelta = 4 * H, **fields):
    body = sla_events_pb2.ClockStarted(started_at=to_timestamp(at), deadline=to_timestamp(at + target),
                                       target=to_duration(target))
    return sla_event("clock_started", body, **fields)


def breached(at: datetime, deadline: datetime | None = None, **fields):
    body = sla_events_pb2.ClockBreached(deadline=to_timestamp(deadline or at), breached_at=to_timestamp(at))
    return sla_event("breached", body, **fields)


def met(at: datetime, deadline: datetime, late: bool = False, elapsed: timedelta = H, **fields):
    body = sla_events_pb2.ClockMet(deadline=to_timestamp(deadline), stopped_at=to_timestamp(at), late=late,
                                   elapsed=to_duration(elapsed))
    return sla_event("met", body, **fields)


def paused(at: datetime, **fields):
    return sla_event("paused", sla_events_pb2.ClockPaused(paused_at=to_timestamp(at)), **fields)


def resumed(at: datetime, deadline: datetime, **fields):
    body = sla_events_pb2.ClockResumed(resumed_at=to_timestamp(at), deadline=to_timestamp(deadline))
    return sla_event("resumed", body, **fields)


def recomputed(deadline: datetime, target: timedelta, version: str = "v2", **fields):
    body = sla_events_pb2.ClockRecomputed(deadline=to_timestamp(deadline), target=to_duration(target))
    return sla_event("recomputed", body, version=version, **fields)


def handoff_event(change: str, body, handoff_id: str = "h-1", department: str = "billing", at: datetime = T0,
                  event_id: str | None = None):
    event = handoff_events_pb2.HandoffEvent(
        envelope=new_envelope("handoff", at, at, event_id=event_id), handoff_id=handoff_id,
        case_id=f"case-{handoff_id}", customer_ref="cust-1", department=department,
    )
    getattr(event, change).CopyFrom(body)
    return event


def created(handoff_id: str = "h-1", at: datetime = T0, department: str = "billing",
            priority: int = types_pb2.PRIORITY_NORMAL):
    body = handoff_events_pb2.HandoffCreated(priority=priority, category="refund", created_at=to_timestamp(at))
    return handoff_event("created", body, handoff_id, department, at)


def repeat(contact_id: str, cause: int = types_pb2.REPEAT_CAUSE_SLA_BREACHED, handoff_id: str = "h-1",
           department: str = "billing", at: datetime = T0 + H, cost: int = 450):
    return contacts_pb2.RepeatContactDetected(
        envelope=new_envelope("sla", at, at), contact_id=contact_id, customer_ref="cust-1", cause=cause,
        handoff_id=handoff_id, department=department, cost_minor=cost, currency="EUR",
        contacted_at=to_timestamp(at),
    )


SPECS = {sla_events_pb2.SlaEvent: SLA_EVENTS, handoff_events_pb2.HandoffEvent: HANDOFF_EVENTS,
         contacts_pb2.RepeatContactDetected: REPEAT_CONTACTS, contacts_pb2.ContactRecorded: CONTACTS}


def feed(store: SlaReadModel, *messages) -> SlaReadModel:
    """Apply records as the feed does, each as a record of its topic."""
    for message in messages:
        apply_record(store, SPECS[type(message)], message)
    return store


def only_clock(store: SlaReadModel, handoff_id: str = "h-1"):
    (clock,) = store.clocks_of(handoff_id)
    return clock


# Clocks ------------------------------------------------------------------------------------


def test_a_started_clock_runs_towards_its_deadline():
    clock = only_clock(feed(SlaReadModel(), started()))
    assert (clock.kind, clock.sequence, clock.started_at, clock.deadline, clock.target) == ("ack", 1, T0, T0 + 4 * H, 4 * H)
    assert clock.running and not clock.breached and not clock.met and clock.paused_at is None


def test_a_clock_pauses_resumes_with_a_later_deadline_breaches_and_is_met_late():
    store = feed(SlaReadModel(), started(clock=RESOLVE), paused(T0 + H, clock=RESOLVE))
    assert only_clock(store).paused_at == T0 + H
    feed(store, resumed(T0 + 2 * H, T0 + 5 * H, clock=RESOLVE))
    clock = only_clock(store)
    assert (clock.paused_at, clock.deadline) == (None, T0 + 5 * H)
    feed(store, breached(T0 + 5 * H, clock=RESOLVE), met(T0 + 6 * H, T0 + 5 * H, late=True, elapsed=5 * H, clock=RESOLVE))
    clock = only_clock(store)
    assert (clock.running, clock.breached, clock.met, clock.late) == (False, True, True, True)
    assert (clock.breached_at, clock.stopped_at, clock.elapsed) == (T0 + 5 * H, T0 + 6 * H, 5 * H)


def test_a_recompute_moves_a_running_clock_but_not_a_stopped_one():
    store = feed(SlaReadModel(), started(), recomputed(T0 + H, H, version="v2"))
    clock = only_clock(store)
    assert (clock.deadline, clock.target, clock.policy_version) == (T0 + H, H, "v2")
    feed(store, met(T0 + H / 2, T0 + H), recomputed(T0 + 9 * H, 9 * H, version="v3"))
    clock = only_clock(store)
    assert (clock.deadline, clock.policy_version, clock.running) == (T0 + H, "v2", False)


def test_a_breach_keeps_the_deadline_it_breached_when_a_recompute_follows():
    store = feed(SlaReadModel(), started(), breached(T0 + 4 * H, T0 + 4 * H), recomputed(T0 + 8 * H, 8 * H))
    clock = only_clock(store)
    assert (clock.breach_deadline, clock.deadline) == (T0 + 4 * H, T0 + 8 * H)


def test_events_read_again_change_nothing():
    once = feed(SlaReadModel(), started(), breached(T0 + 4 * H), met(T0 + 5 * H, T0 + 4 * H, late=True))
    again = feed(SlaReadModel(), started(), breached(T0 + 4 * H), met(T0 + 5 * H, T0 + 4 * H, late=True),
                 started(), breached(T0 + 4 * H), met(T0 + 5 * H, T0 + 4 * H, late=True))
    assert again.clocks_of("h-1") == once.clocks_of("h-1")
    assert not only_clock(again).running


def test_changes_to_a_clock_whose_start_was_never_read_are_ignored():
    store = feed(SlaReadModel(), breached(T0 + 4 * H), met(T0 + 5 * H, T0 + 4 * H))
    assert store.clocks_of("h-1") == []


def test_a_legs_clocks_are_listed_ack_first_then_each_resolve_clock_in_sequence():
    store = feed(SlaReadModel(), started(clock=RESOLVE, sequence=2), started(clock=RESOLVE), started(clock=ACK))
    assert [(c.kind, c.sequence) for c in store.clocks_of("h-1")] == [("ack", 1), ("resolve", 1), ("resolve", 2)]


@pytest.mark.parametrize("change", ["clock_started", "breached", "met"])
def test_a_change_without_its_instant_is_refused(change):
    body = {"clock_started": sla_events_pb2.ClockStarted(), "breached": sla_events_pb2.ClockBreached(),
            "met": sla_events_pb2.ClockMet()}[change]
    with pytest.raises(ValueError):
        codec.sla_change(sla_event(change, body))


# Legs ----------------------------------------------------------------------------------------


def test_a_leg_read_first_from_sla_events_takes_its_creation_when_that_is_read():
    store = feed(SlaReadModel(), started(priority=types_pb2.PRIORITY_HIGH))
    leg = store.leg("h-1")
    assert (leg.department, leg.priority, leg.category, leg.case_id, leg.created_at) == (
        "billing", "HIGH", "refund", "case-h-1", None)
    feed(store, created(at=T0, priority=types_pb2.PRIORITY_LOW))
    assert (store.leg("h-1").priority, store.leg("h-1").created_at) == ("LOW", T0)


def test_a_priority_change_sticks_and_a_replayed_creation_does_not_undo_it():
    change = handoff_events_pb2.HandoffPriorityChanged(from_priority=types_pb2.PRIORITY_NORMAL,
                                                       to_priority=types_pb2.PRIORITY_URGENT)
    store = feed(SlaReadModel(), created(), handoff_event("priority_changed", change), created())
    assert store.leg("h-1").priority == "URGENT"
    # and later SLA events of the leg do not override what handoff events say
    feed(store, started(priority=types_pb2.PRIORITY_NORMAL))
    assert store.leg("h-1").priority == "URGENT"


def test_an_unknown_leg_is_none():
    assert feed(SlaReadModel(), created()).leg("h-2") is None


# Breaches --------------------------------------------------------------------------------------


def breaches_store() -> SlaReadModel:
    store = SlaReadModel()
    for n in range(5):
        feed(store, started(handoff_id=f"h-{n}"), breached(T0 + n * H, handoff_id=f"h-{n}"))
    return feed(store, started(handoff_id="c-1", department="claims"),
                breached(T0 + 10 * H, handoff_id="c-1", department="claims"),
                started(handoff_id="h-9"))  # running, not breached


def test_breaches_are_listed_newest_first_for_a_department_since_an_instant():
    page, more = breaches_store().breaches("billing", since=T0 + H)
    assert [clock.handoff_id for _, clock in page] == ["h-4", "h-3", "h-2", "h-1"]
    assert not more
    leg, clock = page[0]
    assert (leg.case_id, clock.breached_at, clock.department) == ("case-h-4", T0 + 4 * H, "billing")


def test_the_whole_centre_lists_every_departments_breaches():
    page, _ = breaches_store().breaches("", since=T0)
    assert [clock.handoff_id for _, clock in page] == ["c-1", "h-4", "h-3", "h-2", "h-1", "h-0"]


def test_breaches_page_after_the_last_key_of_the_previous_page_until_none_are_left():
    store = breaches_store()
    seen, after = [], None
    while True:
        page, more = store.breaches("billing", since=T0, after=after, limit=2)
        seen.append([clock.handoff_id for _, clock in page])
        if not more:
            break
        last = page[-1][1]
        after = (last.breached_at, last.handoff_id, last.kind, last.sequence)
    assert seen == [["h-4", "h-3"], ["h-2", "h-1"], ["h-0"]]


# Scorecards --------------------------------------------------------------------------------------


def test_a_scorecard_counts_what_the_four_topics_told():
    reopened = handoff_events_pb2.HandoffReopened(reason="again")
    store = feed(
        SlaReadModel(),
        created("h-1"), created("h-2"), created("c-1", department="claims"),
        started(handoff_id="h-1"), met(T0 + H, T0 + 4 * H, handoff_id="h-1"),
        started(handoff_id="h-2"), breached(T0 + 4 * H, handoff_id="h-2"),
        repeat("r-1", handoff_id="h-2"), repeat("r-1", handoff_id="h-2"),  # read twice, counted once
        repeat("r-2", types_pb2.REPEAT_CAUSE_UNATTRIBUTED, handoff_id="", department=""),
        handoff_event("reopened", reopened, "h-1", at=T0 + 2 * H, event_id="e-reopen"),
        handoff_event("reopened", reopened, "h-1", at=T0 + 2 * H, event_id="e-reopen"),
        *[contacts_pb2.ContactRecorded(envelope=new_envelope("handoff", T0, T0), contact_id=f"k-{n}",
                                       contacted_at=to_timestamp(T0 + H)) for n in (1, 2, 3, 4, 4)],
    )
    period = Period(T0, T0 + 24 * H)
    card = store.scorecard("billing", period, "EUR")
    assert (card.legs, card.breaches, card.ack_compliance, card.reopens) == (2, 1, 0.5, 1)
    assert (card.avoidable_repeats, card.failure_demand_cost_minor, card.currency) == (1, 450, "EUR")
    # both legs are open; only h-2's outcome is known (a repeat): FCR 0 of n=1
    assert (card.first_contact_resolution, card.fcr_n, card.open_legs) == (0.0, 1, 2)
    assert card.tta_p50 == H
    whole = store.scorecard("", period)
    assert (whole.legs, whole.repeat_contacts["unattributed"], whole.first_contact_resolution) == (3, 1, 0.5)


def test_a_repeat_without_a_known_cause_is_refused():
    with pytest.raises(ValueError, match="cause"):
        codec.repeat_record(repeat("r-1", cause=types_pb2.REPEAT_CAUSE_UNSPECIFIED))


# Retention ----------------------------------------------------------------------------------------

HISTORY = 90 * 24 * H


def closed_leg(handoff_id: str, at: datetime, department: str = "billing") -> list:
    """A leg created at `at` whose ack and resolve clocks stopped an hour later (it closed then)."""
    fields = {"handoff_id": handoff_id, "department": department}
    return [created(handoff_id, at, department), started(at, **fields), started(at, clock=RESOLVE, **fields),
            met(at + H, at + 4 * H, **fields), met(at + H, at + 4 * H, clock=RESOLVE, **fields)]


def contact(contact_id: str, at: datetime):
    return contacts_pb2.ContactRecorded(envelope=new_envelope("handoff", at, at), contact_id=contact_id,
                                        contacted_at=to_timestamp(at))


def test_a_leg_closed_longer_ago_than_the_history_is_forgotten_with_everything_naming_it():
    reopened = handoff_events_pb2.HandoffReopened(reason="again")
    store = feed(SlaReadModel(HISTORY), *closed_leg("h-1", T0), breached(T0 + H / 2, handoff_id="h-1"),
                 repeat("r-1", at=T0 + H), handoff_event("reopened", reopened, "h-1", at=T0 + H / 2, event_id="e-1"))
    period = Period(T0, T0 + 24 * H)
    assert store.scorecard("billing", period).legs == 1
    feed(store, contact("k-1", T0 + H + HISTORY + H))
    assert store.leg("h-1") is None and store.clocks_of("h-1") == []
    assert store.breaches("billing", since=T0) == ([], False)
    card = store.scorecard("billing", period)
    assert (card.legs, card.breaches, card.avoidable_repeats, card.reopens) == (0, 0, 0, 0)


def test_an_open_leg_is_kept_however_old():
    store = feed(SlaReadModel(HISTORY), created(), started(), started(clock=RESOLVE),
                 met(T0 + H, T0 + 4 * H), contact("k-1", T0 + 3 * HISTORY))
    assert store.leg("h-1") is not None
    assert [(c.kind, c.running) for c in store.clocks_of("h-1")] == [("ack", False), ("resolve", True)]


def test_a_leg_closed_within_the_history_is_kept():
    store = feed(SlaReadModel(HISTORY), *closed_leg("h-1", T0), contact("k-1", T0 + HISTORY))
    assert store.leg("h-1") is not None and len(store.clocks_of("h-1")) == 2
    assert store.scorecard("billing", Period(T0, T0 + H)).legs == 1


def test_a_reopened_leg_is_kept_while_open_and_forgotten_the_history_after_it_closes_again():
    later = T0 + 2 * HISTORY
    store = feed(SlaReadModel(HISTORY), *closed_leg("h-1", T0)[:-1], started(T0 + 2 * H, clock=RESOLVE, sequence=2),
                 met(T0 + H, T0 + 4 * H, clock=RESOLVE), contact("k-1", later))
    assert store.leg("h-1") is not None
    feed(store, met(later, later + H, clock=RESOLVE, sequence=2), contact("k-2", later + HISTORY - H))
    assert store.leg("h-1") is not None
    feed(store, contact("k-3", later + HISTORY))
    assert store.leg("h-1") is None


def test_contacts_and_repeats_are_kept_the_history_after_their_instant():
    store = feed(SlaReadModel(HISTORY), contact("k-1", T0),
                 repeat("r-1", types_pb2.REPEAT_CAUSE_UNATTRIBUTED, handoff_id="", department="", at=T0),
                 contact("k-2", T0 + HISTORY - H))
    whole = store.scorecard("", Period(T0, T0 + H))
    assert (whole.fcr_n, whole.repeat_contacts["unattributed"]) == (1, 1)
    feed(store, contact("k-3", T0 + HISTORY))
    whole = store.scorecard("", Period(T0, T0 + H))
    assert (whole.fcr_n, whole.repeat_contacts["unattributed"]) == (0, 0)


def test_a_repeat_naming_a_kept_leg_stays_with_it():
    store = feed(SlaReadModel(HISTORY), created(), started(), started(clock=RESOLVE), repeat("r-1", at=T0 + H),
                 contact("k-1", T0 + 2 * HISTORY))
    assert store.scorecard("billing", Period(T0, T0 + 2 * H)).avoidable_repeats == 1
    feed(store, met(T0 + 2 * HISTORY, T0 + 4 * H, clock=RESOLVE), met(T0 + H, T0 + 4 * H),
         contact("k-2", T0 + 3 * HISTORY))
    assert store.sizes()["repeats"] == 0


def test_the_store_shrinks_back_once_many_closed_legs_pass_the_history():
    store = SlaReadModel(HISTORY)
    for n in range(200):
        at = T0 + n * H
        feed(store, *closed_leg(f"h-{n}", at, department=f"d-{n % 7}"), repeat(f"r-{n}", handoff_id=f"h-{n}", at=at),
             contact(f"k-{n}", at), handoff_event("reopened", handoff_events_pb2.HandoffReopened(), f"h-{n}", at=at,
                                                  event_id=f"e-{n}"))
    assert store.sizes()["legs"] == 200
    feed(store, contact("k-last", T0 + 400 * H + HISTORY))
    sizes = store.sizes()
    assert sizes == {"legs": 0, "clocks": 0, "departments": 0, "repeats": 0, "reopens": 0, "contacts": 1,
                     "attached": 0, "expiries": 1, "heap": 1}


def test_sla_events_read_before_the_legs_creation_still_make_one_leg():
    store = feed(SlaReadModel(HISTORY), started(T0 + HISTORY), contact("k-1", T0 + HISTORY + H), created(at=T0 + HISTORY))
    assert store.leg("h-1").created_at == T0 + HISTORY
    assert [c.kind for c in store.clocks_of("h-1")] == ["ack"]
    # closed legs whose SLA events came first are forgotten all the same
    feed(store, *closed_leg("h-2", T0 + HISTORY)[1:], created("h-2", T0 + HISTORY), contact("k-2", T0 + 3 * HISTORY))
    assert store.leg("h-2") is None and store.leg("h-1") is not None


@pytest.mark.parametrize("late", [
    lambda: started(T0, handoff_id="h-1"),
    lambda: met(T0 + H, T0 + 4 * H, clock=RESOLVE, handoff_id="h-1"),
    lambda: recomputed(T0 + 9 * H, 9 * H, handoff_id="h-1"),
    lambda: created("h-1", T0),
    lambda: repeat("r-1", handoff_id="h-1", at=T0 + H),
    lambda: handoff_event("reopened", handoff_events_pb2.HandoffReopened(), "h-1", at=T0 + 2 * H, event_id="e-1"),
])
def test_a_late_record_of_a_forgotten_leg_leaves_nothing_behind(late):
    store = feed(SlaReadModel(HISTORY), *closed_leg("h-1", T0), contact("k-1", T0 + 2 * HISTORY))
    assert store.leg("h-1") is None
    feed(store, late())
    assert store.leg("h-1") is None and store.clocks_of("h-1") == []
    assert {name: size for name, size in store.sizes().items() if name != "heap"} == {
        "legs": 0, "clocks": 0, "departments": 0, "repeats": 0, "reopens": 0, "contacts": 1, "attached": 0,
        "expiries": 1}
