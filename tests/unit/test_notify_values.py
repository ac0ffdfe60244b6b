"""evolve: a frozen value with some fields changed, equal to what dataclasses.replace makes."""

from __future__ import annotations

import dataclasses

import pytest

from notify.domain.requests import End, Leg
from notify.domain.values import evolve
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import notification


def test_an_evolved_value_equals_the_replaced_one_and_leaves_the_original_as_it_was() -> None:
    leg = Leg("h-1", "case-1", "cust-1", "billing", ends=(End(T0, "leg acknowledged"),))
    assert evolve(leg, breached=True, open=(("n-1", "billing"),)) == dataclasses.replace(
        leg, breached=True, open=(("n-1", "billing"),))
    assert not leg.breached and leg.open == ()
    told = notification()
    assert evolve(told, receiver="claims", notification_id="n-2") == dataclasses.replace(
        told, receiver="claims", notification_id="n-2")
    assert hash(evolve(told, receiver="claims")) == hash(dataclasses.replace(told, receiver="claims"))


def test_evolving_a_field_the_value_does_not_have_fails() -> None:
    with pytest.raises(TypeError, match="no field 'breachd'"):
        evolve(Leg("h-1", "case-1", "cust-1", "billing"), breachd=True)
