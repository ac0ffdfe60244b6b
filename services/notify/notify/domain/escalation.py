"""Escalation: who is told next, and when, while nobody acknowledges a notification.

The timeline is a pure function of the notification time, the receiver's policy and the
reminder interval. Level N is due at `notified_at + levels[N-1].after` (cumulative);
between levels, and after the last one, whoever holds the notification is reminded every
`remind_every`. Acknowledgement — the Acknowledge RPC, or the leg being acknowledged or
resolved — ends it.

Every step's id is derived from the notification, the level and the reminder's number, so
a restart that re-reads an older state derives the same ids and dedup drops the repeats.
Escalations are never skipped (each level is told once, in order, even after downtime);
reminders that fell due while a later step was also due are skipped, so catching up
never sends a burst of stale reminders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from common.ids import derived_event_id
from notify.domain.routing import EscalationPolicy

ESCALATE, REMIND = "escalate", "remind"
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class EscalationState:
    """One notification's escalation: the level reached, reminders sent there, acknowledgement."""

    notification_id: str
    receiver: str
    notified_at: datetime
    policy: EscalationPolicy
    remind_every: timedelta | None
    level: int = 0
    reminded: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""


@dataclass(frozen=True)
class Step:
    """Tell `receiver`: escalated to `level`, or reminder number `reminder` at `level`."""

    step_id: str
    action: str
    level: int
    receiver: str
    due_at: datetime
    reminder: int = 0


def start(
    notification_id: str, receiver: str, notified_at: datetime, policy: EscalationPolicy,
    repeat_interval: timedelta | None,
) -> EscalationState:
    """The escalation of a notification sent to `receiver` at `notified_at`.

    Reminders come every `policy.remind_every`, else every `repeat_interval` of the route.
    """
    return EscalationState(notification_id, receiver, notified_at, policy, policy.remind_every or repeat_interval)


def acknowledge(state: EscalationState, by: str, at: datetime) -> EscalationState:
    """The escalation stopped by `by` at `at`; a second acknowledgement changes nothing."""
    if state.acknowledged_at is not None:
        return state
    return replace(state, acknowledged_at=at, acknowledged_by=by)


def next_step(state: EscalationState, now: datetime) -> Step | None:
    """The step due at `now` that has not been taken yet, or None. Call until None."""
    if state.acknowledged_at is not None:
        return None
    following = state.level + 1
    if following <= len(state.policy.levels) and now >= _level_start(state, following):
        return _step(state, ESCALATE, following, 0)
    latest = _latest_reminder(state, now)
    if latest > state.reminded:
        return _step(state, REMIND, state.level, latest)
    return None


def taken(state: EscalationState, step: Step) -> EscalationState:
    """The state after `step` was handed over for delivery (idempotent)."""
    if step.action == ESCALATE and step.level > state.level:
        return replace(state, level=step.level, reminded=0)
    if step.action == REMIND and step.level == state.level and step.reminder > state.reminded:
        return replace(state, reminded=step.reminder)
    return state


def due_at(state: EscalationState) -> datetime | None:
    """When the next step falls due if nothing changes; None once acknowledged or finished."""
    if state.acknowledged_at is not None:
        return None
    candidates = []
    if state.level < len(state.policy.levels):
        candidates.append(_level_start(state, state.level + 1))
    if state.remind_every:
        reminder = _level_start(state, state.level) + (state.reminded + 1) * state.remind_every
        end = _level_end(state, state.level)
        if end is None or reminder < end:
            candidates.append(reminder)
    return min(candidates, default=None)


def _latest_reminder(state: EscalationState, now: datetime) -> int:
    """The number of the last reminder due by `now` at the current level (0: none)."""
    if not state.remind_every:
        return 0
    begin, end = _level_start(state, state.level), _level_end(state, state.level)
    if now < begin:
        return 0
    latest = (now - begin) // state.remind_every
    if end is not None:
        latest = min(latest, (end - begin - _TICK) // state.remind_every)
    return latest


def _level_start(state: EscalationState, level: int) -> datetime:
    return state.notified_at if level == 0 else state.notified_at + state.policy.levels[level - 1].after


def _level_end(state: EscalationState, level: int) -> datetime | None:
    return _level_start(state, level + 1) if level < len(state.policy.levels) else None


def _receiver(state: EscalationState, level: int) -> str:
    return state.receiver if level == 0 else state.policy.levels[level - 1].receiver


def _step(state: EscalationState, action: str, level: int, reminder: int) -> Step:
    if action == ESCALATE:
        step_id, due = derived_event_id("escalation", state.notification_id, level), _level_start(state, level)
    else:
        step_id = derived_event_id("reminder", state.notification_id, level, reminder)
        due = _level_start(state, level) + reminder * state.remind_every
    return Step(step_id, action, level, _receiver(state, level), due, reminder)
