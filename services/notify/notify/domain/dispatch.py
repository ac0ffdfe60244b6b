"""Stage 2: what happens to a requested notification at its receiver.

Held back (a silence or an inhibit rule: recorded as suppressed), grouped (the route's
group_wait, see grouping.py), or sent now on every channel of the receiver; escalated
while nobody acknowledges (escalation.py). These functions only decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from common.ids import derived_event_id
from notify.domain.escalation import ESCALATE, Step
from notify.domain.grouping import REPEAT, Flush
from notify.domain.grouping import message as grouping_message
from notify.domain.notifications import DIGEST, ESCALATION, RESOLVED_AFTER_BREACH, Notification
from notify.domain.routing import Receiver, RouteMatch, matches_all
from notify.domain.inhibition import InhibitionSources
from notify.domain.silences import InhibitRule, Silence, is_silenced

SILENCE, INHIBITION = "silence", "inhibition"
# Told directly: never grouped again, never escalated again.
DIRECT_KINDS = frozenset({ESCALATION, DIGEST})
# Nobody acknowledges these: they never escalate.
NEVER_ESCALATE = DIRECT_KINDS | {RESOLVED_AFTER_BREACH}


@dataclass(frozen=True)
class Suppression:
    """Why a notification is recorded but not delivered."""

    reason: str
    silence_id: str = ""
    rule: str = ""


def suppression(
    labels: Mapping[str, str], silences: Iterable[Silence], sources: InhibitionSources, at: datetime,
) -> Suppression | None:
    """The silence, else the inhibit rule (of the open `sources`), that holds back a notification
    with `labels` at `at`."""
    silence = is_silenced(labels, silences, at)
    if silence is not None:
        return Suppression(SILENCE, silence_id=silence.silence_id)
    rule = sources.inhibited_by(labels)
    return Suppression(INHIBITION, rule=rule.name) if rule is not None else None


def is_inhibition_source(labels: Mapping[str, str], rules: Iterable[InhibitRule]) -> bool:
    """Whether a notification with `labels`, while open (unacknowledged), may hold others back:
    it matches the source side of a rule (a department-wide incident, a breach over its warnings)."""
    return any(matches_all(rule.source, labels) for rule in rules)


def route_for(matches: Iterable[RouteMatch], receiver: str) -> RouteMatch | None:
    """The first route that reached `receiver` (whose grouping and timing apply)."""
    return next((match for match in matches if match.receiver == receiver), None)


def is_grouped(notification: Notification, match: RouteMatch | None) -> bool:
    """Whether the notification waits in a group (group_wait > 0) rather than going out now."""
    return (notification.kind not in DIRECT_KINDS and match is not None
            and match.timing.group_wait > timedelta(0))


def escalates(notification: Notification, receiver: Receiver | None) -> bool:
    """Whether the receiver's policy escalates this notification while it is unacknowledged."""
    return (notification.kind not in NEVER_ESCALATE and receiver is not None and receiver.escalation is not None
            and receiver.escalation.applies_to(notification.labels))


def escalation_notice(original: Notification, step: Step) -> Notification:
    """What the step's receiver is told: the original notification, escalated or reminded."""
    what = f"Escalated to level {step.level}" if step.action == ESCALATE else \
        f"Reminder {step.reminder} (level {step.level})"
    key = f"{ESCALATION}:{original.key}:{original.receiver}:{step.level}:{step.reminder}"
    return replace(
        original, notification_id=derived_event_id(key, step.receiver), key=key, kind=ESCALATION,
        receiver=step.receiver, escalation_level=step.level, items=(),
        title=f"{what}, not acknowledged: {original.title}",
        body=f"{original.body}\nFirst told: {original.receiver} at {original.occurred_at.isoformat()}.",
        occurred_at=step.due_at, origin_id=original.notification_id, origin_receiver=original.receiver,
    )


_PRIORITY_ORDER = ("LOW", "NORMAL", "HIGH", "URGENT")


def digest_of(flush: Flush) -> Notification:
    """The record of a group's flush: a digest carrying its members (see `delivered_as`)."""
    items = tuple(flush.items)
    summary = grouping_message(flush)
    departments = {item.department for item in items}
    return Notification(
        notification_id=flush.flush_id, key=flush.key, kind=DIGEST, receiver=flush.receiver,
        department=departments.pop() if len(departments) == 1 else "",
        priority=max((item.priority for item in items), key=_rank, default="NORMAL"),
        handoff_id="", case_id="", customer_ref="", clock="", title=summary.title, body=summary.body,
        occurred_at=flush.at, items=items, group_key=flush.group_key, flush=f"{flush.seq}:{flush.reason}",
    )


def flush_of(digest: Notification) -> Flush:
    """The flush a digest record stands for (to mark its group flushed when read back)."""
    seq, _, reason = digest.flush.partition(":")
    return Flush(digest.notification_id, digest.key, int(seq or 0), digest.group_key, digest.receiver, reason,
                 digest.items, digest.occurred_at)


def delivered_as(digest: Notification) -> Notification:
    """What the receiver gets for a flush: a lone new member as itself, else the digest."""
    _, _, reason = digest.flush.partition(":")
    return digest.items[0] if reason != REPEAT and len(digest.items) == 1 else digest


def _rank(priority: str) -> int:
    return _PRIORITY_ORDER.index(priority) if priority in _PRIORITY_ORDER else 1
