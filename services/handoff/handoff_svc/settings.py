"""The handoff service's own settings, read once at start-up (beside common.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from common.settings import duration_setting


@dataclass(frozen=True)
class Retention:
    """How long the command owner keeps what it no longer needs to apply commands: a stored
    reply (the answer to a retry) and a closed leg (a late change, a reopen, still finds it)."""

    reply_ttl: timedelta = timedelta(hours=24)
    repeat_window: timedelta = timedelta(days=7)


def retention_settings(env: Mapping[str, str] | None = None) -> Retention:
    """HANDOFF_REPLY_TTL (default 24h) and HANDOFF_REPEAT_WINDOW (default 7d; keep it equal to
    `repeat_contacts.window` of the SLA policies, the window sla keeps a closed leg for)."""
    env = os.environ if env is None else env
    default = Retention()
    return Retention(duration_setting(env, "HANDOFF_REPLY_TTL", default.reply_ttl),
                     duration_setting(env, "HANDOFF_REPEAT_WINDOW", default.repeat_window))
