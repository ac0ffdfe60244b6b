"""One process around a stream engine: metrics, the engine's thread, gRPC, the ready line,
and a clean stop on SIGTERM or Ctrl-C.

The gRPC server starts at once and says it is alive (health name `liveness`); it says
SERVING, and takes calls, only once the engine has restored the state of its first
assignment and `on_ready` (a read model catching up) has returned, so a readiness probe
passes only when the process can really answer. An engine that fails stops the process
with exit code 1, one stuck in a call to the broker that will not return with EXIT_STUCK
(75), so its supervisor restarts it; the restarted worker rebuilds its state from the
changelogs.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from common import logs
from common.grpcserver import start_server
from common.metrics import serve_metrics
from common.runtime import announce_ready
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.streams.engine import EXIT_STUCK, StreamEngine, start_engine

Registration = tuple[Callable[[object, object], None], object, str]
STOP_GRACE_S = 5.0
ENGINE_STOP_S = 60.0


@dataclass
class ServiceParts:
    """What a service runs: an engine (None for a read-only replica), servicers, hooks."""

    engine: StreamEngine | None
    registrations: list[Registration] = field(default_factory=list)
    on_ready: Callable[[], Awaitable[None]] | None = None
    on_stopped: Callable[[], Awaitable[None]] | None = None


async def _until(condition: Callable[[], bool], stop: asyncio.Event) -> None:
    while not condition() and not stop.is_set():
        await asyncio.sleep(0.05)


async def serve(service: str, settings: ServiceSettings, security: ServerSecurity, parts: ServiceParts) -> int:
    """Run until SIGTERM/SIGINT or an engine failure; the process's exit code."""
    log = logs.configure(service, settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine = parts.engine
    metrics_port = serve_metrics(settings.grpc_host, settings.metrics_port)
    thread = start_engine(engine, f"{service}-engine") if engine else None

    def failed() -> bool:
        return engine is not None and (engine.failure is not None or not thread.is_alive() or engine.stuck() > 0)

    # Alive at once (health name `liveness`), ready only once the state is back.
    server = await start_server(settings.grpc_host, settings.grpc_port, parts.registrations, security,
                                serving=False)
    try:
        if engine is not None:
            await _until(lambda: engine.ready.is_set() or failed(), stop)
        if not stop.is_set() and not failed():
            if parts.on_ready:
                await parts.on_ready()
            await server.set_serving()
            host = settings.grpc_host
            announce_ready(service, grpc=f"{host}:{server.port}", metrics=f"http://{host}:{metrics_port}/metrics")
            await _until(failed, stop)
    finally:
        await server.stop(grace=STOP_GRACE_S)
        stuck = engine.stuck() if engine is not None else 0.0
        if engine is not None and not stuck:
            engine.stop()
            await asyncio.to_thread(thread.join, ENGINE_STOP_S)
        if parts.on_stopped:
            await parts.on_stopped()
    if stuck:
        # Its thread cannot be joined; what it had not committed is read again by the next process.
        log.error("stopped: the stream engine is stuck in a call to the broker; start me again",
                  seconds=round(stuck, 1))
        return EXIT_STUCK
    if engine is not None and engine.failure is not None:
        log.error("stopped: the stream engine failed", error=str(engine.failure))
        return 1
    return 0
