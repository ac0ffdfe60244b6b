"""Process plumbing shared by every service: the ready line and stop signals."""

from __future__ import annotations

import asyncio
import json
import signal
import sys


def announce_ready(service: str, **endpoints: str) -> None:
    """Print one JSON line saying the process serves, and where; supervisors wait for it."""
    print(json.dumps({"ready": service, **endpoints}), flush=True)


async def wait_for_stop_signal() -> str:
    """Block until SIGTERM or SIGINT arrives; returns the signal's name."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: stopped.done() or stopped.set_result(s.name))
    try:
        return await stopped
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def fail_start(message: str) -> None:
    """Stop start-up with a clear message and exit code 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
