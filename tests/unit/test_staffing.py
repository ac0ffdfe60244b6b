"""Staffing of the simulated centre: agents work their shifts' hours, contacts and legs wait
first come first served for a free agent, a short front line hands cases over later, and a
short-staffed department acknowledges later and draws more repeat calls; a bad shift stops
start-up with the file and the line."""

from __future__ import annotations

import statistics
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devstack.simulator.centre import Shift, load_centre
from devstack.simulator.plan import ACKNOWLEDGE, CALLBACK, FIRST, HANDOFF_DELAY, make_plan, start_of_run
from devstack.simulator.staffing import Hours, Team
from sla.adapters.policy_file import load_policies

ROOT = Path(__file__).resolve().parents[2]
CENTRE_FILE = ROOT / "config" / "simulator.yaml"
CENTRE = load_centre(CENTRE_FILE)
POLICIES = load_policies(ROOT / "config" / "sim-sla-policies.yaml")
BERLIN = ZoneInfo("Europe/Berlin")
MORNINGS = Hours(frozenset(range(5)), time(8), time(12))  # mon-fri 08:00-12:00


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in the week of Monday 2026-11-16, Berlin time."""
    return datetime(2026, 11, 16 + day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize(("at", "on_duty"), [
    (berlin(1, 9, 30), berlin(1, 9, 30)),   # inside the hours: at once
    (berlin(1, 7), berlin(1, 8)),           # before opening: at opening
    (berlin(1, 12), berlin(2, 8)),          # at closing: the next working morning
    (berlin(4, 13), berlin(7, 8)),          # Friday afternoon: Monday morning
    (berlin(5, 10), berlin(7, 8)),          # Saturday: Monday morning
])
def test_an_agent_works_only_the_hours_of_its_shift(at: datetime, on_duty: datetime) -> None:
    assert MORNINGS.next_on_duty(at, BERLIN) == on_duty


def test_a_shift_ending_at_24_00_runs_to_midnight() -> None:
    evenings = Shift(days="sun", hours="18:00-24:00", agents=1).working_hours
    assert evenings.next_on_duty(berlin(6, 23, 59), BERLIN) == berlin(6, 23, 59)
    assert evenings.next_on_duty(berlin(7, 0), BERLIN) == berlin(13, 18)


def test_legs_wait_first_come_first_served_for_a_free_agent() -> None:
    ready = berlin(0, 9)
    one = Team([(MORNINGS, 1)], BERLIN)
    assert [one.pick_up(ready, timedelta(hours=1)) for _ in range(4)] == [
        berlin(0, 9), berlin(0, 10), berlin(0, 11), berlin(1, 8)]  # the fourth waits for the next morning
    two = Team([(MORNINGS, 2)], BERLIN)
    assert [two.pick_up(ready, timedelta(hours=1)) for _ in range(4)] == [
        berlin(0, 9), berlin(0, 9), berlin(0, 10), berlin(0, 10)]


def test_an_agent_finishes_a_leg_past_the_end_of_the_shift_then_goes_home() -> None:
    one = Team([(MORNINGS, 1)], BERLIN)
    assert one.pick_up(berlin(0, 11, 30), timedelta(hours=2)) == berlin(0, 11, 30)
    assert one.pick_up(berlin(0, 11, 45), timedelta(minutes=10)) == berlin(1, 8)


def test_agents_on_duty_add_up_over_the_shifts_covering_the_instant() -> None:
    afternoons = Hours(frozenset(range(5)), time(11), time(17))
    team = Team([(MORNINGS, 2), (afternoons, 3)], BERLIN)
    assert [team.on_duty(berlin(0, hour)) for hour in (7, 9, 11, 13, 17)] == [0, 2, 5, 3, 0]


def _staffed(department: str, factor: int):
    """The seeded centre with `department`'s agents multiplied by `factor`."""
    departments = [d.model_copy(update={"agents": [s.model_copy(update={"agents": s.agents * factor})
                                                   for s in d.agents]}) if d.name == department else d
                   for d in CENTRE.departments]
    centre = CENTRE.model_copy(update={"departments": departments})
    start = start_of_run(centre, datetime(2026, 12, 4, 13, tzinfo=timezone.utc))
    return make_plan(centre, start, lambda name, priority: POLICIES.find(name, priority).calendar.add)


def test_a_short_staffed_department_acknowledges_later_and_draws_more_repeat_calls() -> None:
    def waits_and_callbacks(plan) -> tuple[float, int]:
        waits = [(case.steps[1].at - case.steps[0].at).total_seconds() for case in plan.cases
                 if case.steps[0].department == "field-service" and case.steps[1].action == ACKNOWLEDGE]
        callbacks = sum(1 for c in plan.contacts if c.reason == CALLBACK and c.department == "field-service")
        return statistics.median(waits), callbacks

    short_wait, short_calls = waits_and_callbacks(_staffed("field-service", 1))
    full_wait, full_calls = waits_and_callbacks(_staffed("field-service", 3))
    assert short_wait > 2 * full_wait and short_calls > full_calls


def _front_line(agents: int):
    """The seeded centre with one front-line shift of `agents` agents, round the clock."""
    staffed = CENTRE.front_line.model_copy(update={"agents": [Shift(days="mon-sun", hours="00:00-24:00",
                                                                    agents=agents)]})
    centre = CENTRE.model_copy(update={"front_line": staffed})
    start = start_of_run(centre, datetime(2026, 12, 4, 13, tzinfo=timezone.utc))
    return make_plan(centre, start, lambda name, priority: POLICIES.find(name, priority).calendar.add)


def test_contacts_queue_for_the_front_line_and_delay_the_handoff_when_it_is_short() -> None:
    def handover_delays(plan) -> list[float]:
        firsts = {c.case_id: c.at for c in plan.contacts if c.reason == FIRST}
        return [(case.steps[0].at - firsts[case.case_id]).total_seconds() for case in plan.cases]

    short, plenty = handover_delays(_front_line(1)), handover_delays(_front_line(20))
    # with plenty of agents every case is handed over three minutes into its first contact
    assert set(plenty) == {HANDOFF_DELAY.total_seconds()}
    # with one agent, contacts wait for the agent: some hand-overs come much later
    assert min(short) == HANDOFF_DELAY.total_seconds() and max(short) > 3600
    assert statistics.mean(short) > statistics.mean(plenty)


def test_the_same_staffing_and_seed_give_the_same_plan() -> None:
    assert _staffed("claims", 2) == _staffed("claims", 2)


@pytest.mark.parametrize(("good", "bad", "where"), [
    ('{days: mon-fri, hours: "08:00-12:00", agents: 2}', '{days: mon-funday, hours: "08:00-12:00", agents: 2}',
     r"departments\.0\.agents\.0\.days: Value error, 'mon-funday': expected weekdays"),
    ('{days: mon-fri, hours: "13:00-17:00", agents: 2}', '{days: mon-fri, hours: "17:00-13:00", agents: 2}',
     r"departments\.0\.agents\.1\.hours: Value error, '17:00-13:00': the shift ends before it starts"),
    ('{days: mon-sat, hours: "07:00-19:00", agents: 1}', '{days: mon-sat, hours: "07:00-19:00", agents: 0}',
     r"departments\.1: Value error, agents: no shift has an agent"),
])
def test_a_bad_shift_names_the_file_and_the_line(tmp_path: Path, good: str, bad: str, where: str) -> None:
    text = CENTRE_FILE.read_text()
    assert text.count(good) == 1
    changed = text.replace(good, bad)
    path = tmp_path / "centre.yaml"
    path.write_text(changed)
    rows = changed.splitlines()
    line = next(n for n, row in enumerate(rows, 1) if bad in row)
    if where.startswith(r"departments\.1:"):  # a whole department: its first line
        line = next(n for n, row in enumerate(rows, 1) if "- name: field-service" in row)
    with pytest.raises(ValueError, match=rf"centre.yaml:{line}: {where}"):
        load_centre(path)
