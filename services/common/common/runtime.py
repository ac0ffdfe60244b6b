"""Process plumbing shared by every service: the ready line and start-up failures."""

from __future__ import annotations

import json
import sys


def announce_ready(service: str, **endpoints: str) -> None:
    """Print one JSON line saying the process serves, and where; supervisors wait for it."""
    print(json.dumps({"ready": service, **endpoints}), flush=True)


def fail_start(message: str) -> None:
    """Stop start-up with a clear message and exit code 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
