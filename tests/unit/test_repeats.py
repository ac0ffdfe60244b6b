"""Repeat contacts: the window and the grace, attribution to a leg, cause, cost, ids and pruning."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import derived_event_id
from sla.domain.repeats import (
    AFTER_RESOLUTION,
    CANCELLED,
    REOPENED,
    RESOLVED,
    SLA_BREACHED,
    TRANSFERRED,
    UNATTRIBUTED,
    WITHIN_SLA,
    Contact,
    InvalidRules,
    LegHistory,
    RepeatRules,
    attribute,
    detect,
    previous_contact,
    prune_contacts,
    prune_legs,
)
from tests.unit.conftest import T0

MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
SECOND = timedelta(seconds=1)
COSTS = {"call": 450, "chat": 250, "email": 300, "messaging": 200}
RULES = RepeatRules(cost_per_contact=COSTS)
# The contact under test; earlier contacts and legs are placed relative to it.
AT = T0 + 30 * DAY


def contact(contact_id: str = "c-2", at=AT, case_id: str = "", channel: str = "call") -> Contact:
    return Contact(contact_id, "cust-1", case_id, channel, at)


def leg(handoff_id: str = "h-1", created=AT - 2 * DAY, *changes, case_id: str = "case-1", breached=None):
    """A billing leg; `changes` are (instant, change) pairs."""
    return LegHistory(handoff_id, case_id, "billing", created, tuple(changes), breached)


def test_rules_default_to_a_week_a_quarter_hour_euros_and_no_costs():
    rules = RepeatRules()

    assert (rules.window, rules.transfer_grace, rules.currency) == (7 * DAY, 15 * MIN, "EUR")
    assert rules.cost_of("call") == 0


@pytest.mark.parametrize(
    "channel, cost",
    [("call", 450), ("chat", 250), ("email", 300), ("messaging", 200), ("unspecified", 0), ("fax", 0)],
)
def test_a_contact_costs_what_its_channel_costs_and_an_unpriced_channel_nothing(channel, cost):
    assert RULES.cost_of(channel) == cost


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"window": timedelta(0)}, "window: 0:00:00 must be longer than zero"),
        ({"transfer_grace": 7 * DAY}, "transfer_grace: 7 days, 0:00:00 must be at least zero and shorter"),
        ({"transfer_grace": -SECOND}, "transfer_grace: -1 day, 23:59:59 must be at least zero"),
        ({"currency": "eur"}, "currency: 'eur' is not an ISO 4217 code"),
        ({"currency": "EURO"}, "currency: 'EURO' is not an ISO 4217 code"),
        ({"cost_per_contact": {"fax": 100}}, "cost_per_contact: unknown channel 'fax'; use call, chat, email, messaging"),
        ({"cost_per_contact": {"call": -1}}, "cost_per_contact: call: -1 is not a whole, non-negative number"),
        ({"cost_per_contact": {"call": 4.5}}, "cost_per_contact: call: 4.5 is not a whole"),
        ({"cost_per_contact": {"call": True}}, "cost_per_contact: call: True is not a whole"),
    ],
    ids=["zero-window", "grace-as-long-as-window", "negative-grace", "lower-case-currency", "long-currency",
         "unknown-channel", "negative-cost", "fractional-cost", "boolean-cost"],
)
def test_rules_out_of_bounds_are_refused_naming_the_field(fields, reason):
    with pytest.raises(InvalidRules) as raised:
        RepeatRules(**fields)

    assert str(raised.value).startswith(reason), str(raised.value)
    assert raised.value.where[0] == next(iter(fields))


def test_rules_keep_their_own_copy_of_the_costs_and_stay_hashable():
    costs = {"call": 450}
    rules = RepeatRules(cost_per_contact=costs)

    costs["call"] = 1

    assert rules.cost_of("call") == 450
    assert hash(rules) == hash(RepeatRules(cost_per_contact={"call": 450}))


@pytest.mark.parametrize(
    "gap, repeats",
    [
        (MIN, False),
        (15 * MIN, False),
        (15 * MIN + SECOND, True),
        (3 * DAY, True),
        (7 * DAY, True),
        (7 * DAY + SECOND, False),
    ],
    ids=["within-grace", "exactly-grace", "just-over-grace", "mid-window", "exactly-window", "just-over-window"],
)
def test_a_contact_repeats_one_past_the_grace_and_within_the_window(gap, repeats):
    found = detect(contact(), [contact("c-1", AT - gap)], [], RULES)

    assert (found is not None) == repeats


def test_only_the_most_recent_earlier_contact_counts_so_a_transfer_is_no_repeat():
    # given: a call two days ago, and one transferred to us five minutes ago
    earlier = [contact("c-0", AT - 2 * DAY), contact("c-1", AT - 5 * MIN)]

    assert detect(contact(), earlier, [], RULES) is None


@pytest.mark.parametrize(
    "earlier, expected",
    [
        ([], None),
        ([contact("c-1", AT - DAY), contact("c-0", AT - 2 * DAY)], "c-1"),
        ([contact("c-1", AT - DAY), contact("c-3", AT + MIN)], "c-1"),
        ([contact("c-1", AT)], None),
        ([contact("c-1", AT - DAY), contact("c-2", AT - HOUR)], "c-1"),
        ([contact("c-b", AT - DAY), contact("c-a", AT - DAY)], "c-b"),
    ],
    ids=["none", "most-recent", "later-ignored", "same-instant-ignored", "own-id-ignored", "tie-by-greatest-id"],
)
def test_the_previous_contact_is_the_most_recent_other_one_strictly_before(earlier, expected):
    found = previous_contact(contact(), earlier)

    assert (found.contact_id if found else None) == expected


# (changes, instant asked, open?, resolution in force)
R1, R2, R3 = AT - 3 * HOUR, AT - 2 * HOUR, AT - HOUR


@pytest.mark.parametrize(
    "changes, at, is_open, resolved",
    [
        ((), AT, True, None),
        ((), AT - 3 * DAY, False, None),
        (((R1, RESOLVED),), R1 - SECOND, True, None),
        (((R1, RESOLVED),), R1, False, R1),
        (((R1, RESOLVED), (R2, REOPENED)), AT, True, None),
        (((R1, RESOLVED), (R2, REOPENED), (R3, RESOLVED)), AT, False, R3),
        (((R1, RESOLVED), (R2, RESOLVED)), AT, False, R1),
        (((R1, TRANSFERRED),), AT, False, None),
        (((R1, CANCELLED),), AT, False, None),
    ],
    ids=["new", "before-creation", "before-resolution", "at-resolution", "reopened", "resolved-again",
         "resolution-repeated-keeps-first", "transferred", "cancelled"],
)
def test_a_leg_is_open_until_it_ends_and_a_reopen_opens_it_again(changes, at, is_open, resolved):
    history = leg("h-1", AT - 2 * DAY, *changes)

    assert (history.is_open_at(at), history.resolved_at(at)) == (is_open, resolved)


def test_changes_arriving_out_of_order_are_kept_in_time_order_once():
    history = leg().with_change(R3, RESOLVED).with_change(R1, RESOLVED).with_change(R2, REOPENED)

    again = history.with_change(R2, REOPENED)

    assert again.changes == ((R1, RESOLVED), (R2, REOPENED), (R3, RESOLVED))
    assert again is history


def test_an_unknown_change_is_refused():
    with pytest.raises(ValueError, match="unknown change 'closed'"):
        leg().with_change(AT, "closed")


def test_the_earliest_breach_is_kept():
    assert leg().with_breach(R2).with_breach(R1).with_breach(R3).breached_at == R1


OPEN = leg("h-open", AT - 2 * DAY)
RESOLVED_LEG = leg("h-done", AT - 3 * DAY, (AT - DAY, RESOLVED))


@pytest.mark.parametrize(
    "legs, case_id, cause, handoff_id",
    [
        ([], "", UNATTRIBUTED, None),
        ([OPEN], "", WITHIN_SLA, "h-open"),
        ([leg("h-1", AT - DAY, breached=AT - HOUR)], "", SLA_BREACHED, "h-1"),
        ([leg("h-1", AT - DAY, breached=AT)], "", WITHIN_SLA, "h-1"),
        ([leg("h-1", AT - DAY, breached=AT + SECOND)], "", WITHIN_SLA, "h-1"),
        ([RESOLVED_LEG], "", AFTER_RESOLUTION, "h-done"),
        ([leg("h-1", AT - 3 * DAY, (AT - DAY, RESOLVED), breached=AT - 2 * DAY)], "", SLA_BREACHED, "h-1"),
        ([leg("h-1", AT - 9 * DAY, (AT - 7 * DAY, RESOLVED))], "", AFTER_RESOLUTION, "h-1"),
        ([leg("h-1", AT - 9 * DAY, (AT - 7 * DAY - SECOND, RESOLVED))], "", UNATTRIBUTED, None),
        ([leg("h-1", AT - 3 * DAY, (AT - 2 * DAY, RESOLVED), (AT - DAY, REOPENED))], "", WITHIN_SLA, "h-1"),
        ([leg("h-1", AT - 3 * DAY, (AT - DAY, TRANSFERRED))], "", UNATTRIBUTED, None),
        ([leg("h-1", AT - 3 * DAY, (AT - DAY, TRANSFERRED)), leg("h-2", AT - DAY)], "", WITHIN_SLA, "h-2"),
        ([leg("h-1", AT - 3 * DAY, (AT - DAY, CANCELLED))], "", UNATTRIBUTED, None),
        ([leg("h-1", AT + SECOND, breached=AT + HOUR)], "", UNATTRIBUTED, None),
        ([leg("h-1", AT)], "", WITHIN_SLA, "h-1"),
        ([leg("h-old", AT - 3 * DAY), leg("h-new", AT - DAY)], "", WITHIN_SLA, "h-new"),
        ([leg("h-b", AT - DAY), leg("h-a", AT - DAY)], "", WITHIN_SLA, "h-b"),
        ([leg("h-open", AT - 3 * DAY), leg("h-done", AT - HOUR, (AT - MIN, RESOLVED))], "", WITHIN_SLA, "h-open"),
        ([leg("h-late", AT - 2 * DAY, (AT - HOUR, RESOLVED)), leg("h-new", AT - DAY, (AT - 3 * HOUR, RESOLVED))],
         "", AFTER_RESOLUTION, "h-late"),
        ([OPEN, leg("h-2", AT - 3 * DAY, (AT - DAY, RESOLVED), case_id="case-2")], "case-2", AFTER_RESOLUTION, "h-2"),
        ([OPEN, leg("h-2", AT - 3 * DAY, case_id="case-2")], "case-9", WITHIN_SLA, "h-open"),
        ([OPEN, leg("h-2", AT + HOUR, case_id="case-2")], "case-2", WITHIN_SLA, "h-open"),
        ([OPEN, leg("h-2", AT - 20 * DAY, (AT - 10 * DAY, RESOLVED), case_id="case-2")], "case-2", WITHIN_SLA,
         "h-open"),
        ([OPEN, leg("h-2", AT - 3 * DAY, (AT - DAY, CANCELLED), case_id="case-2")], "case-2", UNATTRIBUTED, None),
    ],
    ids=[
        "no-legs", "open", "breached-before", "breached-at-the-contact", "breached-after", "resolved",
        "resolved-after-a-breach", "resolved-exactly-a-window-before", "resolved-before-the-window", "reopened",
        "transferred", "transferred-to-an-open-leg", "cancelled", "created-after-the-contact",
        "created-at-the-contact", "newest-open-leg", "creation-tie-by-greatest-id", "open-before-resolved",
        "latest-resolution-not-latest-creation", "case-scope-over-a-newer-open-leg", "unknown-case-uses-all-legs",
        "case-with-only-a-later-leg-uses-all", "case-with-only-stale-legs-uses-all",
        "case-with-a-recently-cancelled-leg-stays-scoped",
    ],
)
def test_a_repeat_is_blamed_on_the_right_leg_for_the_right_cause(legs, case_id, cause, handoff_id):
    found_cause, found_leg = attribute(contact(case_id=case_id), legs, RULES)

    assert (found_cause, found_leg.handoff_id if found_leg else None) == (cause, handoff_id)


@pytest.mark.parametrize(
    "channel, legs, cause, cost, avoidable",
    [
        ("call", [leg(breached=AT - HOUR)], SLA_BREACHED, 450, True),
        ("chat", [leg()], WITHIN_SLA, 250, False),
        ("email", [RESOLVED_LEG], AFTER_RESOLUTION, 300, False),
        ("messaging", [], UNATTRIBUTED, 200, False),
        ("unspecified", [], UNATTRIBUTED, 0, False),
    ],
)
def test_every_repeat_carries_its_channels_cost_and_only_a_breach_makes_it_avoidable(
    channel, legs, cause, cost, avoidable
):
    found = detect(contact(channel=channel), [contact("c-1", AT - DAY)], legs, RULES)

    assert (found.cause, found.cost_minor, found.currency, found.avoidable) == (cause, cost, "EUR", avoidable)
    assert (found.previous_contact_id, found.contact) == ("c-1", contact(channel=channel))


def test_a_repeat_id_derives_from_its_contact_alone():
    first = detect(contact(), [contact("c-1", AT - DAY)], [], RULES)
    again = detect(contact(), [contact("c-0", AT - 2 * DAY), contact("c-1", AT - HOUR)], [OPEN], RULES)
    other = detect(contact("c-3"), [contact("c-1", AT - DAY)], [], RULES)

    assert first.event_id == again.event_id == derived_event_id("c-2", "repeat")
    assert other.event_id != first.event_id


NOW = AT


@pytest.mark.parametrize(
    "offsets, kept",
    [
        ([DAY, 3 * DAY], ["c-3d", "c-1d"]),
        ([7 * DAY, 7 * DAY + SECOND], ["c-7d"]),
        ([8 * DAY, 9 * DAY], ["c-8d"]),
        ([-HOUR, 10 * DAY], ["c--1h"]),
        ([], []),
    ],
    ids=["within-window", "exactly-window-kept", "latest-kept-however-old", "a-later-contact-is-kept", "none"],
)
def test_pruning_contacts_keeps_those_still_repeatable_and_the_latest(offsets, kept):
    def name(offset: timedelta) -> str:
        return f"c-{offset.days}d" if offset >= DAY else f"c--{-offset // HOUR}h"

    contacts = [contact(name(offset), NOW - offset) for offset in offsets]

    assert [c.contact_id for c in prune_contacts(contacts, NOW, RULES)] == kept


def test_pruning_contacts_keeps_a_redelivered_contact_once():
    twice = [contact("c-1", NOW - DAY), contact("c-1", NOW - DAY)]

    assert prune_contacts(twice, NOW, RULES) == [contact("c-1", NOW - DAY)]


@pytest.mark.parametrize(
    "history, kept",
    [
        (leg("h-1", NOW - 30 * DAY), True),
        (leg("h-1", NOW - 30 * DAY, (NOW - 7 * DAY, RESOLVED)), True),
        (leg("h-1", NOW - 30 * DAY, (NOW - 7 * DAY - SECOND, RESOLVED)), False),
        (leg("h-1", NOW - 30 * DAY, (NOW - 8 * DAY, TRANSFERRED)), False),
        (leg("h-1", NOW - 30 * DAY, (NOW - 20 * DAY, RESOLVED), (NOW - 10 * DAY, REOPENED)), True),
        (leg("h-1", NOW + HOUR), True),
        (leg("h-1", NOW - 30 * DAY, (NOW - 20 * DAY, RESOLVED), (NOW + HOUR, REOPENED)), True),
    ],
    ids=["open", "resolved-exactly-a-window-ago", "resolved-before-the-window", "transferred-long-ago",
         "reopened", "created-later", "reopened-later"],
)
def test_pruning_legs_keeps_open_legs_and_those_ended_within_the_window(history, kept):
    assert (prune_legs([history], NOW, RULES) == [history]) == kept


# Properties, on a one-day window so that both edges are often hit.
SMALL = RepeatRules(window=DAY, transfer_grace=15 * MIN, cost_per_contact=COSTS)
minutes = st.integers(min_value=0, max_value=4 * 24 * 60).map(lambda m: T0 + m * MIN)
contacts = st.lists(st.tuples(minutes, st.sampled_from(["", "case-1", "case-2"])), max_size=8).map(
    lambda items: [Contact(f"c-{i}", "cust-1", case, "call", at) for i, (at, case) in enumerate(items)]
)
legs = st.lists(
    st.tuples(minutes, st.lists(st.tuples(minutes, st.sampled_from([RESOLVED, REOPENED, TRANSFERRED])), max_size=3),
              st.none() | minutes, st.sampled_from(["case-1", "case-2"])),
    max_size=5,
).map(lambda items: [_leg_of(i, *item) for i, item in enumerate(items)])


def _leg_of(index, created, changes, breached, case_id) -> LegHistory:
    history = LegHistory(f"h-{index}", case_id, "billing", created, breached_at=breached)
    for at, what in changes:
        history = history.with_change(at, what)
    return history


@settings(max_examples=300, deadline=None)
@given(contacts, legs, minutes, st.sampled_from(["", "case-1", "case-2"]), st.randoms())
def test_detection_does_not_depend_on_the_order_of_contacts_or_legs(earlier, histories, at, case_id, random):
    new = Contact("new", "cust-1", case_id, "call", at)
    shuffled_contacts, shuffled_legs = earlier[:], histories[:]
    random.shuffle(shuffled_contacts)
    random.shuffle(shuffled_legs)

    assert detect(new, shuffled_contacts, shuffled_legs, SMALL) == detect(new, earlier, histories, SMALL)


@settings(max_examples=300, deadline=None)
@given(contacts, legs, minutes, st.integers(min_value=0, max_value=2 * 24 * 60), st.sampled_from(["", "case-1"]))
def test_pruning_at_now_never_changes_a_detection_from_now_on(earlier, histories, now, later, case_id):
    new = Contact("new", "cust-1", case_id, "call", now + later * MIN)

    pruned = detect(new, prune_contacts(earlier, now, SMALL), prune_legs(histories, now, SMALL), SMALL)

    assert pruned == detect(new, earlier, histories, SMALL)


@settings(max_examples=300, deadline=None)
@given(contacts, minutes)
def test_a_detected_repeat_lies_past_the_grace_and_within_the_window_of_the_latest_earlier_contact(earlier, at):
    found = detect(Contact("new", "cust-1", "", "call", at), earlier, [], SMALL)

    before = [c for c in earlier if c.contacted_at < at]
    latest = max((c.contacted_at for c in before), default=None)
    assert (found is not None) == (latest is not None and SMALL.transfer_grace < at - latest <= SMALL.window)
    if found:
        previous = next(c for c in earlier if c.contact_id == found.previous_contact_id)
        assert previous.contacted_at == latest


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(minutes, st.sampled_from([RESOLVED, REOPENED, CANCELLED])), max_size=6,
                unique_by=lambda change: change[0]), st.randoms())
def test_changes_applied_in_any_order_give_the_same_history(changes, random):
    shuffled = changes[:]
    random.shuffle(shuffled)

    assert _leg_of(0, T0, shuffled, None, "case-1") == _leg_of(0, T0, changes, None, "case-1")


def test_the_timeline_in_docs_repeat_contacts_md_comes_out_as_documented():
    # given: case-7's urgent billing leg, opened Mon 09:02, breached 17:02, resolved Tue 10:00
    monday = T0.replace(hour=0)
    h1 = leg("h-1", monday + 9 * HOUR + 2 * MIN, (monday + DAY + 10 * HOUR, RESOLVED), case_id="case-7",
             breached=monday + 17 * HOUR + 2 * MIN)
    timeline = [
        ("c-1", monday + 9 * HOUR, "call", None),
        ("c-2", monday + 9 * HOUR + 10 * MIN, "call", None),
        ("c-3", monday + 13 * HOUR, "chat", (WITHIN_SLA, 250)),
        ("c-4", monday + 18 * HOUR + 30 * MIN, "call", (SLA_BREACHED, 450)),
        ("c-5", monday + 3 * DAY + 11 * HOUR, "email", (SLA_BREACHED, 300)),
        ("c-6", monday + 13 * DAY + 11 * HOUR, "call", None),
    ]

    # when
    seen, results = [], []
    for contact_id, at, channel, _ in timeline:
        new = Contact(contact_id, "cust-42", "case-7", channel, at)
        found = detect(new, seen, [h1], RULES)
        results.append(found and (found.cause, found.cost_minor))
        seen.append(new)

    # then
    assert results == [expected for *_, expected in timeline]
