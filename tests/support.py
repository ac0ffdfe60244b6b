"""Helpers for tests that run against the real broker and real service processes."""

from __future__ import annotations

import itertools
import os
import queue
import random
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from confluent_kafka import Producer
from handoff.v1 import notification_service_pb2 as notify_api
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from kafka import KafkaConsumer, TopicPartition

from common.codec import MalformedRecord, decode
from common.grpcclient import channel
from common.localkafka import LocalKafka, create_topics
from common.topics import TopicSpec
from devstack.routing import BREACHES_TO_DEPARTMENTS, write_routing
from devstack.stack import ADMIN_TOKEN, Stack

def around_the_clock(ack: str, resolve: str) -> str:
    """An SLA policy file: every leg on a 24x7 calendar with these targets."""
    return f"""
calendars:
  always: {{hours: 24x7}}
defaults: {{calendar: always}}
policies:
  - {{department: "*", priority: "*", ack: {ack}, resolve: {resolve}}}
"""


FAST_POLICIES = around_the_clock("3s", "1m") + """  - {department: "*", priority: URGENT, ack: 2s, resolve: 30s}
"""


def admin_channel(address: str) -> grpc.Channel:
    """A channel whose calls carry the development admin token."""
    return channel(address, ADMIN_TOKEN)


def write_policies(directory: Path, text: str = FAST_POLICIES) -> Path:
    path = directory / "sla-policies.yaml"
    path.write_text(text)
    return path


# Tests give each scenario departments of its own (unique("billing")), yet handoff accepts
# only the departments of its file: the suite's file lists the real four and, for each, a
# pool of such names handed out in turn.
DEPARTMENT_PREFIXES = ("billing", "field-service", "accounts", "claims")
_POOL_SIZE = 100
_POOL_BASE = uuid.uuid4().int % 2**31
_drawn = {prefix: itertools.count() for prefix in DEPARTMENT_PREFIXES}


def _pooled(prefix: str, index: int) -> str:
    return f"{prefix}-{_POOL_BASE + index:08x}"


# Receivers of the notify tests' routing tree that are departments of their own.
FIXED_DEPARTMENTS = ("field", "gone")


def write_departments(path: Path) -> Path:
    """The suite's departments file: the real departments, the notify tests' own, and every
    name unique() hands out for the real ones."""
    names = [*DEPARTMENT_PREFIXES, *FIXED_DEPARTMENTS,
             *(_pooled(p, i) for p in DEPARTMENT_PREFIXES for i in range(_POOL_SIZE))]
    entries = "".join(f"  - {{name: {name}, display_name: {name}, cost_centre: CC-TEST}}\n" for name in names)
    path.write_text("departments:\n" + entries)
    return path


def native_threads() -> set[str]:
    """This process's threads as the kernel lists them: librdkafka's as well as Python's."""
    return set(os.listdir(f"/proc/{os.getpid()}/task"))


def threads_left(before: set[str], within_s: float = 5.0) -> set[str]:
    """The threads not in `before` that are still there after up to `within_s`: a thread whose
    work is done (a closed client's, a joined Python thread) leaves the kernel's list a moment
    after the call that waited for it returns."""
    deadline = time.monotonic() + within_s
    while native_threads() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    return native_threads() - before


def unique(prefix: str) -> str:
    """A name no other test uses, valid as a department, case id or customer_ref (a department of
    the suite's departments file when `prefix` is a department)."""
    if prefix in _drawn:
        index = next(_drawn[prefix])
        if index >= _POOL_SIZE:
            raise RuntimeError(f"the suite's departments file has only {_POOL_SIZE} {prefix} departments")
        return _pooled(prefix, index)
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pseudonym() -> str:
    """A customer_ref no other test uses, shaped as the services' pseudonyms (c- and 32 hex digits)."""
    return "c-" + uuid.uuid4().hex


@contextmanager
def running_stack(workdir: Path, policies: str = FAST_POLICIES, routing: str = BREACHES_TO_DEPARTMENTS,
                  gateways: bool = False, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A broker of its own and the three services (and the gateways if asked), with `env` added to
    the services' environment; everything stopped afterwards."""
    with LocalKafka(workdir / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(workdir, write_policies(workdir, policies), bootstrap=kafka.bootstrap, gateways=gateways,
                      routing_file=write_routing(workdir / "routing.yaml", routing), env=env)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


def read_records(bootstrap: str, topic: str, until: Callable[[list], bool], timeout: float = 30,
                 **client: object) -> list:
    """Records of `topic` from the beginning, read until `until(records)` holds or time runs out;
    `client` adds kafka-python options (security)."""
    # read_committed: what a stream engine's aborted transaction wrote is not there to read.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500,
                             isolation_level="read_committed", **client)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(records):
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def read_events(bootstrap: str, topic: TopicSpec, match: Callable[[object], bool],
                until: Callable[[list], bool], timeout: float = 30, **client: object) -> list:
    """Decoded events of `topic` that `match`, read until `until(events)` holds or time runs out."""
    found: list = []

    def readable(records: list) -> Iterator[object]:
        for record in records:
            try:
                yield decode(topic, record.value)
            except MalformedRecord:
                continue

    def enough(records: list) -> bool:
        found[:] = [event for event in readable(records) if match(event)]
        return until(found)

    read_records(bootstrap, topic.name, enough, timeout, **client)
    return found


def wait_for(condition: Callable[[], bool], timeout: float = 30, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    """The RpcError a call raises; fails the test when it succeeds."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded but an error was expected")


class Subscription:
    """A Subscribe stream read on a thread; responses land in a queue."""

    def __init__(self, address: str, department: str, cursor: str = "") -> None:
        self._channel = admin_channel(address)
        stub = notify_grpc.NotificationServiceStub(self._channel)
        self._stream = stub.Subscribe(notify_api.SubscribeRequest(department=department, cursor=cursor))
        self.received: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        try:
            for response in self._stream:
                self.received.put(response)
        except grpc.RpcError:
            pass

    def next(self, timeout: float) -> notify_api.SubscribeResponse:
        return self.received.get(timeout=timeout)

    def until(self, found, timeout: float) -> list:
        """Responses read until `found(responses)` holds or `timeout` seconds pass."""
        items, deadline = [], time.monotonic() + timeout
        while not found(items) and (left := deadline - time.monotonic()) > 0:
            try:
                items.append(self.received.get(timeout=left))
            except queue.Empty:
                break
        return items

    def drain(self, seconds: float) -> list:
        """Everything that arrives within `seconds`."""
        return self.until(lambda _items: False, seconds)

    def close(self) -> None:
        self._stream.cancel()
        self._channel.close()


def write_evenly(bootstrap: str, topic: str, records: Iterator[tuple[bytes, bytes]], count: int,
                 seconds: float) -> None:
    """Write `count` (key, value) records of `records` to `topic`, spread evenly over `seconds`,
    keyed with Kafka's murmur2 like the services, and wait until the broker has them all."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    started = time.monotonic()
    for number, (key, value) in enumerate(itertools.islice(records, count)):
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
        pause = started + seconds * (number + 1) / count - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    assert producer.flush(60) == 0


@contextmanager
def supervised(stack: Stack, service: str, lock: threading.Lock) -> Iterator[None]:
    """While inside, `service` is started again whenever it exits by itself, as a supervisor
    (Kubernetes) would; hold `lock` to kill and restart it by hand meanwhile."""
    watching = threading.Event()
    watching.set()

    def supervise() -> None:
        while watching.is_set():
            with lock:
                if watching.is_set() and not stack.services[service].is_running():
                    stack.start_service(service)
            time.sleep(0.5)

    thread = threading.Thread(target=supervise, daemon=True)
    thread.start()
    try:
        yield
    finally:
        watching.clear()
        thread.join(10)


def crash_schedule() -> random.Random:
    """The randomness of a crash test, its seed printed so that a failing schedule can be rerun."""
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(1_000_000))
    print(f"crash schedule seed {seed} (CRASH_SEED={seed} reruns it)")
    return random.Random(seed)


def kill_9(stack: Stack, service: str, wipe: Path | None = None) -> None:
    """SIGKILL `service` by its pid, wipe `wipe` (its data directory, as a pod rescheduled
    elsewhere) if given, and start it again."""
    process = stack.services[service]
    os.kill(process.pid, signal.SIGKILL)
    process.process.wait()
    if wipe is not None:
        shutil.rmtree(wipe, ignore_errors=True)
    stack.start_service(service)


# What a clean stop of a supervisor never prints.
UNCLEAN = ("Traceback", "Task was destroyed", "Exception ignored", "Event loop is closed")


def children(pid: int) -> set[int]:
    """Every live descendant of `pid` (Linux)."""
    found: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            direct = {int(child) for child in (task / "children").read_text().split()}
        except FileNotFoundError:
            continue
        for child in direct:
            found |= {child, *children(child)}
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
