"""SLA exactness: a clock reaches an instant only by running past it, a priority change never
changes a leg's past, and a pause that used up its allowance lets the clock run again.

Each history is applied the way the clock engine applies one: what fell due before a change
first (`due_events`), then the change.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from sla.domain.calendar import AlwaysOpen, WorkingHours
from sla.domain.clocks import (
    ACK,
    RESOLVE,
    TICK,
    ClockBreached,
    ClockMet,
    ClockResumed,
    ClockWarning,
    due_events,
    next_due,
    pause,
    recompute,
    resume,
    start,
    stop,
)
from sla.domain.policy import Policy, Target
from tests.unit.conftest import leg_info

H, MIN = timedelta(hours=1), timedelta(minutes=1)
ALWAYS = AlwaysOpen("always")
FRACTIONS = (0.5, 0.8)
# Monday to Friday 08:00-17:00 UTC.
OFFICE = WorkingHours("office", "UTC", {day: ((time(8), time(17)),) for day in range(5)})


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=timezone.utc)


def rules(priority: str = "*", ack=30 * MIN, resolve=8 * H, calendar=ALWAYS, max_pause=None) -> Policy:
    return Policy("billing", priority, "*", ack, resolve, calendar, FRACTIONS, max_pause=max_pause).with_version()


NORMAL, HIGH = rules(), rules("HIGH", resolve=4 * H)


def due_then(state, when, change, calendar=ALWAYS, max_pause=None):
    """What fell due before `when`, then `change(state)`, as the engine applies a change."""
    state, due = due_events(state, when, calendar, FRACTIONS, max_pause)
    state, events = change(state)
    return state, [*due, *events]


def told(events) -> list[tuple[str, datetime]]:
    """(what, when) of each event: a warning by its fraction."""
    return [(f"warning {e.fraction}" if isinstance(e, ClockWarning) else type(e).__name__, e.occurred_at)
            for e in events]


# --- 1. a stop exactly at an instant ---------------------------------------------------------


def test_an_ack_exactly_at_the_deadline_is_met_without_a_breach():
    # given 24x7, ack 30m: created 2026-05-06 10:00
    state, _ = start(leg_info(), rules(), at(6, 10), kinds=(ACK,))

    # when acknowledged at 10:30, after whatever fell due by then
    state, events = due_then(state, at(6, 10, 30), lambda s: stop(s, ACK, at(6, 10, 30), ALWAYS))

    # then met in time: no breach, not late, nothing overdue
    assert told(events) == [("warning 0.5", at(6, 10, 15)), ("warning 0.8", at(6, 10, 24)),
                            ("ClockMet", at(6, 10, 30))]
    met = events[-1]
    assert (met.late, met.overdue, met.elapsed) == (False, timedelta(0), 30 * MIN)
    assert not state.clocks[ACK].breached


def test_a_stop_exactly_at_a_warnings_instant_emits_no_warning():
    state, _ = start(leg_info(), rules(), at(6, 10), kinds=(ACK,))

    state, events = due_then(state, at(6, 10, 15), lambda s: stop(s, ACK, at(6, 10, 15), ALWAYS))

    assert told(events) == [("ClockMet", at(6, 10, 15))]


def test_a_warnings_instant_is_due_only_once_the_clock_runs_past_it():
    state, _ = start(leg_info(), rules(), at(6, 10), kinds=(ACK,))

    assert next_due(state, ALWAYS, FRACTIONS) == at(6, 10, 15) + TICK
    assert due_events(state, at(6, 10, 15), ALWAYS, FRACTIONS)[1] == []
    assert told(due_events(state, at(6, 10, 15) + TICK, ALWAYS, FRACTIONS)[1]) == [("warning 0.5", at(6, 10, 15))]


# --- 2. the pause allowance used up ----------------------------------------------------------


def test_a_pause_that_used_up_max_pause_runs_the_clock_again_and_says_so():
    # given 24x7, resolve 8h, max_pause 4h: created 00:00, waiting on the customer from 01:00
    policy = rules(resolve=8 * H, max_pause=4 * H)
    state, _ = start(leg_info(), policy, at(30, 0), kinds=(RESOLVE,))
    state, _ = due_then(state, at(30, 1), lambda s: pause(s, at(30, 1), ALWAYS, 4 * H), max_pause=4 * H)

    # when the clock is looked at once 05:00 has passed, and work resumes at 11:00
    assert next_due(state, ALWAYS, FRACTIONS, 4 * H) == at(30, 5) + TICK
    state, ran_out = due_events(state, at(30, 5) + TICK, ALWAYS, FRACTIONS, 4 * H)
    state, resumed = due_then(state, at(30, 11), lambda s: resume(s, at(30, 11), ALWAYS, 4 * H), max_pause=4 * H)

    # then the clock ran again from 05:00 with its deadline at 12:00, and the status change
    # at 11:00 resumes nothing more
    [event] = ran_out
    assert isinstance(event, ClockResumed) and event.allowance_used
    assert (event.occurred_at, event.previous_deadline, event.clock.deadline) == (at(30, 5), at(30, 8), at(30, 12))
    assert told(resumed) == [("warning 0.5", at(30, 8)), ("warning 0.8", at(30, 10, 24))]
    assert not state.clocks[RESOLVE].is_paused and state.clocks[RESOLVE].deadline == at(30, 12)
    assert told(due_events(state, at(30, 12) + TICK, ALWAYS, FRACTIONS, 4 * H)[1]) == [("ClockBreached", at(30, 12))]


def test_a_resume_before_the_allowance_is_used_up_is_not_marked_as_used_up():
    policy = rules(resolve=8 * H, max_pause=4 * H)
    state, _ = start(leg_info(), policy, at(30, 0), kinds=(RESOLVE,))
    state, _ = pause(state, at(30, 1), ALWAYS, 4 * H)

    _, [event] = resume(state, at(30, 3), ALWAYS, 4 * H)

    assert not event.allowance_used and event.clock.deadline == at(30, 10)


# --- 3 and 5. a priority change never changes the past ---------------------------------------


def test_a_priority_change_past_the_new_deadline_breaches_at_the_change():
    # given 24x7, resolve 8h (high: 4h): created 2026-05-22 00:00
    state, events = start(leg_info(), NORMAL, at(22, 0), kinds=(RESOLVE,))

    # when raised to high at 06:00 and resolved at 09:00
    state, changed = due_then(state, at(22, 6), lambda s: recompute(s, HIGH, at(22, 6), "HIGH"))
    state, resolved = due_then(state, at(22, 9), lambda s: stop(s, RESOLVE, at(22, 9), ALWAYS))

    # then within its SLA until 06:00 (its half warning at 04:00); at 06:00 the rest happens,
    # each event carrying the recomputed deadline, 04:00
    assert told(changed) == [("warning 0.5", at(22, 4)), ("ClockRecomputed", at(22, 6)),
                             ("warning 0.8", at(22, 6)), ("ClockBreached", at(22, 6))]
    assert all(e.clock.deadline == at(22, 4) for e in changed[1:])
    assert told(resolved) == [("ClockMet", at(22, 9))]
    assert (resolved[0].late, resolved[0].overdue) == (True, 5 * H)


def test_a_priority_change_while_paused_past_the_new_target_breaches_at_the_change():
    # given created 2026-05-26 00:00, waiting on the customer from 06:00 (6 h run)
    state, _ = start(leg_info(), NORMAL, at(26, 0), kinds=(RESOLVE,))
    state, paused = due_then(state, at(26, 6), lambda s: pause(s, at(26, 6), ALWAYS))

    # when raised to high at 07:00, in progress at 10:00, resolved at 12:00
    state, changed = due_then(state, at(26, 7), lambda s: recompute(s, HIGH, at(26, 7), "HIGH"))
    state, resumed = due_then(state, at(26, 10), lambda s: resume(s, at(26, 10), ALWAYS))
    state, resolved = due_then(state, at(26, 12), lambda s: stop(s, RESOLVE, at(26, 12), ALWAYS))

    # then 6 h run of the new 4 h: the warning not yet emitted and the breach at 07:00
    assert told(paused) == [("warning 0.5", at(26, 4)), ("ClockPaused", at(26, 6))]
    assert told(changed) == [("ClockRecomputed", at(26, 7)), ("warning 0.8", at(26, 7)), ("ClockBreached", at(26, 7))]
    assert told(resumed) == [("ClockResumed", at(26, 10))]
    [met] = resolved
    assert isinstance(met, ClockMet) and (met.late, met.overdue, met.elapsed) == (True, 4 * H, 8 * H)


def test_fractions_after_a_pause_count_the_business_time_that_actually_ran():
    # given created 00:00, paused 03:30-05:30 (3.5 h run)
    state, _ = start(leg_info(), NORMAL, at(26, 0), kinds=(RESOLVE,))
    state, _ = due_then(state, at(26, 3, 30), lambda s: pause(s, at(26, 3, 30), ALWAYS))
    state, _ = due_then(state, at(26, 5, 30), lambda s: resume(s, at(26, 5, 30), ALWAYS))

    # when raised to high at 05:40 (3 h 40 min run) and looked at long after
    state, changed = due_then(state, at(26, 5, 40), lambda s: recompute(s, HIGH, at(26, 5, 40), "HIGH"))
    _, later = due_events(state, at(26, 9), ALWAYS, FRACTIONS)

    # then both warnings at the change (2 h and 3.2 h already run), the breach at 06:00 when
    # 4 h have run
    assert told(changed) == [("ClockRecomputed", at(26, 5, 40)), ("warning 0.5", at(26, 5, 40)),
                             ("warning 0.8", at(26, 5, 40))]
    assert told(later) == [("ClockBreached", at(26, 6))]
    assert isinstance(later[0], ClockBreached) and later[0].clock.deadline == at(26, 6)


def test_a_priority_change_exactly_at_the_new_deadline_breaches_only_once_the_clock_runs_past_it():
    state, _ = start(leg_info(), NORMAL, at(22, 0), kinds=(RESOLVE,))

    state, changed = due_then(state, at(22, 4), lambda s: recompute(s, HIGH, at(22, 4), "HIGH"))

    # the old half warning (04:00) was not run past; both of the new ones were (02:00, 03:12)
    assert told(changed) == [("ClockRecomputed", at(22, 4)), ("warning 0.5", at(22, 4)), ("warning 0.8", at(22, 4))]
    assert due_events(state, at(22, 4), ALWAYS, FRACTIONS)[1] == []
    assert told(due_events(state, at(22, 4) + TICK, ALWAYS, FRACTIONS)[1]) == [("ClockBreached", at(22, 4))]


# --- 9. a target reached at closing time -----------------------------------------------------


def test_a_target_reached_at_closing_time_is_met_that_evening_and_breaches_at_the_next_opening():
    # given 8 h on office hours from Monday 2026-05-04 09:00: reached at 17:00
    policy = rules(resolve=8 * H, calendar=OFFICE)
    state, _ = start(leg_info(), policy, at(4, 9), kinds=(RESOLVE,))
    assert state.clocks[RESOLVE].deadline == at(4, 17)

    # then stopped at 18:00 it is met, not late, nothing overdue
    _, [met] = stop(state, RESOLVE, at(4, 18), OFFICE)
    assert (met.late, met.overdue) == (False, timedelta(0))

    # and running on, it breaches at Tuesday's opening, once it runs past 08:00
    assert next_due(state, OFFICE) == at(5, 8) + TICK
    assert due_events(state, at(5, 8), OFFICE)[1] == []
    _, [breach] = due_events(state, at(5, 8, 30), OFFICE)
    assert (breach.occurred_at, breach.clock.deadline) == (at(5, 8), at(4, 17))
    _, [_, late] = stop(state, RESOLVE, at(5, 8, 30), OFFICE)
    assert (late.late, late.overdue) == (True, 30 * MIN)


def test_a_priority_change_onto_another_calendar_counts_no_pause_that_never_was():
    # given a resolve clock of 2 working days on office hours, started Tuesday 2026-05-05 00:00
    office = rules(resolve=Target(days=2), calendar=OFFICE)
    urgent = rules("URGENT", resolve=8 * H)
    state, _ = start(leg_info(), office, at(5, 0), kinds=(RESOLVE,))

    # when raised at 09:00 to urgent: 8 h on 24x7, run past at 08:00
    state, changed = due_then(state, at(5, 9), lambda s: recompute(s, urgent, at(5, 9), "URGENT", OFFICE),
                              calendar=OFFICE)

    # then the 9 h run on the new calendar exceed the new target: everything happens at the change
    assert told(changed) == [("ClockRecomputed", at(5, 9)), ("warning 0.5", at(5, 9)), ("warning 0.8", at(5, 9)),
                             ("ClockBreached", at(5, 9))]
    assert state.clocks[RESOLVE].deadline == at(5, 8)
