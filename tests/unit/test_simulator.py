"""The simulated centre: a seed gives one plan, departments work on their own calendars,
customers call again only while a case is unresolved (or once after), and simulated time
pauses, changes speed and never passes the present."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from devstack.simulator.centre import load_centre
from devstack.simulator.plan import (ACKNOWLEDGE, AFTER_RESOLUTION, CALLBACK, CREATE, FIRST, RESOLVE, TRANSFER,
                                     make_plan, start_of_run)
from devstack.simulator.runner import SimClock
from sla.adapters.policy_file import load_policies

ROOT = Path(__file__).resolve().parents[2]
CENTRE = load_centre(ROOT / "config" / "simulator.yaml")
POLICIES = load_policies(ROOT / "config" / "sim-sla-policies.yaml")
TODAY = datetime(2026, 12, 4, 13, 0, tzinfo=timezone.utc)


def business(department: str, priority: str):
    return POLICIES.find(department, priority).calendar.add


def plan(**changes):
    return make_plan(CENTRE.model_copy(update=changes), start_of_run(CENTRE, TODAY), business)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    assert plan() == plan()
    assert plan(seed=15).cases != plan().cases


def test_the_run_starts_on_the_configured_weekday_and_time_in_the_past():
    start = start_of_run(CENTRE, TODAY)
    local = start.astimezone(CENTRE.zone)
    assert (local.strftime("%a %H:%M"), start < TODAY - timedelta(days=CENTRE.days)) == ("Mon 06:00", True)


def test_every_case_opens_after_its_first_contact_and_its_steps_move_forward():
    drawn = plan()
    firsts = {c.case_id: c.at for c in drawn.contacts if c.reason == FIRST}
    for case in drawn.cases:
        times = [step.at for step in case.steps]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert (case.steps[0].action, case.steps[-1].action) == (CREATE, RESOLVE)
        assert firsts[case.case_id] < case.steps[0].at


def test_office_hours_departments_acknowledge_inside_their_hours():
    calendar = POLICIES.find("accounts", "NORMAL").calendar
    acks = [s.at for case in plan().cases for s in case.steps if s.action == ACKNOWLEDGE and s.department == "accounts"
            and case.priority != "URGENT"]
    assert acks and all(calendar.between(at - timedelta(seconds=1), at) == timedelta(seconds=1) for at in acks)


def test_customers_call_again_only_while_the_case_is_open_and_once_after_resolution():
    drawn = plan()
    cases = {case.case_id: case for case in drawn.cases}
    callbacks = [c for c in drawn.contacts if c.reason == CALLBACK]
    after = [c for c in drawn.contacts if c.reason == AFTER_RESOLUTION]
    assert callbacks and after
    assert all(c.at < cases[c.case_id].resolved_at and c.department for c in callbacks)
    assert all(c.at > cases[c.case_id].resolved_at for c in after)


def test_slow_departments_miss_their_ack_target_mostly_and_fast_ones_rarely():
    targets = {"billing": 2, "field-service": 1, "accounts": 4, "claims": 3}  # hours, sim-sla-policies.yaml

    def late_share(department: str) -> float:
        legs = [case for case in plan().cases if case.steps[0].department == department and case.priority != "URGENT"]
        calendar = POLICIES.find(department, "NORMAL").calendar
        late = [case for case in legs
                if calendar.between(case.steps[0].at, case.steps[1].at) > timedelta(hours=targets[department])]
        return len(late) / len(legs)

    assert late_share("field-service") > 0.6 and late_share("claims") > 0.4
    assert late_share("accounts") < 0.2 and late_share("billing") < 0.2


def test_transfers_open_a_leg_for_the_target_department():
    moved = [case for case in plan().cases if any(s.action == TRANSFER for s in case.steps)]
    assert moved
    for case in moved:
        transfer = next(s for s in case.steps if s.action == TRANSFER)
        assert case.steps[-1].department == transfer.to != transfer.department


def test_simulated_time_pauses_changes_speed_and_stays_short_of_the_present():
    real = [0.0]
    start = datetime(2026, 11, 16, 5, tzinfo=timezone.utc)
    clock = SimClock(start, 1000, start + timedelta(days=7), real=lambda: real[0], wall=lambda: TODAY)
    real[0] = 3.6
    assert clock.now() == start + timedelta(hours=1)
    clock.toggle_pause()
    real[0] = 100
    assert clock.now() == start + timedelta(hours=1) and clock.paused
    clock.toggle_pause()
    clock.set_speed(2000)
    real[0] = 101.8
    assert clock.now() == start + timedelta(hours=2)
    real[0] = 10_000
    assert clock.now() == start + timedelta(days=7) and clock.finished


def test_a_bad_centre_file_names_the_file_and_the_line(tmp_path: Path):
    text = (ROOT / "config" / "simulator.yaml").read_text().replace("handoff_share: 0.18", "handoff_share: 7")
    bad = tmp_path / "centre.yaml"
    bad.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "handoff_share: 7" in row)
    with pytest.raises(ValueError, match=rf"centre.yaml:{line}: departments.0.handoff_share"):
        load_centre(bad)
