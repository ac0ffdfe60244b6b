"""The simulated contact centre's configuration (config/simulator.yaml), validated once.

Durations are written as in the policy files (40m, 5h, 2d) and count simulated time. A
bad file stops start-up with the file, the line and the reason.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.yamlfile import ConfigProblem, LineList, LineMap, parse_duration, read_yaml
from devstack.simulator.staffing import Hours, Team

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CHANNELS = ("call", "chat", "email", "messaging")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")

Duration = Annotated[timedelta, BeforeValidator(lambda text: parse_duration(text) if isinstance(text, str) else text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spread(_Strict):
    """A log-normal delay: half of the draws fall below `median`; `spread` is its sigma."""

    median: Duration
    spread: float = Field(0.5, ge=0, le=3)


def _weekdays(text: str) -> frozenset[int]:
    """`mon-fri`, `sat`, `mon,wed,fri` or `mon-fri,sun` -> weekday numbers (0 = Monday)."""
    found: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"{text!r}: expected weekdays such as mon-fri, sat or mon,wed ({', '.join(WEEKDAYS)})")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            raise ValueError(f"{text!r}: {part} runs backwards")
        found.update(range(start, end + 1))
    return frozenset(found)


_HOURS = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")


def _hours(text: str) -> tuple[time, time | None]:
    """`08:00-17:00` -> (start, end); an end of 24:00 is midnight (None)."""
    match = _HOURS.fullmatch(text.replace(" ", ""))
    if not match:
        raise ValueError(f"{text!r}: expected HH:MM-HH:MM, e.g. 08:00-17:00")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: not a time of day")
    start, end = time(h1, m1), None if h2 == 24 else time(h2, m2)
    if end is not None and end <= start:
        raise ValueError(f"{text!r}: the shift ends before it starts (split a night shift at 24:00)")
    return start, end


class Shift(_Strict):
    """`agents` agents on duty on `days` during local `hours` (e.g. mon-fri, 08:00-12:00)."""

    days: str
    hours: str
    agents: int = Field(ge=0, le=1000)

    @field_validator("days")
    @classmethod
    def _known_days(cls, text: str) -> str:
        _weekdays(text)
        return text

    @field_validator("hours")
    @classmethod
    def _known_hours(cls, text: str) -> str:
        _hours(text)
        return text

    @property
    def working_hours(self) -> Hours:
        return Hours(_weekdays(self.days), *_hours(self.hours))


class Transfer(_Strict):
    share: float = Field(ge=0, le=1)
    to: str


class Staffed(_Strict):
    """Agents by shift, each taking one piece of work at a time for a drawn `handle` time."""

    agents: list[Shift] = Field(min_length=1)
    handle: Spread

    @model_validator(mode="after")
    def _staffed(self) -> "Staffed":
        if not any(shift.agents for shift in self.agents):
            raise ValueError("agents: no shift has an agent, so nothing would ever be picked up")
        return self

    def team(self, zone: ZoneInfo) -> Team:
        """The agents, none of them busy yet."""
        return Team([(shift.working_hours, shift.agents) for shift in self.agents], zone)


class Department(Staffed):
    name: str
    handoff_share: float = Field(ge=0, le=1)
    resolve: Spread
    waiting_on_customer: float = Field(0.0, ge=0, le=1)
    transfer: Transfer | None = None


class AfterResolution(Spread):
    share: float = Field(ge=0, le=1)


class Callbacks(_Strict):
    patience: Spread
    max_calls: int = Field(2, ge=0, le=5)
    after_resolution: AfterResolution


class Centre(_Strict):
    seed: int = 14
    days: int = Field(7, ge=1, le=28)
    speed: float = Field(1800, gt=0)
    start_weekday: str = "mon"
    start_time: str = "06:00"
    timezone: str = "Europe/Berlin"
    customers: int = Field(3000, ge=1)
    arrivals_per_hour: list[float] = Field(min_length=24, max_length=24)
    weekday_factor: dict[str, float]
    channels: dict[str, float]
    priorities: dict[str, float]
    front_line: Staffed
    departments: list[Department] = Field(min_length=1)
    callbacks: Callbacks

    @model_validator(mode="after")
    def _consistent(self) -> "Centre":
        names = [d.name for d in self.departments]
        if len(set(names)) != len(names):
            raise ValueError("departments: a department is listed twice")
        for department in self.departments:
            if department.transfer and department.transfer.to not in names:
                raise ValueError(f"departments: {department.name} transfers to {department.transfer.to}, "
                                 "which is not listed")
        if sum(d.handoff_share for d in self.departments) > 1:
            raise ValueError("departments: handoff shares add up to more than 1")
        for what, allowed, given in (("weekday_factor", WEEKDAYS, self.weekday_factor),
                                     ("channels", CHANNELS, self.channels),
                                     ("priorities", PRIORITIES, self.priorities)):
            unknown = set(given) - set(allowed)
            if unknown:
                raise ValueError(f"{what}: unknown {', '.join(sorted(unknown))}; expected {', '.join(allowed)}")
        if self.start_weekday not in WEEKDAYS:
            raise ValueError(f"start_weekday: expected one of {', '.join(WEEKDAYS)}")
        ZoneInfo(self.timezone)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def department(self, name: str) -> Department:
        return next(d for d in self.departments if d.name == name)


def _line(document: Any, location: tuple[Any, ...]) -> int:
    """The line of the deepest part of `location` the document knows."""
    line, node = getattr(document, "line", 0), document
    for key in location:
        if isinstance(node, LineMap) and key in node:
            line = node.line_of(key)
        elif isinstance(node, LineList) and isinstance(key, int) and key < len(node):
            line = node.line_of(key)
        else:
            break
        node = node[key]
    return line


def load_centre(path: Path) -> Centre:
    """The centre described by `path`; ValueError naming file, line and reason when it is bad."""
    try:
        document = read_yaml(path)
    except ConfigProblem as problem:
        raise ValueError(problem.located(path)) from None
    try:
        return Centre.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problem = ConfigProblem(_line(document, first["loc"]), f"{where}: {first['msg']}" if where else first["msg"])
        raise ValueError(problem.located(path)) from None
