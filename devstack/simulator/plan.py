"""What the simulated centre will do, drawn up front from a seed: every contact, and every
step of every handed-off case (create, acknowledge, status changes, transfer, resolve).
A contact waits for a front-line agent, and a leg in its department's queue for one of the
department's agents, each on duty and free (devstack.simulator.staffing): staffing decides
how soon cases are handed over and how late legs are acknowledged.

Pure: the same centre, calendars, start and seed give the same plan, so two runs drive
the services with the same calls at the same event times. Agents work their shifts' hours;
the time to resolve counts the department's working time on its policy's calendar, so an
office-hours department does nothing at night; customers count their patience in
real (simulated) time and call again while their case is unresolved.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class _Arrival:
    """A leg entering a department's queue at `at` (a new case, or a transfer in)."""

    at: datetime
    case_id: str
    department: str
    may_transfer: bool


def _stream(seed: int, case_id: str, what: str) -> random.Random:
    """The draws of one case for one purpose: a change elsewhere (more agents, say) leaves them
    as they were, so two runs that differ in one setting compare the same customers."""
    return random.Random(f"{seed}:{case_id}:{what}")


@dataclass
class _Planning:
    """A handed-off case while its steps are drawn, with its own streams of draws."""

    first: Contact
    priority: str
    department: str
    legs: random.Random
    calls: random.Random
    steps: list[Step] = field(default_factory=list)
    calls_again: int = 0

    def resolved_by(self, at: datetime) -> bool:
        return bool(self.steps) and self.steps[-1].action == RESOLVE and self.steps[-1].at <= at

    def holder(self, at: datetime) -> str:
        """The department holding the case at `at` ("" before the first leg opens)."""
        holder = ""
        for step in self.steps:
            if step.at > at:
                break
            holder = step.to if step.action == TRANSFER else step.department
        return holder


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
                _Arrival(moved, arrival.case_id, target, may_transfer=False))
    if rng.random() < behaviour.waiting_on_customer:
        waits = add(working, work / 3) + timedelta(seconds=1)
        back = waits + _draw(rng, Spread(median=timedelta(hours=3), spread=0.5))
        steps += [Step(waits, STATUS, department, status="WAITING_ON_CUSTOMER"),
                  Step(back, STATUS, department, status="IN_PROGRESS")]
        working = back
        work = work * 2 / 3
    return [*steps, Step(max(add(working, work), working + timedelta(minutes=1)), RESOLVE, department)], None


class _Events:
    """What happens next, earliest first; ties in the order they were scheduled."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Contact | _Arrival]] = []
        self._order = itertools.count()

    def add(self, item: Contact | _Arrival) -> None:
        heapq.heappush(self._heap, (item.at, next(self._order), item))

    def __iter__(self) -> Iterator[Contact | _Arrival]:
        while self._heap:
            yield heapq.heappop(self._heap)[2]


def make_plan(centre: Centre, start: datetime, business: BusinessClock) -> Plan:
    """The whole run from `start` for `centre.days` days, drawn from `centre.seed`.

    One simulated timeline: contacts reach the front line and legs reach departments in time
    order, so every queue is first come, first served. A case is handed over a few minutes
    after a front-line agent answers its first contact; a customer calls again only if the
    case is still open when patience runs out.
    """
    rng = random.Random(centre.seed)
    rules = centre.callbacks
    shares = {d.name: d.handoff_share for d in centre.departments}
    shares[""] = max(1.0 - sum(shares.values()), 0.0)  # contacts solved at the first contact
    teams = {d.name: d.team(centre.zone) for d in centre.departments}
    front = centre.front_line.team(centre.zone)
    cases: dict[str, _Planning] = {}
    events = _Events()
    for number, at in enumerate(arrivals(centre, start, rng), start=1):
        customer = _pseudonym(rng.randint(1, centre.customers))
        channel = _choice(rng, centre.channels)
        department = _choice(rng, shares)
        first = Contact(at, customer, f"CASE-{number:05d}", channel, FIRST if department else OTHER)
        events.add(first)
        if department:
            cases[first.case_id] = _Planning(first, _choice(rng, centre.priorities), department,
                                             _stream(centre.seed, first.case_id, "legs"),
                                             _stream(centre.seed, first.case_id, "calls"))
    contacts: list[Contact] = []
    for event in events:
        if isinstance(event, _Arrival):
            case = cases[event.case_id]
            steps, onward = _leg_steps(centre, event, case.priority, teams[event.department], case.legs, business)
            case.steps.extend(steps)
            if onward is not None:
                events.add(onward)
            elif case.legs.random() < rules.after_resolution.share:
                resolved = case.steps[-1]
                events.add(replace(case.first, at=resolved.at + _draw(case.legs, rules.after_resolution),
                                   reason=AFTER_RESOLUTION, department=resolved.department))
            continue
        case = cases.get(event.case_id)
        if event.reason == CALLBACK:
            if case.resolved_by(event.at) or not case.holder(event.at):
                continue  # solved before the customer ran out of patience (or not yet handed over)
            event = replace(event, department=case.holder(event.at))
        contacts.append(event)
        draws = case.calls if case else _stream(centre.seed, event.case_id, "calls")
        answered = front.pick_up(event.at, _draw(draws, centre.front_line.handle))
        if event.reason == FIRST:
            created = answered + HANDOFF_DELAY
            case.steps.append(Step(created, CREATE, case.department))
            events.add(_Arrival(created, event.case_id, case.department, may_transfer=True))
        if event.reason in (FIRST, CALLBACK) and case.calls_again < rules.max_calls:
            case.calls_again += 1
            events.add(replace(event, at=event.at + _draw(case.calls, rules.patience), reason=CALLBACK))
    plans = tuple(Case(c.first.case_id, c.first.customer_ref, c.priority, c.first.channel, tuple(c.steps))
                  for c in cases.values())
    end = start + timedelta(days=centre.days)
    return Plan(start, end, plans, tuple(sorted(contacts, key=lambda c: (c.at, c.case_id))))


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
