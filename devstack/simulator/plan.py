"""What the simulated centre will do, drawn up front from a seed: every contact, and every
step of every handed-off case (create, acknowledge, status changes, transfer, resolve).
A leg waits in its department's queue until one of the department's agents is on duty and
free (devstack.simulator.staffing), so staffing decides how late legs are acknowledged.

Pure: the same centre, calendars, start and seed give the same plan, so two runs drive
the services with the same calls at the same event times. Agents work their shifts' hours;
the time to resolve counts the department's working time on its policy's calendar, so an
office-hours department does nothing at night; customers count their patience in
real (simulated) time and call again while their case is unresolved.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from devstack.simulator.centre import WEEKDAYS, Centre, Spread
from devstack.simulator.staffing import Team

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


@dataclass(order=True)
class _Arrival:
    """A leg entering a department's queue at `at` (a new case, or a transfer in)."""

    at: datetime
    order: int
    case: int = field(compare=False)
    department: str = field(compare=False)
    may_transfer: bool = field(compare=False)


def _leg_steps(centre: Centre, arrival: _Arrival, priority: str, team: Team, rng: random.Random,
               business: BusinessClock) -> tuple[list[Step], _Arrival | None]:
    """The steps of one leg from its arrival in the queue: an agent picks it up when one is on duty
    and free, then it is worked, and it ends resolved or transferred (the next arrival)."""
    department, opened = arrival.department, arrival.at
    behaviour = centre.department(department)
    add = business(department, priority)
    picked = team.pick_up(opened, _draw(rng, behaviour.handle))
    ack_at = picked + timedelta(minutes=rng.randint(1, 5))
    working = ack_at + timedelta(minutes=rng.randint(1, 10))
    steps = [Step(ack_at, ACKNOWLEDGE, department), Step(working, STATUS, department, status="IN_PROGRESS")]
    work = _draw(rng, behaviour.resolve)
    if arrival.may_transfer and behaviour.transfer and rng.random() < behaviour.transfer.share:
        moved = add(working, work / 2) + timedelta(seconds=1)
        target = behaviour.transfer.to
        return ([*steps, Step(moved, TRANSFER, department, to=target)],
                _Arrival(moved, arrival.order, arrival.case, target, may_transfer=False))
    if rng.random() < behaviour.waiting_on_customer:
        waits = add(working, work / 3) + timedelta(seconds=1)
        back = waits + _draw(rng, Spread(median=timedelta(hours=3), spread=0.5))
        steps += [Step(waits, STATUS, department, status="WAITING_ON_CUSTOMER"),
                  Step(back, STATUS, department, status="IN_PROGRESS")]
        working = back
        work = work * 2 / 3
    return [*steps, Step(max(add(working, work), working + timedelta(minutes=1)), RESOLVE, department)], None


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
    """The whole run from `start` for `centre.days` days, drawn from `centre.seed`.

    Legs are planned in the order they reach a department (new cases and transfers alike),
    so each department's agents take them first come, first served.
    """
    rng = random.Random(centre.seed)
    shares = {d.name: d.handoff_share for d in centre.departments}
    shares[""] = max(1.0 - sum(shares.values()), 0.0)  # contacts solved at the first contact
    teams = {d.name: d.team(centre.zone) for d in centre.departments}
    opened: list[tuple[Contact, str, list[Step]]] = []  # first contact, priority, steps so far
    contacts: list[Contact] = []
    queue: list[_Arrival] = []
    for number, at in enumerate(arrivals(centre, start, rng), start=1):
        customer = f"cust-{rng.randint(1, centre.customers):05d}"
        channel = _choice(rng, centre.channels)
        department = _choice(rng, shares)
        first = Contact(at, customer, f"CASE-{number:05d}", channel, FIRST if department else OTHER)
        contacts.append(first)
        if department:
            created = at + HANDOFF_DELAY
            heapq.heappush(queue, _Arrival(created, len(opened), len(opened), department, may_transfer=True))
            opened.append((first, _choice(rng, centre.priorities), [Step(created, CREATE, department)]))
    while queue:
        arrival = heapq.heappop(queue)
        _, priority, steps = opened[arrival.case]
        more, onward = _leg_steps(centre, arrival, priority, teams[arrival.department], rng, business)
        steps.extend(more)
        if onward is not None:
            heapq.heappush(queue, onward)
    cases: list[Case] = []
    for first, priority, steps in opened:
        case = Case(first.case_id, first.customer_ref, priority, first.channel, tuple(steps))
        cases.append(case)
        contacts.extend(_callbacks(centre, case, first.at, rng))
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
