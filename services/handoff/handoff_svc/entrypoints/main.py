"""Run the handoff service: read legs back from Kafka, serve gRPC, stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio

from handoff.v1 import handoff_service_pb2, handoff_service_pb2_grpc

from common import logs
from common.clock import WallClock
from common.grpcserver import start_server
from common.metrics import serve_metrics
from common.runtime import announce_ready, fail_start, wait_for_stop_signal
from common.settings import ServiceSettings, SettingsError, service_settings
from handoff_svc import metrics
from handoff_svc.adapters.legstore import LegFeed, LegStore
from handoff_svc.adapters.publisher import Publisher
from handoff_svc.entrypoints.grpc_api import HandoffApi

SERVICE_NAME = handoff_service_pb2.DESCRIPTOR.services_by_name["HandoffService"].full_name


async def serve(settings: ServiceSettings) -> None:
    log = logs.configure("handoff", settings.log_level)
    metrics_port = serve_metrics(settings.grpc_host, settings.metrics_port)
    store = LegStore()
    metrics.KNOWN_LEGS.set_function(lambda: len(store))
    publisher = Publisher(settings.kafka_bootstrap, settings.instance)
    feed = LegFeed(settings.kafka_bootstrap, store)
    await publisher.start()
    try:
        await feed.start()
    except Exception:
        await publisher.stop()
        raise
    api = HandoffApi(store, publisher, WallClock())
    server = await start_server(
        settings.grpc_host,
        settings.grpc_port,
        [(handoff_service_pb2_grpc.add_HandoffServiceServicer_to_server, api, SERVICE_NAME)],
    )
    log.info("serving", grpc_port=server.port, metrics_port=metrics_port, legs=len(store))
    announce_ready(
        "handoff",
        grpc=f"{settings.grpc_host}:{server.port}",
        metrics=f"http://{settings.grpc_host}:{metrics_port}/metrics",
    )
    signal_name = await wait_for_stop_signal()
    log.info("stopping", signal=signal_name)
    await server.stop(grace=5)
    await feed.stop()
    await publisher.stop()
    log.info("stopped")


def main() -> None:
    try:
        settings = service_settings("handoff")
    except SettingsError as error:
        fail_start(str(error))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
