"""A stopping engine closes both of its Kafka clients, so their librdkafka threads and
connections end with it, also when the broker is gone (a killed broker leaves the producer
unable to deliver; closing it must not wait for that)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from common.clock import WallClock
from common.localkafka import LocalKafka, create_topics
from common.streams.engine import PRODUCER_CLOSE_S, EngineSettings, start_engine
from common.topics import HANDOFF_COMMANDS
from handoff_svc.entrypoints.app import build
from tests.support import native_threads, threads_left

# The consumer's close gives up on a broker that is gone after its own timeouts; the
# producer's is bounded by PRODUCER_CLOSE_S.
STOP_LIMIT_S = 30 + PRODUCER_CLOSE_S


@pytest.mark.parametrize("broker", ["running", "killed"])
def test_a_stopped_engine_leaves_no_client_thread_behind(tmp_path: Path, broker: str) -> None:
    with LocalKafka(tmp_path / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        before = native_threads()
        # given an owner engine that has processed a command (so both clients have worked)
        name = f"engine-close-{uuid.uuid4().hex[:8]}"
        engine, _ = build(EngineSettings(bootstrap=kafka.bootstrap, group=name, instance=f"{name}-1"), WallClock())
        thread = start_engine(engine, name)
        assert engine.ready.wait(60)
        writer = Producer({"bootstrap.servers": kafka.bootstrap})
        writer.produce(HANDOFF_COMMANDS.name, b"not a command", b"customer-1")
        assert writer.flush(10) == 0
        del writer  # the test's own producer closes with its last reference
        while_running = native_threads()
        assert len(while_running - before) >= 2, "the engine's clients run threads of their own"

        # when the broker is killed (or not) and the engine is stopped
        if broker == "killed":
            os.kill(kafka.pid, signal.SIGKILL)
        started = time.monotonic()
        engine.stop()
        thread.join(STOP_LIMIT_S)

        # then the engine ended in time, and no thread of its clients is left
        assert not thread.is_alive(), f"the engine did not stop within {STOP_LIMIT_S} s"
        assert time.monotonic() - started < STOP_LIMIT_S
        assert threads_left(before) == set()
        if broker == "running":
            assert engine.failure is None
