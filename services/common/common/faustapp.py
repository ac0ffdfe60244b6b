"""The project's faust conventions in one place, and the side service every worker runs.

Every stream app: at-least-once, topics created by the project (never declared here but
for table changelogs), no faust web server (metrics come from prometheus-client), its own
data directory, RocksDB tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust
import mode

from common import logs
from common.codec import MalformedRecord, decode
from common.dlq import dead_letter
from common.grpcserver import RunningServer, start_server
from common import metrics
from common.metrics import serve_metrics
from common.runtime import announce_ready
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import TopicSpec

PARTITIONS = 4
READY_TIMEOUT = 60.0
log = logging.getLogger(__name__)


def make_app(app_id: str, settings: ServiceSettings, standby_replicas: int = 1) -> faust.App:
    """A faust app with the project's settings."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=PARTITIONS,
        topic_disable_leader=True,
        table_standby_replicas=standby_replicas,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        stream_wait_empty=True,
        **settings.kafka_security.faust(),
    )


Tick = Callable[[], Awaitable[None]]


def every(app: faust.App, interval: float) -> Callable[[Tick], Tick]:
    """Run the decorated coroutine function every `interval` seconds while the worker runs.

    Like a faust timer, but a pass that outlasts the interval (under load, with a short
    interval, often) just delays the next one instead of logging that the timer overlaps.
    A failure stops the worker, as a timer's does.
    """

    def decorate(tick: Tick) -> Tick:
        async def repeat() -> None:
            while not app.should_stop:
                await app.sleep(interval)
                if not app.should_stop:
                    await tick()

        app.task(repeat)
        return tick

    return decorate


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic of bytes keys and values: our codecs do the protobuf work."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PARTITIONS,
    )


def table(app: faust.App, name: str) -> faust.TableT:
    """A table co-partitioned with the topics (same count), JSON values, None when missing."""
    return app.Table(name, partitions=PARTITIONS, default=None)


Handler = Callable[[Any, int], Awaitable[None]]


async def process_records(
    app: faust.App, stream: faust.StreamT, topic: TopicSpec, handler: Handler, consumer: str
) -> None:
    """Decode each record of `stream` and hand it to `handler(message, partition)`.

    A record that cannot be decoded or handled (bad data: a decode, value or lookup error)
    goes to the topic's DLQ with the reason, and the partition moves on: one bad record
    never stops a consumer. Any other error (the broker, a bug in wiring) stops the worker
    without committing, so the record is processed again after the restart.
    """
    async for event in stream.events():
        record = event.message
        try:
            await handler(decode(topic, record.value), record.partition)
        except (MalformedRecord, ValueError, LookupError, TypeError) as error:
            reason = str(error) if isinstance(error, MalformedRecord) else f"{type(error).__name__}: {error}"
            log.warning("dead-lettering %s[%s]@%s: %s", topic.name, record.partition, record.offset, reason)
            await dead_letter(
                partial(_send_raw, app), topic, record.key, record.value, record.partition, record.offset,
                reason, consumer,
            )


async def _send_raw(app: faust.App, topic: str, key: bytes | None, value: bytes | None, headers: list) -> None:
    await app.topic(topic, key_serializer="raw", value_serializer="raw").send(key=key, value=value, headers=headers)


LAG_INTERVAL = 5.0
Registration = tuple[Callable[[object, Any], None], object, str]


class SideServer(mode.Service):
    """Runs beside the agents: /metrics, the gRPC server with health, the ready line.

    `on_ready` runs before the gRPC server starts (e.g. to catch up a read model);
    `on_stopped` after it has stopped (to close what `on_ready` opened).
    """

    def __init__(
        self,
        app: faust.App,
        service: str,
        settings: ServiceSettings,
        security: ServerSecurity,
        registrations: list[Registration],
        on_ready: Callable[[], Awaitable[None]] | None = None,
        on_stopped: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._app = app
        self._service = service
        self._settings = settings
        self._security = security
        self._registrations = registrations
        self._on_ready = on_ready
        self._on_stopped = on_stopped
        self.grpc: RunningServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        # The worker finishes starting (and so joins its group) only after this returns,
        # so serving waits in the background for the tables to be restored.
        self._serving = asyncio.create_task(self._serve_when_recovered(), name=f"{self._service}-serve")
        self._lag = asyncio.create_task(self._measure_lag(), name=f"{self._service}-lag")

    async def _serve_when_recovered(self) -> None:
        log = logs.configure(self._service, self._settings.log_level)
        try:
            await self._serve(log)
        except Exception as error:
            # Not serving is fatal: crash the worker so its supervisor sees a failed process.
            log.exception("cannot serve")
            await self.crash(error)

    async def _serve(self, log) -> None:
        metrics_port = serve_metrics(self._settings.grpc_host, self._settings.metrics_port)
        # Alive at once (liveness and start-up probes pass), ready only once the worker has
        # joined its group, restored its tables and caught up its read models, however long
        # that takes: a readiness probe never sends calls to a worker still recovering.
        self.grpc = await start_server(
            self._settings.grpc_host, self._settings.grpc_port, self._registrations, self._security, serving=False
        )
        waited = 0.0
        while not self._app.tables.recovery.completed.is_set():
            try:
                await asyncio.wait_for(self._app.tables.recovery.completed.wait(), READY_TIMEOUT)
            except asyncio.TimeoutError:
                waited += READY_TIMEOUT
                log.warning("tables still recovering; not ready yet", waited_seconds=waited)
        if self._on_ready:
            await self._on_ready()
        await self.grpc.set_serving()
        host = self._settings.grpc_host
        announce_ready(
            self._service, grpc=f"{host}:{self.grpc.port}", metrics=f"http://{host}:{metrics_port}/metrics"
        )

    async def _measure_lag(self) -> None:
        """Every few seconds: how far this worker's consumer is behind, per topic."""
        group = self._app.conf.id
        while True:
            await asyncio.sleep(LAG_INTERVAL)
            behind: dict[str, int] = {}
            try:
                assignment = self._app.consumer.assignment()
                # Standby and restored changelog partitions are not work this member owns.
                owned = [tp for tp in assignment if not tp.topic.endswith("-changelog")]
                metrics.ASSIGNED_PARTITIONS.labels(group).set(len(owned))
                for tp in assignment:
                    position = await self._app.consumer.position(tp)
                    highwater = self._app.consumer.highwater(tp)
                    if position is not None and highwater is not None:
                        behind[tp.topic] = behind.get(tp.topic, 0) + max(highwater - position, 0)
            except Exception:  # a rebalance in progress: measure again next time
                continue
            for topic, records in behind.items():
                metrics.CONSUMER_LAG.labels(group, topic).set(records)

    async def on_stop(self) -> None:
        for task in (self._serving, self._lag):
            if task and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.grpc:
            await self.grpc.stop(grace=5)
        if self._on_stopped:
            await self._on_stopped()


def run_worker(app: faust.App, side: SideServer, log_level: str) -> None:
    """Run the app's agents and `side` until SIGTERM/SIGINT, then stop all cleanly."""
    worker = faust.Worker(app, side, loglevel=log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
