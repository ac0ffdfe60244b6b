"""What the simulated centre will do, drawn up front from a seed: every contact, and every
step of every handed-off case (create, acknowledge, status changes, transfer, resolve).

Pure: the same centre, calendars, start and seed give the same plan, so two runs drive
the services with the same calls at the same event times. Delays to acknowledge and to
resolve count the receiving department's working time on its policy's calendar, so an
office-hours department does nothing at night; customers count their patience in
real (simulated) time and call again while their case is unresolved.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from devstack.simulator.centre import WEEKDAYS, Centre, Spread

# Steps of a case, in the order they happen.
CREATE, ACKNOWLEDGE, STATUS, TRANSFER, RESOLVE = "create", "acknowledge", "status", "transfer", "resolve"
# Why a contact was made.
FIRST, CALLBACK, AFTER_RESOLUTION, OTHER = "first", "callback", "after_resolution", "other"
# The agent hands the case over a few minutes into the customer's call.
HANDOFF_DELAY = timedelta(minutes=3)

# business time of a department's calendar: (department, priority) -> add(start, business) -> end
BusinessClock = Callable[[str, str], Callable[[datetime, timedelta], datetime]]


@dataclass(frozen=True)
class Step:
    at: datetime
    action: str
    department: str
    status: str = ""
    to: str = ""


@dataclass(frozen=True)
class Case:
    case_id: str
    customer_ref: str
    priority: str
    channel: str
    steps: tuple[Step, ...]

    @property
    def resolved_at(self) -> datetime:
        return self.steps[-1].at


@dataclass(frozen=True)
class Contact:
    at: datetime
    customer_ref: str
    case_id: str
    channel: str
    reason: str
    # The department holding the case when the customer calls ("" when none does).
    department: str = ""


@dataclass(frozen=True)
class Plan:
    start: datetime
    end: datetime
    cases: tuple[Case, ...]
    contacts: tuple[Contact, ...] = field(repr=False)


def _draw(rng: random.Random, spread: Spread) -> timedelta:
    seconds = spread.median.total_seconds() * math.exp(rng.gauss(0, spread.spread))
    return timedelta(seconds=max(round(seconds), 60))


def _choice(rng: random.Random, weights: dict[str, float]) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def arrivals(centre: Centre, start: datetime, rng: random.Random) -> list[datetime]:
    """Contact instants: a Poisson process whose rate follows the hour of day and the weekday."""
    found: list[datetime] = []
    hour = start
    end = start + timedelta(days=centre.days)
    while hour < end:
        local = hour.astimezone(centre.zone)
        rate = centre.arrivals_per_hour[local.hour] * centre.weekday_factor.get(WEEKDAYS[local.weekday()], 1.0)
        at = hour
        while rate > 0:
            at += timedelta(hours=rng.expovariate(rate))
            if at >= hour + timedelta(hours=1) or at >= end:
                break
            found.append(at.replace(microsecond=0))
        hour += timedelta(hours=1)
    return found


def _leg_steps(centre: Centre, department: str, priority: str, opened: datetime, rng: random.Random,
               business: BusinessClock, may_transfer: bool) -> list[Step]:
    """The steps of one leg from its creation (or transfer-in) at `opened`, ending in a resolve or a transfer."""
    behaviour = centre.department(department)
    add = business(department, priority)
    ack_at = max(add(opened, _draw(rng, behaviour.acknowledge)), opened + timedelta(minutes=1))
    working = ack_at + timedelta(minutes=rng.randint(1, 10))
    steps = [Step(ack_at, ACKNOWLEDGE, department), Step(working, STATUS, department, status="IN_PROGRESS")]
    work = _draw(rng, behaviour.resolve)
    if may_transfer and behaviour.transfer and rng.random() < behaviour.transfer.share:
        moved = add(working, work / 2) + timedelta(seconds=1)
        target = behaviour.transfer.to
        return [*steps, Step(moved, TRANSFER, department, to=target),
                *_leg_steps(centre, target, priority, moved, rng, business, may_transfer=False)]
    if rng.random() < behaviour.waiting_on_customer:
        waits = add(working, work / 3) + timedelta(seconds=1)
        back = waits + _draw(rng, Spread(median=timedelta(hours=3), spread=0.5))
        steps += [Step(waits, STATUS, department, status="WAITING_ON_CUSTOMER"),
                  Step(back, STATUS, department, status="IN_PROGRESS")]
        working = back
        work = work * 2 / 3
    return [*steps, Step(max(add(working, work), working + timedelta(minutes=1)), RESOLVE, department)]


def _holder(case: Case, at: datetime) -> str:
    """The department holding `case` at `at`."""
    holder = ""
    for step in case.steps:
        if step.at > at:
            break
        holder = step.to if step.action == TRANSFER else step.department
    return holder


def _callbacks(centre: Centre, case: Case, first: datetime, rng: random.Random) -> list[Contact]:
    """The customer calls again while the case drags on, and sometimes after it is resolved."""
    rules = centre.callbacks
    found: list[Contact] = []
    last = first
    for _ in range(rules.max_calls):
        at = last + _draw(rng, rules.patience)
        if at >= case.resolved_at:
            break
        found.append(Contact(at, case.customer_ref, case.case_id, case.channel, CALLBACK, _holder(case, at)))
        last = at
    if rng.random() < rules.after_resolution.share:
        at = case.resolved_at + _draw(rng, rules.after_resolution)
        found.append(Contact(at, case.customer_ref, case.case_id, case.channel, AFTER_RESOLUTION,
                             case.steps[-1].department))
    return found


def make_plan(centre: Centre, start: datetime, business: BusinessClock) -> Plan:
    """The whole run from `start` for `centre.days` days, drawn from `centre.seed`."""
    rng = random.Random(centre.seed)
    shares = {d.name: d.handoff_share for d in centre.departments}
    shares[""] = max(1.0 - sum(shares.values()), 0.0)  # contacts solved at the first contact
    cases: list[Case] = []
    contacts: list[Contact] = []
    for number, at in enumerate(arrivals(centre, start, rng), start=1):
        customer = _pseudonym(rng.randint(1, centre.customers))
        channel = _choice(rng, centre.channels)
        department = _choice(rng, shares)
        case_id = f"CASE-{number:05d}"
        if not department:
            contacts.append(Contact(at, customer, case_id, channel, OTHER))
            continue
        priority = _choice(rng, centre.priorities)
        created = at + HANDOFF_DELAY
        steps = (Step(created, CREATE, department),
                 *_leg_steps(centre, department, priority, created, rng, business, may_transfer=True))
        case = Case(case_id, customer, priority, channel, steps)
        cases.append(case)
        contacts.append(Contact(at, customer, case_id, channel, FIRST))
        contacts.extend(_callbacks(centre, case, at, rng))
    end = start + timedelta(days=centre.days)
    return Plan(start, end, tuple(cases), tuple(sorted(contacts, key=lambda c: (c.at, c.case_id))))


def start_of_run(centre: Centre, today: datetime) -> datetime:
    """The run's start: `start_weekday` at `start_time` (local) in the second week before `today`.

    Event time may not lie in the future, so the whole run lies in the past; the same
    week is chosen all week long, so a seed replays the same calendar days.
    """
    local = today.astimezone(centre.zone)
    monday = local.date() - timedelta(days=local.weekday() + 14)
    day = monday + timedelta(days=WEEKDAYS.index(centre.start_weekday))
    hours, minutes = (int(part) for part in centre.start_time.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=centre.zone).astimezone(timezone.utc)


def _pseudonym(customer: int) -> str:
    """Simulated customer number -> a customer_ref shaped as the services' pseudonyms, as the API requires."""
    return "c-" + hashlib.sha256(f"sim-customer-{customer}".encode()).hexdigest()[:32]
