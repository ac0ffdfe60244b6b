"""An asyncio loop on a thread of its own, for the gateway calls the stream engine starts.

The engine's thread must never wait on a gateway; the gRPC server's loop should not carry
delivery bursts either. Calls are handed over with `run` and report back by themselves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

CLOSE_S = 10.0


class DeliveryLoop:
    def __init__(self, name: str = "notify-delivery") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Start `coroutine` on the loop; returns at once."""
        asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def close(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        """Run `last` (closing the clients), then stop the loop and its thread."""
        if last is not None:
            try:
                asyncio.run_coroutine_threadsafe(last, self._loop).result(CLOSE_S)
            except Exception:  # noqa: BLE001 - closing: nothing left to tell
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_S)
