"""Delivery retries: when to try a channel again, and when to give up.

Each call to a channel gateway has a deadline. A failed call is retried after an
exponential backoff (`initial_backoff * multiplier ** (attempts - 1)`, capped at
`max_backoff`), shortened by a random share of at most `jitter` so that replicas retrying
the same gateway spread out. The retry budget is both a number of attempts and a total
time from the first attempt; past either, the delivery has failed: a `failed` event and a
record on the DLQ. Permanent errors (a gateway that answers INVALID_ARGUMENT) should not
be retried at all; that choice belongs to the adapter that knows the error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from common.ids import derived_event_id


class RandomSource(Protocol):
    """Where jitter comes from: `random.Random`, or any object with `random() -> [0, 1)`."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a channel is tried; validated on construction."""

    initial_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(minutes=5)
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int = 10
    max_elapsed: timedelta = timedelta(hours=1)
    call_timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        problems = {
            "initial_backoff must be positive": self.initial_backoff <= timedelta(0),
            "max_backoff must not be shorter than initial_backoff": self.max_backoff < self.initial_backoff,
            "multiplier must be at least 1": not self.multiplier >= 1,
            "jitter must lie between 0 and 1": not 0 <= self.jitter <= 1,
            "max_attempts must be at least 1": self.max_attempts < 1,
            "max_elapsed must be positive": self.max_elapsed <= timedelta(0),
            "call_timeout must be positive": self.call_timeout <= timedelta(0),
        }
        failed = [problem for problem, broken in problems.items() if broken]
        if failed:
            raise ValueError("; ".join(failed))


def backoff(policy: RetryPolicy, attempts: int) -> timedelta:
    """The wait after `attempts` failed attempts, before jitter: grows, then stays at the cap."""
    try:
        seconds = policy.initial_backoff.total_seconds() * policy.multiplier ** max(attempts - 1, 0)
    except OverflowError:
        return policy.max_backoff
    return min(policy.max_backoff, timedelta(seconds=min(seconds, policy.max_backoff.total_seconds())))


def retry_delay(policy: RetryPolicy, attempts: int, rng: RandomSource) -> timedelta:
    """The jittered wait after `attempts` failed attempts: within [backoff * (1 - jitter), backoff]."""
    return backoff(policy, attempts) * (1 - policy.jitter * rng.random())


def next_attempt(
    policy: RetryPolicy, attempts: int, first_attempt_at: datetime, now: datetime, rng: RandomSource
) -> datetime | None:
    """When to try again after `attempts` failed attempts (the last ending at `now`); None = give up."""
    if attempts >= policy.max_attempts:
        return None
    at = now + retry_delay(policy, attempts, rng)
    return at if at < first_attempt_at + policy.max_elapsed else None


def call_deadline(policy: RetryPolicy, first_attempt_at: datetime, now: datetime) -> datetime:
    """The deadline of a call starting at `now`: the per-call timeout, cut short by the budget."""
    return min(now + policy.call_timeout, first_attempt_at + policy.max_elapsed)


def delivery_id(notification_key: str, receiver: str, channel: str) -> str:
    """The id of delivering one notification to one receiver's channel: the same across retries and restarts."""
    return derived_event_id("delivery", notification_key, receiver, channel)


def jitter_source(delivery: str, attempts: int) -> random.Random:
    """A random source seeded by the delivery and attempt, so a restart picks the same retry time."""
    return random.Random(f"{delivery}:{attempts}")
