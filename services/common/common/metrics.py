"""Metrics every process shares: the /metrics endpoint, gRPC request metrics, DLQ records.

Service-specific metrics live in each service's own `metrics` module.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

GRPC_REQUESTS = Counter(
    "handoff_grpc_requests_total",
    "gRPC requests handled, by method and status code.",
    ["method", "code"],
)
GRPC_LATENCY = Histogram(
    "handoff_grpc_request_duration_seconds",
    "Time to answer a unary gRPC request, by method.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DLQ_RECORDS = Counter(
    "handoff_dlq_records_total",
    "Records sent to a dead-letter topic, by source topic.",
    ["topic"],
)


READ_MODEL_FAILURES = Counter(
    "handoff_read_model_failures_total",
    "Records a read model failed to apply for a reason no data error explains (a bug) and moved past, by read model and topic.",
    ["read_model", "topic"],
)
CONSUMER_LAG = Gauge(
    "handoff_consumer_lag_records",
    "Records not yet consumed by this worker, summed over its assigned partitions, by consumer group and topic.",
    ["group", "topic"],
)
ASSIGNED_PARTITIONS = Gauge(
    "handoff_assigned_partitions",
    "Partitions this worker's consumer group member owns (0: an idle worker beyond the partition count).",
    ["group"],
)


@functools.lru_cache(maxsize=16_384)
def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once: labels are bounded, and this runs per event."""
    return metric.labels(*labels)


GC_PAUSES = Histogram(
    "handoff_gc_pause_seconds",
    "Time the Python garbage collector held the process (every thread waits), by generation.",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
_gc_started: list[float] = []


def _time_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started.pop())


def time_gc() -> None:
    """Time every garbage collection of this process into GC_PAUSES (once per process)."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)


def serve_metrics(host: str, port: int) -> int:
    """Start the /metrics HTTP endpoint (with GC pause timing); returns the port it listens on."""
    # No `*_created` series: they double the series count and no rule or dashboard reads them.
    disable_created_metrics()
    time_gc()
    server, _thread = start_http_server(port, addr=host)
    return server.server_address[1]


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary call by method and status code."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception:
                code = "INTERNAL"
                raise
            finally:
                GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
                GRPC_REQUESTS.labels(method, code).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


# The stream engine (common.streams): batches, their transactions, restores after an assignment.
ENGINE_BATCH_RECORDS = Histogram(
    "handoff_engine_batch_records",
    "Records in one batch of the stream engine.",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
ENGINE_COMMIT_SECONDS = Histogram(
    "handoff_engine_commit_seconds",
    "Time to commit one batch's transaction (outputs, changelog writes and input offsets).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ENGINE_ABORTS = Counter(
    "handoff_engine_aborted_batches_total",
    "Batches aborted and run again (a broker failure or a record whose handling failed), by consumer group.",
    ["group"],
)
MISPLACED_RECORDS = Counter(
    "handoff_misplaced_records_total",
    "Records found on another partition than their key's (a producer with another partitioner) and forwarded, by topic.",
    ["topic"],
)
ENGINE_TIMERS = Gauge(
    "handoff_engine_timers",
    "Entries in the stream engine's timer heaps (keys with something due; stale ones until they fall due), by consumer group.",
    ["group"],
)
ENGINE_RESTORE_SECONDS = Gauge(
    "handoff_engine_restore_seconds",
    "How long the last assignment took to restore its state from the changelogs, by consumer group.",
    ["group"],
)
