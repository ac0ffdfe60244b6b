"""Delivery retries: exponential backoff with jitter, a per-call deadline, a budget, stable ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.domain.delivery import (
    RetryPolicy, backoff, call_deadline, delivery_id, jitter_source, next_attempt, retry_delay,
)
from tests.unit.conftest import T0

S = timedelta(seconds=1)
POLICY = RetryPolicy(initial_backoff=2 * S, max_backoff=60 * S, multiplier=2.0, jitter=0.25, max_attempts=8,
                     max_elapsed=timedelta(minutes=10), call_timeout=10 * S)


class Fixed:
    """A random source that always draws `value`."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    "attempts, wait",
    [(0, 2 * S), (1, 2 * S), (2, 4 * S), (3, 8 * S), (5, 32 * S), (6, 60 * S), (7, 60 * S), (10_000, 60 * S)],
)
def test_backoff_doubles_from_the_initial_wait_up_to_the_cap(attempts, wait):
    assert backoff(POLICY, attempts) == wait


@pytest.mark.parametrize(
    "draw, wait", [(0.0, 8 * S), (0.5, 7 * S), (0.75, 6.5 * S), (0.999_999, 6 * S + timedelta(microseconds=2))]
)
def test_jitter_shortens_the_wait_by_at_most_its_share(draw, wait):
    assert retry_delay(POLICY, 3, Fixed(draw)) == wait


@pytest.mark.parametrize(
    "attempts, now, expected",
    [
        (1, T0, T0 + 2 * S),
        (3, T0 + 20 * S, T0 + 28 * S),
        (7, T0 + 5 * 60 * S, T0 + 6 * 60 * S),
        (8, T0 + 60 * S, None),                             # out of attempts
        (3, T0 + 9 * 60 * S + 55 * S, None),                # the retry would fall past the budget
        (6, T0 + 9 * 60 * S, None),
    ],
)
def test_next_attempt_follows_the_backoff_until_the_budget_runs_out(attempts, now, expected):
    assert next_attempt(POLICY, attempts, T0, now, Fixed(0.0)) == expected


@pytest.mark.parametrize(
    "now, deadline",
    [(T0, T0 + 10 * S), (T0 + 5 * 60 * S, T0 + 5 * 60 * S + 10 * S), (T0 + 9 * 60 * S + 55 * S, T0 + 10 * 60 * S)],
)
def test_each_call_gets_the_call_timeout_cut_short_by_the_budget(now, deadline):
    assert call_deadline(POLICY, T0, now) == deadline


@pytest.mark.parametrize(
    "changes",
    [
        {"initial_backoff": timedelta(0)},
        {"max_backoff": S},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"max_attempts": 0},
        {"max_elapsed": timedelta(0)},
        {"call_timeout": timedelta(0)},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_a_retry_policy_that_cannot_work_is_refused(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        RetryPolicy(**{"initial_backoff": 2 * S, **changes})


def test_a_delivery_keeps_its_id_across_retries_and_restarts_and_differs_per_channel():
    first = delivery_id("breach:h-1:ack:2025-03-03T09:00:00+00:00", "billing", "team-chat")

    assert first == delivery_id("breach:h-1:ack:2025-03-03T09:00:00+00:00", "billing", "team-chat")
    assert first != delivery_id("breach:h-1:ack:2025-03-03T09:00:00+00:00", "billing", "subscription")
    assert first != delivery_id("breach:h-1:ack:2025-03-03T09:00:00+00:00", "billing-lead", "team-chat")


def test_the_seeded_jitter_source_picks_the_same_retry_time_after_a_restart():
    before = next_attempt(POLICY, 2, T0, T0 + S, jitter_source("d-1", 2))
    after = next_attempt(POLICY, 2, T0, T0 + S, jitter_source("d-1", 2))
    draws = {jitter_source(f"d-{n}", 2).random() for n in range(20)}

    assert before == after
    assert len(draws) == 20


policies = st.builds(
    RetryPolicy,
    initial_backoff=st.integers(1, 10_000).map(lambda ms: timedelta(milliseconds=ms)),
    max_backoff=st.just(timedelta(minutes=5)),
    multiplier=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 1.0),
    max_attempts=st.integers(1, 50),
    max_elapsed=st.integers(1, 10_000).map(lambda s: timedelta(seconds=s)),
)


@given(policies, st.integers(0, 200))
def test_backoff_never_shrinks_and_never_passes_the_cap(policy, attempts):
    assert policy.initial_backoff <= backoff(policy, attempts) <= backoff(policy, attempts + 1) <= policy.max_backoff


@given(policies, st.integers(1, 200), st.floats(0.0, 1.0, exclude_max=True))
def test_a_jittered_wait_stays_within_the_jitter_band_below_the_backoff(policy, attempts, draw):
    base = backoff(policy, attempts)

    wait = retry_delay(policy, attempts, Fixed(draw))

    assert base * (1 - policy.jitter) - timedelta(microseconds=1) <= wait <= base


@given(policies, st.integers(0, 60), st.integers(0, 20_000), st.integers(0, 2**32))
def test_a_retry_is_never_scheduled_past_the_budget_or_the_attempts(policy, attempts, elapsed, seed):
    now = T0 + timedelta(seconds=elapsed)

    at = next_attempt(policy, attempts, T0, now, jitter_source(str(seed), attempts))

    if attempts >= policy.max_attempts or now >= T0 + policy.max_elapsed:
        assert at is None
    if at is not None:
        assert now <= at < T0 + policy.max_elapsed
