"""Grouping: notifications for one receiver with equal `group_by` labels travel together.

A group's life, with the timing of the route that formed it (Alertmanager's semantics,
for events rather than firing alerts):

- the first flush waits `group_wait` after the first member arrived, so a burst of
  breaches becomes one digest instead of a dozen messages;
- later, members that arrived since the last flush go out `group_interval` after it;
- with nothing new, the open members are re-sent `repeat_interval` after the last flush.

Members leave when the wiring discards them (their leg was acknowledged or resolved); an
emptied group starts afresh. The state is an immutable value: `add`, `discard` and
`flushed` return a new one, `due` only looks. Sending is two steps, `due` then `flushed`,
so a crash in between re-sends the same flush under the same id and dedup drops it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar, Protocol

from common.ids import derived_event_id
from notify.domain.routing import RouteMatch, Timing

FIRST, UPDATE, REPEAT = "first", "update", "repeat"
_PLURALS = {"breach": "breaches", "new_leg": "new legs", "resolved_after_breach": "resolutions after breach"}


class Member(Protocol):
    """What grouping needs of a notification (notify.domain.notifications.Notification fits)."""

    @property
    def key(self) -> str: ...
    @property
    def notification_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...


def group_key(match: RouteMatch, labels: Mapping[str, str]) -> str:
    """The receiver and the values of the route's group_by labels: 'billing:{department="billing"}'."""
    values = ",".join(f'{name}="{labels.get(name, "")}"' for name in match.group_by)
    return f"{match.receiver}:{{{values}}}"


@dataclass(frozen=True)
class GroupState:
    """One group: its open members, which of them are unsent, and when it last flushed."""

    key: str
    receiver: str
    timing: Timing
    members: tuple[Member, ...] = ()
    unsent: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_flush_at: datetime | None = None
    flushes: int = 0


@dataclass(frozen=True)
class Flush:
    """What a group sends now: `items` are the new members, or every open one on a repeat."""

    flush_id: str
    key: str
    seq: int
    group_key: str
    receiver: str
    reason: str
    items: tuple[Member, ...]
    at: datetime


@dataclass(frozen=True)
class Digest:
    """Several notifications sent as one (NOTIFICATION_KIND_DIGEST with items)."""

    notification_id: str
    key: str
    receiver: str
    title: str
    body: str
    items: tuple[Member, ...]
    occurred_at: datetime
    kind: ClassVar[str] = "digest"


def new_group(key: str, match: RouteMatch) -> GroupState:
    """An empty group with the timing of the route that formed it."""
    return GroupState(key=key, receiver=match.receiver, timing=match.timing)


def add(state: GroupState, item: Member, now: datetime) -> GroupState:
    """The group with `item` joined; a member already present is not added twice."""
    if any(member.key == item.key for member in state.members):
        return state
    return replace(state, members=state.members + (item,), unsent=state.unsent + (item.key,),
                   first_seen=state.first_seen or now)


def discard(state: GroupState, keys: Collection[str]) -> GroupState:
    """The group without the members under `keys`; emptied, it starts afresh (group_wait again)."""
    members = tuple(member for member in state.members if member.key not in keys)
    if not members:
        return GroupState(key=state.key, receiver=state.receiver, timing=state.timing)
    return replace(state, members=members, unsent=tuple(key for key in state.unsent if key not in keys))


def due_at(state: GroupState) -> datetime | None:
    """When the group next flushes if nothing changes; None while it is empty."""
    if not state.members or state.first_seen is None:
        return None
    if state.last_flush_at is None:
        return state.first_seen + state.timing.group_wait
    wait = state.timing.group_interval if state.unsent else state.timing.repeat_interval
    return state.last_flush_at + wait


def due(state: GroupState, now: datetime) -> Flush | None:
    """The flush to send at `now`, or None when nothing is due."""
    when = due_at(state)
    if when is None or now < when or state.first_seen is None:
        return None
    reason = FIRST if state.last_flush_at is None else UPDATE if state.unsent else REPEAT
    if reason == REPEAT:
        items = state.members
    else:
        unsent = set(state.unsent)
        items = tuple(member for member in state.members if member.key in unsent)
    seq = state.flushes + 1
    key = f"digest:{state.key}:{state.first_seen.isoformat()}:{seq}"
    return Flush(derived_event_id(key, state.receiver), key, seq, state.key, state.receiver, reason, items, now)


def flushed(state: GroupState, flush: Flush) -> GroupState:
    """The group after `flush` was handed over for delivery (idempotent)."""
    sent = {item.key for item in flush.items}
    return replace(state, unsent=tuple(key for key in state.unsent if key not in sent),
                   last_flush_at=flush.at, flushes=max(state.flushes, flush.seq))


def message(flush: Flush) -> Member | Digest:
    """What to deliver: a lone new notification as itself, anything else as a digest."""
    if flush.reason != REPEAT and len(flush.items) == 1:
        return flush.items[0]
    summary = _summary(flush.items)
    title = f"Still open for {flush.receiver}: {summary}" if flush.reason == REPEAT else \
        f"{summary} for {flush.receiver}"
    body = "\n".join(f"- {item.title}" for item in flush.items)
    return Digest(flush.flush_id, flush.key, flush.receiver, title, body, flush.items, flush.at)


def _summary(items: tuple[Member, ...]) -> str:
    """'3 breaches, 1 warning', kinds in order of first appearance."""
    counts = Counter(item.kind for item in items)
    return ", ".join(
        f"{count} {_PLURALS.get(kind, kind.replace('_', ' ') + 's') if count > 1 else kind.replace('_', ' ')}"
        for kind, count in counts.items()
    )
