"""The sla read model's state: every leg, its clocks, repeat contacts, reopens and contacts.

Fed by the read-model feed from four topics read independently, so each apply is
idempotent (records are keyed) and tolerates the topics' relative order: a leg's SLA
events may be read before its creation. Within one topic a leg's events keep their order
(every topic is keyed by customer_ref). Plain Python, no Kafka: the feed calls `apply_*`
and `record_*`, the servicer the queries.

Retention, counted back from the newest event instant read (not wall time, so a replay
from the beginning ends as a live replica): a leg is kept until `history` after it closed
(its clocks all stopped, at the last stop; a leg without clocks, after its creation), with
its clocks, reopens and the repeats naming it; an open leg is kept. A contact, a repeat and
a reopen are kept `history` after their instant, and as long as the leg they name. A late
start of a clock of a leg not known, already beyond the history, is ignored; other late
records are forgotten at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from common.settings import READ_MODEL_HISTORY
from common.expiries import Expiries
from sla.domain.scorecard import (
    WHOLE_CENTRE,
    ClockRecord,
    LegRecord,
    Period,
    RepeatRecord,
    ReopenRecord,
    Scorecard,
    scorecard,
)

_KIND_ORDER = {"ack": 0, "resolve": 1}
# Orders breaches newest first: (breached_at, handoff_id, clock kind, sequence).
BreachKey = tuple[datetime, str, str, int]
# What an expiry names: ("leg", handoff id), ("repeat", contact id), ("reopen", event id), ("contact", contact id).
EntryKey = tuple[str, str]


@dataclass(frozen=True)
class SlaChange:
    """One SlaEvent, flattened: the leg it names, which clock, what changed, and what it carries.

    `at` is the instant of the change (started, breached, stopped, paused or resumed at);
    `deadline` the clock's deadline after it.
    """

    leg: LegRecord
    kind: str
    sequence: int
    policy_version: str
    change: str
    at: datetime | None = None
    deadline: datetime | None = None
    target: timedelta | None = None
    late: bool = False
    elapsed: timedelta | None = None


@dataclass(frozen=True)
class PriorityChange:
    handoff_id: str
    priority: str


def _started(clock: ClockRecord | None, change: SlaChange) -> ClockRecord:
    # A start read again (a replay) leaves the clock as later events made it.
    return clock or ClockRecord(
        handoff_id=change.leg.handoff_id, department=change.leg.department, kind=change.kind,
        sequence=change.sequence, started_at=change.at, deadline=change.deadline, target=change.target,
        policy_version=change.policy_version,
    )


def _breached(clock: ClockRecord, change: SlaChange) -> ClockRecord:
    return clock if clock.breached else replace(clock, breached_at=change.at, breach_deadline=change.deadline)


def _met(clock: ClockRecord, change: SlaChange) -> ClockRecord:
    return replace(clock, running=False, paused_at=None, stopped_at=change.at, late=change.late,
                   elapsed=change.elapsed, deadline=change.deadline)


# Changes of a running clock only: once stopped, a clock's deadline and target are final.
_WHILE_RUNNING: dict[str, Callable[[ClockRecord, SlaChange], ClockRecord]] = {
    "paused": lambda clock, change: replace(clock, paused_at=change.at),
    "resumed": lambda clock, change: replace(clock, paused_at=None, deadline=change.deadline),
    "recomputed": lambda clock, change: replace(
        clock, deadline=change.deadline, target=change.target, policy_version=change.policy_version
    ),
    "warning": lambda clock, change: clock,
}
_ALWAYS = {"breached": _breached, "met": _met}


def fold(clock: ClockRecord | None, change: SlaChange) -> ClockRecord | None:
    """The clock after `change`; None for a change to a clock whose start was never read."""
    if change.change == "clock_started":
        return _started(clock, change)
    if clock is None:
        return None
    if change.change in _ALWAYS:
        return _ALWAYS[change.change](clock, change)
    if not clock.running or change.change not in _WHILE_RUNNING:
        return clock
    return _WHILE_RUNNING[change.change](clock, change)


class SlaReadModel:
    """Everything the SlaService answers from, kept per leg and indexed by department."""

    def __init__(self, history: timedelta = READ_MODEL_HISTORY) -> None:
        self._history = history
        self._legs: dict[str, LegRecord] = {}
        self._clocks: dict[str, dict[tuple[str, int], ClockRecord]] = {}
        self._by_department: dict[str, set[str]] = defaultdict(set)
        self._repeats: dict[str, RepeatRecord] = {}
        self._reopens: dict[str, ReopenRecord] = {}
        self._contacts: dict[str, datetime] = {}
        # The repeats and reopens naming each leg, kept with it.
        self._attached: dict[str, set[EntryKey]] = defaultdict(set)
        self._expiries = Expiries()
        self._newest: datetime | None = None

    # -- feeding ------------------------------------------------------------------------

    def _know(self, leg: LegRecord) -> None:
        known = self._legs.get(leg.handoff_id)
        if known is not None and known.department != leg.department:
            self._leave_department(known)
        self._legs[leg.handoff_id] = leg
        self._by_department[leg.department].add(leg.handoff_id)

    def record_leg(self, leg: LegRecord) -> None:
        """A leg's creation; the first one read counts (a replayed creation changes nothing)."""
        known = self._legs.get(leg.handoff_id)
        if known is None or known.created_at is None:
            self._know(leg)
            self._leg_changed(leg.handoff_id)
        self._read(leg.created_at)

    def change_priority(self, change: PriorityChange) -> None:
        leg = self._legs.get(change.handoff_id)
        if leg is not None:
            self._legs[change.handoff_id] = replace(leg, priority=change.priority)

    def apply_sla(self, change: SlaChange) -> None:
        """Fold one SLA event into its clock; a clock's start also introduces a leg not yet read from handoff events."""
        handoff_id = change.leg.handoff_id
        key = (change.kind, change.sequence)
        clocks = self._clocks.get(handoff_id, {})
        clock = fold(clocks.get(key), change)
        known = self._legs.get(handoff_id)
        if known is None and (clock is None or self._beyond(change.at)):
            # A late record of a forgotten leg (or a change to a clock never started) makes no half leg.
            self._read(change.at)
            return
        if known is None or known.created_at is None:
            # Until the creation is read, the leg is as its latest SLA event tells.
            self._know(change.leg)
        if clock is not None:
            self._clocks.setdefault(handoff_id, {})[key] = clock
        self._leg_changed(handoff_id)
        self._read(change.at)

    def record_reopen(self, event_id: str, reopen: ReopenRecord) -> None:
        self._reopens[event_id] = reopen
        self._attach(("reopen", event_id), reopen.handoff_id, reopen.at)

    def record_repeat(self, repeat: RepeatRecord) -> None:
        self._repeats[repeat.contact_id] = repeat
        self._attach(("repeat", repeat.contact_id), repeat.handoff_id, repeat.contacted_at)

    def record_contact(self, contact_id: str, contacted_at: datetime) -> None:
        self._contacts[contact_id] = contacted_at
        self._expiries.expire(("contact", contact_id), contacted_at + self._history)
        self._read(contacted_at)

    # -- retention ------------------------------------------------------------------------

    def _beyond(self, at: datetime | None) -> bool:
        """Whether an entry of instant `at` would already be forgotten."""
        return at is not None and self._newest is not None and at + self._history <= self._newest

    def _attach(self, key: EntryKey, handoff_id: str, at: datetime) -> None:
        if handoff_id:
            self._attached[handoff_id].add(key)
        self._expiries.expire(key, at + self._history)
        self._read(at)

    def _leg_changed(self, handoff_id: str) -> None:
        """Set the leg's expiry: none while a clock runs, else `history` after its last stop (or creation)."""
        clocks = self._clocks.get(handoff_id, {}).values()
        if any(clock.running for clock in clocks):
            ended = None
        else:
            ended = max((clock.stopped_at for clock in clocks), default=self._legs[handoff_id].created_at)
        self._expiries.expire(("leg", handoff_id), ended and ended + self._history)

    def _read(self, at: datetime | None) -> None:
        """Time (the newest instant read) reaches `at`; forget what expired by then."""
        if at is not None and (self._newest is None or at > self._newest):
            self._newest = at
        if self._newest is not None:
            for key in self._expiries.due(self._newest):
                self._forget(key)

    def _forget(self, key: EntryKey) -> None:
        kind, entry_id = key
        if kind == "leg":
            self._forget_leg(entry_id)
        elif kind == "contact":
            del self._contacts[entry_id]
        else:
            record = (self._repeats if kind == "repeat" else self._reopens).get(entry_id)
            if record is not None and record.handoff_id not in self._legs:  # else it goes with its leg
                self._detach(key, record.handoff_id)

    def _forget_leg(self, handoff_id: str) -> None:
        self._leave_department(self._legs.pop(handoff_id))
        self._clocks.pop(handoff_id, None)
        for key in self._attached.get(handoff_id, set()).copy():
            if key not in self._expiries:  # its own time has passed too
                self._detach(key, handoff_id)

    def _detach(self, key: EntryKey, handoff_id: str) -> None:
        kind, entry_id = key
        (self._repeats if kind == "repeat" else self._reopens).pop(entry_id, None)
        attached = self._attached.get(handoff_id)
        if attached is not None:
            attached.discard(key)
            if not attached:
                del self._attached[handoff_id]

    def _leave_department(self, leg: LegRecord) -> None:
        ids = self._by_department[leg.department]
        ids.discard(leg.handoff_id)
        if not ids:
            del self._by_department[leg.department]

    def sizes(self) -> dict[str, int]:
        """How many entries each of the store's structures holds (its memory, for tests and checks)."""
        return {
            "legs": len(self._legs), "clocks": len(self._clocks), "departments": len(self._by_department),
            "repeats": len(self._repeats), "reopens": len(self._reopens), "contacts": len(self._contacts),
            "attached": len(self._attached), "expiries": len(self._expiries), "heap": self._expiries.heap_size,
        }

    # -- queries ------------------------------------------------------------------------

    def leg(self, handoff_id: str) -> LegRecord | None:
        return self._legs.get(handoff_id)

    def clocks_of(self, handoff_id: str) -> list[ClockRecord]:
        """The leg's clocks, ack first, then each resolve clock in sequence."""
        clocks = self._clocks.get(handoff_id, {}).values()
        return sorted(clocks, key=lambda c: (_KIND_ORDER.get(c.kind, 9), c.kind, c.sequence))

    def _ids(self, department: str) -> list[str]:
        return list(self._legs) if department == WHOLE_CENTRE else list(self._by_department.get(department, ()))

    def _clocks_in(self, department: str) -> list[ClockRecord]:
        return [clock for handoff_id in self._ids(department) for clock in self._clocks.get(handoff_id, {}).values()]

    def breaches(
        self, department: str, since: datetime, after: BreachKey | None = None, limit: int = 50
    ) -> tuple[list[tuple[LegRecord, ClockRecord]], bool]:
        """Breaches at or after `since`, newest first, after the key `after`; and whether more follow."""
        found = sorted(
            (
                (breach_key(clock), clock) for clock in self._clocks_in(department)
                if clock.breached and clock.breached_at >= since
            ),
            key=lambda pair: pair[0], reverse=True,
        )
        if after is not None:
            found = [(key, clock) for key, clock in found if key < after]
        page = [(self._legs[clock.handoff_id], clock) for _, clock in found[:limit]]
        return page, len(found) > limit

    def scorecard(self, department: str, period: Period, default_currency: str = "") -> Scorecard:
        """The scorecard of `department` ("" for the whole centre) over `period`."""
        return scorecard(
            department, period,
            legs=[self._legs[h] for h in self._ids(department)],
            clocks=self._clocks_in(department),
            repeats=self._repeats.values(),
            reopens=self._reopens.values(),
            contacts=self._contacts.values() if department == WHOLE_CENTRE else (),
            default_currency=default_currency,
        )

    def __len__(self) -> int:
        return len(self._legs)


def breach_key(clock: ClockRecord) -> BreachKey:
    """Where a breach sorts among breaches (newest first when sorted in reverse)."""
    return clock.breached_at, clock.handoff_id, clock.kind, clock.sequence
