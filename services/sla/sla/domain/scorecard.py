"""A department's (or the whole centre's) SLA scorecard for a period, from plain records.

Every figure counts what happened in the half-open period [start, end), each event at
its own instant, so adjacent periods add up and nothing is counted twice:

- legs: legs created in the period; open_legs: those of them still open (a resolve clock
  running, or none read yet).
- ack / resolve compliance: of the ack (resolve) clocks whose outcome fell in the
  period, the share that met their target; ack_outcomes / resolve_outcomes is that
  number (the figure's n). A clock's outcome is its breach when it breached (at
  breached_at; stopping late afterwards changes nothing), else its stop (at stopped_at).
  A running clock that has not breached has no outcome yet: it is neither compliant nor
  not, and is counted in ack_running / resolve_running instead. Every resolve clock of
  a reopened leg counts. With no outcome the compliance is 0.0 with n = 0: unknown, and
  shown as such.
- breaches: clocks (of either kind) that breached in the period.
- tta / ttr p50 and p90: nearest-rank percentiles of the business time `elapsed` by
  the ack (resolve) clocks that stopped in the period, late or not; tta_n / ttr_n is how
  many clocks they rest on. A resolve clock also stops at a transfer or cancellation.
  Zero (with n = 0) when no clock stopped.
- repeat contacts by cause: repeat contacts made in the period (contacted_at) that were
  attributed to the department; for the whole centre every repeat, unattributed too.
- avoidable repeats: those of cause sla_breached (failure demand); failure-demand cost:
  the sum of their cost_minor, in their currency (the configured default when there are
  none). Costs in more than one currency cannot be summed: MixedCurrencies.
- first contact resolution: for a department, over the legs created in the period whose
  outcome is known — a repeat contact was attributed to it (whenever it came), or it has
  ended (no resolve clock running) — the share without a repeat; fcr_n is that number.
  An open leg nobody called about yet is not counted. For the whole centre,
  1 - (repeat contacts in the period) / (contacts in the period), at least 0, with
  fcr_n the contacts. With n = 0 it is 0.0: unknown.
- reopens: reopens of the department's legs in the period.
- costliest legs: the (at most ten) legs whose avoidable repeats in the period cost the
  most, costliest first (ties by handoff id).

The empty department means the whole centre. Time arrives as data; nothing here asks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sla.domain.calendar import Calendar
from sla.domain.repeats import CAUSES, SLA_BREACHED

ACK, RESOLVE = "ack", "resolve"
# Every repeat cause, in the order a scorecard lists them.
REPEAT_CAUSES = CAUSES
WHOLE_CENTRE = ""
_ZERO = timedelta(0)


class MixedCurrencies(ValueError):
    """Failure-demand costs of one scorecard in several currencies, which do not add up."""


@dataclass(frozen=True)
class Period:
    """The half-open span [start, end) a scorecard covers; `end` must be after `start`."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"period end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    def __contains__(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class LegRecord:
    """A leg as the scorecard and the SLA view see it; `created_at` None until its creation is read."""

    handoff_id: str
    department: str
    priority: str = "NORMAL"
    category: str = ""
    case_id: str = ""
    customer_ref: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClockRecord:
    """One SLA clock of a leg as its events left it (`sequence` counts a leg's resolve clocks)."""

    handoff_id: str
    department: str
    kind: str
    sequence: int
    started_at: datetime
    deadline: datetime
    target: timedelta
    policy_version: str
    running: bool = True
    paused_at: datetime | None = None
    breached_at: datetime | None = None
    # The deadline the clock breached (a later recompute may move `deadline`).
    breach_deadline: datetime | None = None
    stopped_at: datetime | None = None
    late: bool = False
    elapsed: timedelta | None = None

    @property
    def breached(self) -> bool:
        return self.breached_at is not None

    @property
    def met(self) -> bool:
        return self.stopped_at is not None

    @property
    def outcome_at(self) -> datetime | None:
        """When the clock's outcome was decided: its breach, else its stop; None while open."""
        return self.breached_at or self.stopped_at


@dataclass(frozen=True, slots=True)
class RepeatRecord:
    """A repeat contact, attributed to a leg and its department (both empty when unattributed)."""

    contact_id: str
    cause: str
    contacted_at: datetime
    handoff_id: str = ""
    department: str = ""
    cost_minor: int = 0
    currency: str = ""


@dataclass(frozen=True, slots=True)
class ReopenRecord:
    handoff_id: str
    department: str
    at: datetime


@dataclass(frozen=True)
class LegCost:
    """What one leg's avoidable repeats in a period cost."""

    handoff_id: str
    case_id: str
    department: str
    avoidable_repeats: int
    cost_minor: int


COSTLIEST = 10


@dataclass(frozen=True)
class Scorecard:
    department: str
    period: Period
    legs: int
    ack_compliance: float
    resolve_compliance: float
    breaches: int
    tta_p50: timedelta
    tta_p90: timedelta
    ttr_p50: timedelta
    ttr_p90: timedelta
    # Every cause of REPEAT_CAUSES, in that order.
    repeat_contacts: dict[str, int]
    avoidable_repeats: int
    failure_demand_cost_minor: int
    currency: str
    first_contact_resolution: float
    reopens: int
    # How many clocks, legs or contacts each figure rests on (its n); see the module doc.
    ack_outcomes: int = 0
    resolve_outcomes: int = 0
    ack_running: int = 0
    resolve_running: int = 0
    tta_n: int = 0
    ttr_n: int = 0
    fcr_n: int = 0
    open_legs: int = 0
    costliest_legs: tuple[LegCost, ...] = ()


def percentile(values: Iterable[timedelta], percent: int) -> timedelta:
    """Nearest-rank percentile: the smallest value that at least `percent` % of them do not exceed; zero when none."""
    ordered = sorted(values)
    if not ordered:
        return _ZERO
    rank = max(-(-percent * len(ordered) // 100), 1)
    return ordered[rank - 1]


def _compliance(clocks: list[ClockRecord]) -> float:
    return sum(not c.breached for c in clocks) / len(clocks) if clocks else 0.0


def _cost(avoidable: list[RepeatRecord], default_currency: str) -> tuple[int, str]:
    currencies = sorted({r.currency for r in avoidable})
    if len(currencies) > 1:
        raise MixedCurrencies(f"avoidable repeats in the period cost in {', '.join(currencies)}")
    return sum(r.cost_minor for r in avoidable), currencies[0] if currencies else default_currency


def _costliest(avoidable: list[RepeatRecord], case_of: dict[str, str]) -> tuple[LegCost, ...]:
    """The COSTLIEST legs by the cost of their avoidable repeats, costliest first."""
    per_leg: dict[str, list[RepeatRecord]] = {}
    for repeat in avoidable:
        per_leg.setdefault(repeat.handoff_id, []).append(repeat)
    costs = [LegCost(handoff_id, case_of.get(handoff_id, ""), repeats[0].department, len(repeats),
                     sum(r.cost_minor for r in repeats)) for handoff_id, repeats in per_leg.items() if handoff_id]
    return tuple(sorted(costs, key=lambda leg: (-leg.cost_minor, leg.handoff_id))[:COSTLIEST])


def _open(created: list[LegRecord], clocks: list[ClockRecord]) -> set[str]:
    """The ids of `created` legs still open: a resolve clock running, or none read yet."""
    ended = {c.handoff_id for c in clocks if c.kind == RESOLVE and not c.running}
    running = {c.handoff_id for c in clocks if c.kind == RESOLVE and c.running}
    return {leg.handoff_id for leg in created if leg.handoff_id in running or leg.handoff_id not in ended}


def _department_fcr(created: list[LegRecord], open_ids: set[str], repeats: Iterable[RepeatRecord]) -> tuple[float, int]:
    """(share without a repeat, n) over the `created` legs whose outcome is known."""
    ids = {leg.handoff_id for leg in created}
    repeated = ids & {r.handoff_id for r in repeats}
    known = repeated | (ids - open_ids)
    return (1.0 - len(repeated) / len(known), len(known)) if known else (0.0, 0)


def _centre_fcr(repeats: int, contacts: int) -> float:
    """1 - repeats per contact, never below 0 (repeats may be read before their contacts); 0.0 without contacts."""
    return max(1.0 - repeats / contacts, 0.0) if contacts else 0.0


def scorecard(
    department: str,
    period: Period,
    *,
    legs: Iterable[LegRecord],
    clocks: Iterable[ClockRecord],
    repeats: Iterable[RepeatRecord],
    reopens: Iterable[ReopenRecord],
    contacts: Iterable[datetime] = (),
    default_currency: str = "",
) -> Scorecard:
    """The scorecard of `department` ("" for the whole centre) over `period` (see the module doc)."""

    def ours(record) -> bool:
        return department == WHOLE_CENTRE or record.department == department

    legs = list(legs)
    clocks = [c for c in clocks if ours(c)]
    every_repeat = [r for r in repeats if ours(r)]
    created = [leg for leg in legs if ours(leg) and leg.created_at in period]
    decided = [c for c in clocks if c.outcome_at in period]
    stopped = [c for c in clocks if c.stopped_at in period and c.elapsed is not None]
    in_period = [r for r in every_repeat if r.contacted_at in period]
    causes = Counter(r.cause for r in in_period)
    avoidable = [r for r in in_period if r.cause == SLA_BREACHED]
    cost, currency = _cost(avoidable, default_currency)
    open_ids = _open(created, clocks)
    if department == WHOLE_CENTRE:
        fcr_n = sum(at in period for at in contacts)
        fcr = _centre_fcr(len(in_period), fcr_n)
    else:
        fcr, fcr_n = _department_fcr(created, open_ids, every_repeat)
    tta = [c.elapsed for c in stopped if c.kind == ACK]
    ttr = [c.elapsed for c in stopped if c.kind == RESOLVE]
    ack_decided = [c for c in decided if c.kind == ACK]
    resolve_decided = [c for c in decided if c.kind == RESOLVE]
    undecided = [c for c in clocks if c.running and c.breached_at is None and c.started_at < period.end]
    return Scorecard(
        department=department,
        period=period,
        legs=len(created),
        ack_compliance=_compliance(ack_decided),
        resolve_compliance=_compliance(resolve_decided),
        breaches=sum(c.breached_at in period for c in clocks),
        tta_p50=percentile(tta, 50),
        tta_p90=percentile(tta, 90),
        ttr_p50=percentile(ttr, 50),
        ttr_p90=percentile(ttr, 90),
        repeat_contacts={cause: causes[cause] for cause in REPEAT_CAUSES},
        avoidable_repeats=len(avoidable),
        failure_demand_cost_minor=cost,
        currency=currency,
        first_contact_resolution=fcr,
        reopens=sum(ours(r) and r.at in period for r in reopens),
        ack_outcomes=len(ack_decided),
        resolve_outcomes=len(resolve_decided),
        ack_running=sum(c.kind == ACK for c in undecided),
        resolve_running=sum(c.kind == RESOLVE for c in undecided),
        tta_n=len(tta),
        ttr_n=len(ttr),
        fcr_n=fcr_n,
        open_legs=len(open_ids),
        costliest_legs=_costliest(avoidable, {leg.handoff_id: leg.case_id for leg in legs}),
    )


def business_time_left(
    clock: ClockRecord, calendar: Calendar, now: datetime, max_pause: timedelta | None = None
) -> timedelta:
    """Business time until `clock`'s deadline at `now`; zero once stopped or past it.

    A paused clock's time is frozen at its pause, until its pauses reach `max_pause`:
    from then on it runs again, towards its deadline moved by the pause it may count.
    """
    if not clock.running:
        return _ZERO
    if clock.paused_at is None:
        return max(calendar.between(now, clock.deadline), _ZERO)
    if max_pause is not None:
        paused_before = calendar.between(clock.started_at, clock.deadline) - clock.target
        allowance = max(max_pause - paused_before, _ZERO)
        if now >= calendar.add(clock.paused_at, allowance):
            return max(calendar.between(now, calendar.add(clock.deadline, allowance)), _ZERO)
    return max(calendar.between(clock.paused_at, clock.deadline), _ZERO)
