"""A department's (or the whole centre's) SLA scorecard for a period, from plain records.

Every figure counts what happened in the half-open period [start, end), each event at
its own instant, so adjacent periods add up and nothing is counted twice:

- legs: legs created in the period.
- ack / resolve compliance: of the ack (resolve) clocks whose outcome fell in the
  period, the share that met their target. A clock's outcome is its breach when it
  breached (at breached_at; stopping late afterwards changes nothing), else its stop
  (at stopped_at). A running clock that has not breached has no outcome yet. Every
  resolve clock of a reopened leg counts. With no outcome in the period the compliance
  is 1.0: no target was missed (`legs` and `breaches` show how little there was).
- breaches: clocks (of either kind) that breached in the period.
- tta / ttr p50 and p90: nearest-rank percentiles of the business time `elapsed` by
  the ack (resolve) clocks that stopped in the period, late or not. A resolve clock also
  stops at a transfer or cancellation. Zero when no clock stopped.
- repeat contacts by cause: repeat contacts made in the period (contacted_at) that were
  attributed to the department; for the whole centre every repeat, unattributed too.
- avoidable repeats: those of cause sla_breached (failure demand); failure-demand cost:
  the sum of their cost_minor, in their currency (the configured default when there are
  none). Costs in more than one currency cannot be summed: MixedCurrencies.
- first contact resolution: for a department, 1 - (legs created in the period with at
  least one repeat contact attributed, whenever it came) / (legs created in the period);
  for the whole centre, 1 - (repeat contacts in the period) / (contacts in the period),
  at least 0. With no legs (no contacts) it is 1.0.
- reopens: reopens of the department's legs in the period.

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


@dataclass(frozen=True)
class LegRecord:
    """A leg as the scorecard and the SLA view see it; `created_at` None until its creation is read."""

    handoff_id: str
    department: str
    priority: str = "NORMAL"
    category: str = ""
    case_id: str = ""
    customer_ref: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class RepeatRecord:
    """A repeat contact, attributed to a leg and its department (both empty when unattributed)."""

    contact_id: str
    cause: str
    contacted_at: datetime
    handoff_id: str = ""
    department: str = ""
    cost_minor: int = 0
    currency: str = ""


@dataclass(frozen=True)
class ReopenRecord:
    handoff_id: str
    department: str
    at: datetime


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


def percentile(values: Iterable[timedelta], percent: int) -> timedelta:
    """Nearest-rank percentile: the smallest value that at least `percent` % of them do not exceed; zero when none."""
    ordered = sorted(values)
    if not ordered:
        return _ZERO
    rank = max(-(-percent * len(ordered) // 100), 1)
    return ordered[rank - 1]


def _compliance(clocks: list[ClockRecord]) -> float:
    return sum(not c.breached for c in clocks) / len(clocks) if clocks else 1.0


def _cost(avoidable: list[RepeatRecord], default_currency: str) -> tuple[int, str]:
    currencies = sorted({r.currency for r in avoidable})
    if len(currencies) > 1:
        raise MixedCurrencies(f"avoidable repeats in the period cost in {', '.join(currencies)}")
    return sum(r.cost_minor for r in avoidable), currencies[0] if currencies else default_currency


def _department_fcr(created: list[LegRecord], repeats: Iterable[RepeatRecord]) -> float:
    """1 - the share of `created` legs with a repeat blamed on them; 1.0 without legs."""
    ids = {leg.handoff_id for leg in created}
    if not ids:
        return 1.0
    return 1.0 - len(ids & {r.handoff_id for r in repeats}) / len(ids)


def _centre_fcr(repeats: int, contacts: int) -> float:
    """1 - repeats per contact, never below 0 (repeats may be read before their contacts); 1.0 without contacts."""
    return max(1.0 - repeats / contacts, 0.0) if contacts else 1.0


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

    clocks = [c for c in clocks if ours(c)]
    every_repeat = [r for r in repeats if ours(r)]
    created = [leg for leg in legs if ours(leg) and leg.created_at in period]
    decided = [c for c in clocks if c.outcome_at in period]
    stopped = [c for c in clocks if c.stopped_at in period and c.elapsed is not None]
    in_period = [r for r in every_repeat if r.contacted_at in period]
    causes = Counter(r.cause for r in in_period)
    avoidable = [r for r in in_period if r.cause == SLA_BREACHED]
    cost, currency = _cost(avoidable, default_currency)
    if department == WHOLE_CENTRE:
        fcr = _centre_fcr(len(in_period), sum(at in period for at in contacts))
    else:
        fcr = _department_fcr(created, every_repeat)
    tta = [c.elapsed for c in stopped if c.kind == ACK]
    ttr = [c.elapsed for c in stopped if c.kind == RESOLVE]
    return Scorecard(
        department=department,
        period=period,
        legs=len(created),
        ack_compliance=_compliance([c for c in decided if c.kind == ACK]),
        resolve_compliance=_compliance([c for c in decided if c.kind == RESOLVE]),
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
