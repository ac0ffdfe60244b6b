"""Stage 1: what a source event is worth telling, and to whom (before any delivery).

A *notice* is a Notification addressed to nobody yet: its key names what it is about, so
the same source event read twice yields the same key. Routing turns a notice into one
notification per route reached; its id derives from (key, receiver), so a re-read source
requests the same ids and dedup drops the repeats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from common.ids import derived_event_id
from notify.domain.notifications import (
    AVOIDABLE_REPEAT, BREACH, NEW_LEG, RESOLVED_AFTER_BREACH, WARNING, Notification,
)
from notify.domain.routing import Route, RouteMatch
from notify.domain.values import evolve


class End(NamedTuple):
    """The leg was acknowledged, resolved, transferred or cancelled at `at` (`by` says which)."""

    at: datetime
    by: str
    # The resolution's event id when `by` is a resolution, else "".
    resolution_id: str = ""


@dataclass(frozen=True)
class Leg:
    """What stage 1 remembers of a leg: its labels, whether it breached, what it requested,
    and when it was acknowledged or ended (so a notice that comes late is acknowledged)."""

    handoff_id: str
    case_id: str
    customer_ref: str
    department: str
    priority: str = "NORMAL"
    category: str = ""
    breached: bool = False
    # (notification_id, receiver) requested about this leg and not yet acknowledged.
    open: tuple[tuple[str, str], ...] = ()
    ends: tuple[End, ...] = ()
    # Imported with `handoffctl import --notify`: its notifications are delivered however old.
    notify_history: bool = False
    # Every notification id requested about this leg: forgotten with the leg (retention).
    requested: tuple[str, ...] = ()


def _notice(leg: Leg, kind: str, key: str, clock: str, title: str, body: str, at: datetime) -> Notification:
    return Notification(
        notification_id="", key=key, kind=kind, receiver="", department=leg.department, priority=leg.priority,
        handoff_id=leg.handoff_id, case_id=leg.case_id, customer_ref=leg.customer_ref, clock=clock,
        title=title, body=body, occurred_at=at, category=leg.category,
    )


def warning_notice(leg: Leg, clock: str, fraction: float, deadline: datetime, at: datetime) -> Notification:
    """A clock passed `fraction` of its target; the key names the clock's deadline and the fraction."""
    percent, due = round(fraction * 100), deadline.isoformat()
    return _notice(leg, WARNING, f"{WARNING}:{leg.handoff_id}:{clock}:{due}:{percent}", clock,
                   f"{clock} SLA at {percent}%: {leg.priority} handoff {leg.handoff_id}",
                   f"Case {leg.case_id} held by {leg.department} is due by {due}.", at)


def breach_notice(leg: Leg, clock: str, deadline: datetime) -> Notification:
    """A clock breached; the key names the leg, the clock and the deadline."""
    due = deadline.isoformat()
    return _notice(leg, BREACH, f"{BREACH}:{leg.handoff_id}:{clock}:{due}", clock,
                   f"{clock} SLA breached: {leg.priority} handoff {leg.handoff_id}",
                   f"Case {leg.case_id} held by {leg.department} passed its {clock} deadline of {due}.", deadline)


def repeat_notice(leg: Leg, contact_id: str, at: datetime) -> Notification:
    """The customer called again because the leg had breached (an avoidable repeat)."""
    return _notice(leg, AVOIDABLE_REPEAT, f"{AVOIDABLE_REPEAT}:{contact_id}", "",
                   f"avoidable repeat contact on breached handoff {leg.handoff_id}",
                   f"Customer {leg.customer_ref} contacted again about case {leg.case_id} after the "
                   f"{leg.department} leg breached.", at)


def new_leg_notice(leg: Leg, at: datetime) -> Notification:
    return _notice(leg, NEW_LEG, f"{NEW_LEG}:{leg.handoff_id}", "",
                   f"new {leg.priority} handoff {leg.handoff_id}",
                   f"Case {leg.case_id} was handed to {leg.department}.", at)


def resolved_notice(leg: Leg, resolution_id: str, at: datetime) -> Notification:
    """A leg that had breached is resolved; `resolution_id` tells a later reopen-and-resolve apart."""
    return _notice(leg, RESOLVED_AFTER_BREACH, f"{RESOLVED_AFTER_BREACH}:{leg.handoff_id}:{resolution_id}", "",
                   f"breached handoff {leg.handoff_id} resolved",
                   f"Case {leg.case_id} held by {leg.department} was resolved after its SLA breached.", at)


def addressed(notice: Notification, receiver: str) -> Notification:
    """The notice for `receiver`, with its deterministic id."""
    return evolve(notice, receiver=receiver, notification_id=derived_event_id(notice.key, receiver))


def explicitly_matches(root: Route, match: RouteMatch, label: str, value: str) -> bool:
    """Whether a route on `match.path` names `label=value` with a positive matcher.

    New legs are many: only routes that ask for them (kind=new_leg) hear about them, not
    the catch-all that takes whatever nobody else does.
    """
    node = root
    for index in match.path:
        node = node.routes[index]
        if any(m.label == label and not m.is_negative and m.matches({label: value}) for m in node.matchers):
            return True
    return False


def requests(notice: Notification, matches: Iterable[RouteMatch], root: Route) -> list[Notification]:
    """One notification per receiver reached (a receiver reached twice is told once)."""
    found: dict[str, Notification] = {}
    for match in matches:
        if notice.kind == NEW_LEG and not explicitly_matches(root, match, "kind", NEW_LEG):
            continue
        found.setdefault(match.receiver, addressed(notice, match.receiver))
    return list(found.values())


def opened(leg: Leg, requested: Iterable[Notification]) -> Leg:
    """The leg remembering `requested` as open (awaiting acknowledgement)."""
    known = set(leg.open)
    added = tuple((n.notification_id, n.receiver) for n in requested if (n.notification_id, n.receiver) not in known)
    return evolve(leg, open=leg.open + added) if added else leg


def remembered(leg: Leg, requested: Iterable[Notification]) -> Leg:
    """The leg remembering the ids of `requested`, so they are forgotten together."""
    known = set(leg.requested)
    added = tuple(n.notification_id for n in requested if n.notification_id not in known)
    return evolve(leg, requested=leg.requested + added) if added else leg


def ended(leg: Leg, end: End) -> Leg:
    """The leg remembering `end` (its open notifications are acknowledged by the caller)."""
    return evolve(leg, open=(), ends=leg.ends if end in leg.ends else leg.ends + (end,))


def end_after(leg: Leg, at: datetime) -> End | None:
    """The first end at or after `at`: what acknowledges a notice about `at` that comes late.

    The sources travel on different topics, so stage 1 can read a leg's acknowledgement
    before a breach or warning that happened earlier; the notice is then acknowledged at
    the end it would have met had it come in time.
    """
    if not leg.ends:  # most legs, and min() over an empty generator still costs a microsecond
        return None
    return min((end for end in leg.ends if end.at >= at), default=None)


def resolution_after(leg: Leg, at: datetime) -> End | None:
    """The first resolution at or after `at` (a late breach still earns its resolution notice)."""
    if not leg.ends:
        return None
    return min((end for end in leg.ends if end.at >= at and end.resolution_id), default=None)
