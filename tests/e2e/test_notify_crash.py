"""Crash safety of notify on the stream engine: kill -9 at random moments (once onto an
empty data directory) while thousands of breaches are being delivered through two replicas
of the webhook gateway, and every breach reaches every receiver exactly once.

Breaches are written straight to sla.events.v1 (sla itself is not needed); two routes send
each to two receivers, each with a webhook, so the gateways make two deliveries per breach.
A notify killed after a gateway call and before the batch recording its outcome committed
calls again after its restart with the same delivery id: it goes to the same replica (the
one the id names), which answers from its journal without sending; that is what keeps the
receiver's count at one. A replica's journal knows only what that replica sent.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from handoff.v1 import sla_events_pb2, types_pb2

from common.codec import new_envelope, to_timestamp
from common.localkafka import LocalKafka, create_topics
from common.topics import SLA_EVENTS
from devstack.routing import write_routing
from devstack.stack import Stack
from tests.e2e.test_notify_helpers import WebhookReceiver, counter
from tests.support import crash_schedule, kill_9, supervised, write_evenly, write_policies

pytestmark = pytest.mark.e2e

BREACHES = 3_000
WRITE_SECONDS = 15.0
SETTLE_TIMEOUT_S = 120.0
HOOKS = ("billing", "billing-oncall")
REPLICAS = ("gateway-webhook", "gateway-webhook-2")
ROUTING = """
receivers:
  - name: ops
    channels: [{{type: log, stream: ops}}]
  - name: billing
    channels: [{{type: webhook, url: "{hook}/billing"}}]
  - name: billing-oncall
    channels: [{{type: webhook, url: "{hook}/billing-oncall"}}]
route:
  receiver: ops
  group_wait: 0s
  routes:
    - {{matchers: [department=billing], receiver: billing, continue: true}}
    - {{matchers: [department=billing], receiver: billing-oncall}}
delivery:
  call_timeout: 2s
  initial_backoff: 1s
  max_backoff: 2s
  jitter: 0.2
  max_attempts: 200
  max_elapsed: 10m
"""


def breaches(run: str, legs: list[str]) -> Iterator[tuple[bytes, bytes]]:
    """(key, SlaEvent) of one breach after another, each of a leg of its own (added to `legs`)."""
    for number in itertools.count():
        now = datetime.now(timezone.utc)
        handoff_id, customer_ref = f"crash-{run}-{number}", f"crash-{run}-c{number % 500:03d}"
        legs.append(handoff_id)
        yield customer_ref.encode(), sla_events_pb2.SlaEvent(
            envelope=new_envelope("test", now, now, event_id=str(uuid.uuid4())), handoff_id=handoff_id,
            case_id=f"CASE-{run}-{number}", customer_ref=customer_ref, department="billing",
            priority=types_pb2.PRIORITY_NORMAL, category="refund", clock=types_pb2.CLOCK_KIND_ACK, clock_sequence=1,
            breached=sla_events_pb2.ClockBreached(deadline=to_timestamp(now)),
        ).SerializeToString()


def test_kill9_of_notify_delivers_every_breach_exactly_once_per_receiver(tmp_path: Path) -> None:
    rng = crash_schedule()
    receiver = WebhookReceiver().start()
    routing = write_routing(tmp_path / "routing.yaml",
                            ROUTING.format(hook=f"http://127.0.0.1:{receiver.port}/hooks"))
    lock = threading.Lock()
    with LocalKafka(tmp_path / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(tmp_path, write_policies(tmp_path), bootstrap=kafka.bootstrap, routing_file=routing)
        try:
            stack.start_gateway("webhook")
            stack.start_gateway("webhook", replica=2)
            stack.start_service("notify")
            # given thousands of breaches being written, each for two receivers
            legs: list[str] = []
            writer = threading.Thread(target=write_evenly, args=(
                kafka.bootstrap, SLA_EVENTS.name, breaches(uuid.uuid4().hex[:6], legs), BREACHES, WRITE_SECONDS))
            writer.start()
            # when notify is killed -9 three times while it delivers (the second time its data
            # directory is wiped, as a pod rescheduled elsewhere), and restarted as a supervisor would
            with supervised(stack, "notify", lock):
                started = time.monotonic()
                for number, at in enumerate(sorted(rng.uniform(3, WRITE_SECONDS + 10) for _ in range(3))):
                    time.sleep(max(0.0, started + at - time.monotonic()))
                    with lock:
                        kill_9(stack, "notify", tmp_path / "data" / "notify-1" if number == 1 else None)
                writer.join()

                # then every breach reaches each receiver's webhook, and once only
                wanted = {(leg, hook) for leg in legs for hook in HOOKS}

                def arrived() -> Counter:
                    return Counter((r["handoff_id"], r["hook"]) for r in list(receiver.received))

                deadline = time.monotonic() + SETTLE_TIMEOUT_S
                while time.monotonic() < deadline and set(arrived()) < wanted:
                    time.sleep(0.5)
                time.sleep(3)  # anything sent twice would come now
                sent = [counter(stack, name, "handoff_gateway_deliveries", outcome="delivered")
                        for name in REPLICAS]
                duplicates = sum(counter(stack, name, "handoff_gateway_deliveries", outcome="duplicate")
                                 for name in REPLICAS)
        finally:
            with lock:
                stack.stop()
            receiver.stop()

    counts = arrived()
    assert len(legs) == BREACHES
    missing = wanted - set(counts)
    assert not missing, f"{len(missing)} of {len(wanted)} deliveries missing, e.g. {sorted(missing)[:3]}"
    assert set(counts) == wanted
    twice = {pair: n for pair, n in counts.items() if n > 1}
    assert not twice, f"{len(twice)} delivered more than once, e.g. {list(twice.items())[:3]}"
    assert receiver.repeated_deliveries() == {} and receiver.bad_signatures == 0
    # and both replicas took their share
    assert all(count > len(wanted) / 4 for count in sent), sent
    print(f"{len(wanted)} deliveries, each once, {sent} sent by each replica; "
          f"calls the gateways answered from their journals: {duplicates:.0f}")
