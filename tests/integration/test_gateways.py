"""The channel gateways as real processes on loopback, delivering to real receivers.

Webhooks go to an aiohttp server in this test that checks each signature with the standard
library; e-mail goes to a local aiosmtpd server; the log gateway writes a file. Every
gateway process is stopped by its pid, also when a test fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoff.v1 import channel_gateway_pb2, channel_gateway_pb2_grpc, notifications_pb2, types_pb2

from common.grpcclient import channel
from devstack.gateways import start_gateway
from devstack.processes import ServiceProcess

pytestmark = pytest.mark.integration

SERVICE_TOKEN, ADMIN_TOKEN, BILLING_TOKEN = "gw-test-service", "gw-test-admin", "gw-test-billing"
TOKENS = f"""
tokens:
  - {{token: {SERVICE_TOKEN}, name: notify, role: service}}
  - {{token: {ADMIN_TOKEN}, name: ops-admin, role: admin}}
  - {{token: {BILLING_TOKEN}, name: billing-team, role: department, department: billing}}
"""
BILLING_SECRET, CLAIMS_SECRET = "billing-receiver-secret-0123", "claims-receiver-secret-4567"
CALL_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def breach(notification_id: str = "n-1") -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        notification_id=notification_id,
        key=f"breach:h-1:resolve:{notification_id}",
        kind=notifications_pb2.NOTIFICATION_KIND_BREACH,
        receiver="billing",
        department="billing",
        priority=types_pb2.PRIORITY_URGENT,
        handoff_id="h-1",
        case_id="case-1",
        clock=types_pb2.CLOCK_KIND_RESOLVE,
        title="resolve SLA breached: URGENT handoff h-1",
        body="Case case-1 held by billing passed its resolve deadline.",
        labels={"priority": "urgent"},
    )


def request(delivery_id: str, channel_name: str, target: str) -> channel_gateway_pb2.DeliverRequest:
    return channel_gateway_pb2.DeliverRequest(
        delivery_id=delivery_id, channel=channel_name, target=target, notification=breach(f"n-{delivery_id}")
    )


@contextmanager
def gateway_stub(address: str, token: str | None = SERVICE_TOKEN) -> Iterator[channel_gateway_pb2_grpc.ChannelGatewayStub]:
    chan = channel(address, token) if token else grpc.insecure_channel(address)
    try:
        yield channel_gateway_pb2_grpc.ChannelGatewayStub(chan)
    finally:
        chan.close()


def deliver(address: str, message: channel_gateway_pb2.DeliverRequest, token: str | None = SERVICE_TOKEN,
            timeout: float = CALL_TIMEOUT) -> channel_gateway_pb2.DeliverResponse:
    with gateway_stub(address, token) as stub:
        return stub.Deliver(message, timeout=timeout)


def refusal(address: str, message: channel_gateway_pb2.DeliverRequest, **kwargs) -> grpc.RpcError:
    try:
        deliver(address, message, **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError("the delivery succeeded but a refusal was expected")


def counter(process: ServiceProcess, outcome: str) -> float:
    """handoff_gateway_deliveries_total for `outcome`, read from the gateway's /metrics."""
    with urllib.request.urlopen(process.endpoints["metrics"], timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("handoff_gateway_deliveries_total{") and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no handoff_gateway_deliveries_total series for outcome {outcome}")


# --- receivers ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed_correctly: bool


class WebhookReceiver:
    """An aiohttp server on its own loop and thread: POST /hooks/<team>/<behaviour>."""

    SECRETS = {"billing": BILLING_SECRET, "claims": CLAIMS_SECRET}

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-receiver", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies_for(self, delivery_id: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("X-Handoff-Delivery") == delivery_id]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.SECRETS[request.match_info["team"]]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, request.headers.get("X-Handoff-Signature", ""))
        self.received.append(Received(request.path, dict(request.headers), body, signed))
        behaviour = request.match_info["behaviour"]
        if behaviour == "slow":
            await asyncio.sleep(5)
        if behaviour == "gone":
            return web.Response(status=410, text="this hook was removed")
        if behaviour == "broken":
            return web.Response(status=503, text="down for maintenance")
        if not signed:
            return web.Response(status=401, text="bad signature")
        return web.Response(status=202, headers={"X-Request-Id": f"req-{len(self.received)}"})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{team}/{behaviour}", self._hook)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class Inbox:
    """An aiosmtpd handler: `gone@` is refused for good (550), `busy@` for now (451); `slow@`
    takes a while to accept, so the sessions open at once can be counted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.slow_now = 0
        self.slow_at_once = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(address.startswith("slow@") for address in envelope.rcpt_tos):
            self.slow_now += 1
            self.slow_at_once = max(self.slow_at_once, self.slow_now)
            await asyncio.sleep(0.3)
            self.slow_now -= 1
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 accepted"

    def with_message_id(self, message_id: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["Message-ID"] == message_id]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateways")


@pytest.fixture(scope="module")
def tokens_file(workdir: Path) -> Path:
    path = workdir / "tokens.yaml"
    path.write_text(TOKENS)
    return path


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@contextmanager
def running_gateway(kind: str, workdir: Path, env: dict[str, str]) -> Iterator[tuple[ServiceProcess, str]]:
    process, address = start_gateway(kind, workdir, env)
    try:
        yield process, address
    finally:
        process.stop()


@pytest.fixture(scope="module")
def webhook_gateway(workdir, tokens_file, receiver) -> Iterator[tuple[ServiceProcess, str]]:
    secrets = {receiver.url("/hooks/claims/"): CLAIMS_SECRET, "*": BILLING_SECRET}
    env = {"AUTH_TOKENS_FILE": str(tokens_file), "WEBHOOK_SECRETS": json.dumps(secrets), "WEBHOOK_TIMEOUT": "10"}
    with running_gateway("webhook", workdir, env) as running:
        yield running


@pytest.fixture(scope="module")
def email_gateway(workdir, tokens_file, inbox) -> Iterator[tuple[ServiceProcess, str]]:
    env = {
        "AUTH_TOKENS_FILE": str(tokens_file),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(inbox[1]),
        "SMTP_FROM": "handoff@cc.example",
        "SMTP_STARTTLS": "false",
    }
    with running_gateway("email", workdir, env) as running:
        yield running


@pytest.fixture(scope="module")
def log_gateway(workdir, tokens_file) -> Iterator[tuple[ServiceProcess, str]]:
    env = {"AUTH_TOKENS_FILE": str(tokens_file), "LOG_FILE": str(workdir / "log" / "deliveries.jsonl")}
    with running_gateway("log", workdir, env) as running:
        yield running


# --- webhook --------------------------------------------------------------------------


def test_a_webhook_is_delivered_once_signed_with_the_receivers_secret(webhook_gateway, receiver):
    _process, address = webhook_gateway

    response = deliver(address, request("wh-1", "webhook", receiver.url("/hooks/billing/ok")))

    [received] = receiver.bodies_for("wh-1")
    assert received.signed_correctly
    assert response.delivery_id == "wh-1"
    assert response.receipt == f"202 req-{receiver.received.index(received) + 1}"
    document = json.loads(received.body)
    assert document["delivery_id"] == "wh-1"
    assert document["sent_at"] == received.headers["X-Handoff-Timestamp"]
    assert document["notification"]["notification_id"] == "n-wh-1"
    assert (document["notification"]["kind"], document["notification"]["priority"]) == ("breach", "URGENT")
    assert document["notification"]["labels"] == {"priority": "urgent"}
    assert received.headers["Content-Type"] == "application/json; charset=utf-8"


def test_the_secret_is_chosen_by_the_longest_matching_target_prefix(webhook_gateway, receiver):
    _process, address = webhook_gateway

    deliver(address, request("wh-claims", "webhook", receiver.url("/hooks/claims/ok")))

    [received] = receiver.bodies_for("wh-claims")
    assert received.signed_correctly  # checked with CLAIMS_SECRET, not the catch-all


def test_a_repeated_delivery_id_returns_the_first_receipt_and_posts_nothing_twice(webhook_gateway, receiver):
    _process, address = webhook_gateway
    message = request("wh-2", "webhook", receiver.url("/hooks/billing/ok"))

    first = deliver(address, message)
    again = deliver(address, message)

    assert again == first
    assert len(receiver.bodies_for("wh-2")) == 1


def test_concurrent_repeats_of_one_delivery_post_it_once(webhook_gateway, receiver):
    _process, address = webhook_gateway
    message = request("wh-3", "webhook", receiver.url("/hooks/billing/ok"))
    answers: list[channel_gateway_pb2.DeliverResponse] = []
    callers = [threading.Thread(target=lambda: answers.append(deliver(address, message))) for _ in range(4)]

    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(CALL_TIMEOUT)

    assert len(answers) == 4 and len({a.receipt for a in answers}) == 1
    assert len(receiver.bodies_for("wh-3")) == 1


def test_an_unreachable_receiver_is_unavailable(webhook_gateway):
    _process, address = webhook_gateway

    error = refusal(address, request("wh-down", "webhook", f"http://127.0.0.1:{free_port()}/hooks/billing/ok"))

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "cannot connect" in error.details()


def test_a_receiver_answering_5xx_is_unavailable_and_a_retry_sends_again(webhook_gateway, receiver):
    _process, address = webhook_gateway
    message = request("wh-503", "webhook", receiver.url("/hooks/billing/broken"))

    first = refusal(address, message)
    second = refusal(address, message)

    assert first.code() is second.code() is grpc.StatusCode.UNAVAILABLE
    assert "HTTP 503" in first.details()
    assert len(receiver.bodies_for("wh-503")) == 2  # a failure is not remembered as delivered


def test_a_receiver_answering_4xx_fails_the_precondition_naming_the_status(webhook_gateway, receiver):
    _process, address = webhook_gateway

    error = refusal(address, request("wh-410", "webhook", receiver.url("/hooks/billing/gone")))

    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "HTTP 410" in error.details()


def test_the_calls_deadline_bounds_the_webhook_request(webhook_gateway, receiver):
    process, address = webhook_gateway
    unavailable_before = counter(process, "unavailable")
    started = time.monotonic()

    error = refusal(address, request("wh-slow", "webhook", receiver.url("/hooks/billing/slow")), timeout=1.0)

    # The gateway gives up just before the caller's deadline, not after WEBHOOK_TIMEOUT
    # (10 s) or the receiver's 5 s answer; the caller hears why, or (when its answer is
    # late) that the deadline passed.
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 1.5
    deadline = started + 3.0
    while counter(process, "unavailable") == unavailable_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counter(process, "unavailable") == unavailable_before + 1
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"delivery_id": ""}, "delivery_id"),
        ({"channel": "email"}, "channel"),
        ({"target": ""}, "target"),
        ({"target": "ftp://127.0.0.1/hooks"}, "target"),
        ({"notification": None}, "notification"),
    ],
)
def test_a_bad_request_is_invalid_naming_the_field(webhook_gateway, changes, field):
    _process, address = webhook_gateway
    fields = {"delivery_id": "wh-bad", "channel": "webhook", "target": "http://127.0.0.1:1/x", "notification": breach()}
    fields.update(changes)

    error = refusal(address, channel_gateway_pb2.DeliverRequest(**{k: v for k, v in fields.items() if v is not None}))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: ")


def test_a_call_without_a_token_is_unauthenticated(webhook_gateway, receiver):
    _process, address = webhook_gateway

    error = refusal(address, request("wh-anon", "webhook", receiver.url("/hooks/billing/ok")), token=None)

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert receiver.bodies_for("wh-anon") == []


def test_a_department_token_is_denied_and_an_admin_token_may_deliver(webhook_gateway, receiver):
    _process, address = webhook_gateway
    message = request("wh-roles", "webhook", receiver.url("/hooks/billing/ok"))

    error = refusal(address, message, token=BILLING_TOKEN)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert receiver.bodies_for("wh-roles") == []

    assert deliver(address, message, token=ADMIN_TOKEN).receipt.startswith("202 ")


def test_the_gateway_reports_health_and_serves_its_metrics(webhook_gateway):
    process, address = webhook_gateway

    with grpc.insecure_channel(address) as chan:
        status = health_pb2_grpc.HealthStub(chan).Check(
            health_pb2.HealthCheckRequest(service="handoff.v1.ChannelGateway"), timeout=5
        ).status
    with urllib.request.urlopen(process.endpoints["metrics"], timeout=5) as response:
        text = response.read().decode()

    assert status == health_pb2.HealthCheckResponse.SERVING
    assert 'handoff_gateway_deliveries_total{channel="webhook",outcome="delivered"}' in text
    assert 'handoff_gateway_delivery_duration_seconds_count{channel="webhook"}' in text
    assert 'handoff_grpc_requests_total{code="OK",method="Deliver"}' in text


# --- batches --------------------------------------------------------------------------


def deliver_batch(address: str, messages: list[channel_gateway_pb2.DeliverRequest],
                  token: str | None = SERVICE_TOKEN) -> list[channel_gateway_pb2.DeliverResult]:
    with gateway_stub(address, token) as stub:
        return list(stub.DeliverBatch(channel_gateway_pb2.DeliverBatchRequest(deliveries=messages),
                                      timeout=CALL_TIMEOUT).results)


def test_a_batch_answers_each_delivery_as_deliver_would_and_sends_a_repeated_id_once(webhook_gateway, receiver):
    _process, address = webhook_gateway
    ok = request("wh-b1", "webhook", receiver.url("/hooks/billing/ok"))
    no_target = request("wh-b2", "webhook", "")
    gone = request("wh-b3", "webhook", receiver.url("/hooks/billing/gone"))
    later = request("wh-b4", "webhook", receiver.url("/hooks/billing/ok"))

    results = deliver_batch(address, [ok, ok, no_target, gone, later])

    assert [r.delivery_id for r in results] == ["wh-b1", "wh-b1", "wh-b2", "wh-b3", "wh-b4"]
    assert [grpc.StatusCode.OK.value[0] == r.code for r in results] == [True, True, False, False, True]
    assert results[0].receipt == results[1].receipt and results[0].receipt.startswith("202 ")
    assert results[2].code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "target" in results[2].message
    assert results[3].code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "HTTP 410" in results[3].message
    assert [len(receiver.bodies_for(i)) for i in ("wh-b1", "wh-b2", "wh-b3", "wh-b4")] == [1, 0, 1, 1]
    # a later Deliver of a batched id is answered from memory
    assert deliver(address, ok).receipt == results[0].receipt and len(receiver.bodies_for("wh-b1")) == 1


def test_a_batch_over_the_limit_is_invalid_and_a_department_may_not_send_one(webhook_gateway, receiver):
    _process, address = webhook_gateway
    url = receiver.url("/hooks/billing/ok")

    with pytest.raises(grpc.RpcError) as too_many:
        deliver_batch(address, [request(f"wh-many-{n}", "webhook", url) for n in range(1001)])
    with pytest.raises(grpc.RpcError) as denied:
        deliver_batch(address, [request("wh-b-dept", "webhook", url)], token=BILLING_TOKEN)

    assert too_many.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in too_many.value.details()
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert receiver.bodies_for("wh-many-0") == [] and receiver.bodies_for("wh-b-dept") == []


# --- e-mail -------------------------------------------------------------------------


def test_an_email_is_delivered_once_with_the_message_id_as_receipt(email_gateway, inbox):
    _process, address = email_gateway
    handler, _port = inbox
    message = request("em-1", "email", "Billing Lead <lead@example.org>, duty@example.org")

    response = deliver(address, message)
    again = deliver(address, message)

    [mail] = handler.with_message_id(response.receipt)
    assert again.receipt == response.receipt
    assert mail["Subject"] == "[BREACH] URGENT billing: resolve SLA breached: URGENT handoff h-1"
    assert mail["To"] == "Billing Lead <lead@example.org>, duty@example.org"
    assert mail["X-Handoff-Delivery"] == "em-1"
    assert "Case case-1 held by billing passed its resolve deadline." in mail.get_content()
    assert handler.envelopes[handler.messages.index(mail)] == (
        "handoff@cc.example", ["lead@example.org", "duty@example.org"]
    )


def test_a_permanent_smtp_refusal_fails_the_precondition(email_gateway):
    _process, address = email_gateway

    error = refusal(address, request("em-gone", "email", "gone@example.org"))

    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "550" in error.details()


def test_a_temporary_smtp_refusal_is_unavailable(email_gateway):
    _process, address = email_gateway

    error = refusal(address, request("em-busy", "email", "busy@example.org"))

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "451" in error.details()


def test_a_bad_address_list_is_invalid_naming_the_target(email_gateway):
    _process, address = email_gateway

    error = refusal(address, request("em-bad", "email", "lead@example.org, not an address"))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("target: ")


def test_the_messages_of_a_batch_reach_the_relay_at_most_smtp_connections_at_once(workdir, tokens_file, inbox):
    handler, port = inbox
    env = {"AUTH_TOKENS_FILE": str(tokens_file), "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
           "SMTP_FROM": "handoff@cc.example", "SMTP_STARTTLS": "false", "SMTP_CONNECTIONS": "2"}
    with running_gateway("email", workdir / "two-connections", env) as (_process, address):
        results = deliver_batch(address, [request(f"em-slow-{n}", "email", "slow@example.org") for n in range(6)])

    assert [r.code for r in results] == [grpc.StatusCode.OK.value[0]] * 6
    assert len({r.receipt for r in results}) == 6
    assert handler.slow_at_once == 2


def test_an_unreachable_smtp_relay_is_unavailable(workdir, tokens_file):
    env = {
        "AUTH_TOKENS_FILE": str(tokens_file),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "SMTP_FROM": "handoff@cc.example",
        "INSTANCE": "gateway-email-down",
    }
    with running_gateway("email", workdir / "relay-down", env) as (_process, address):
        error = refusal(address, request("em-down", "email", "lead@example.org"))

    assert error.code() is grpc.StatusCode.UNAVAILABLE


# --- log ------------------------------------------------------------------------------


def test_the_log_gateway_numbers_lines_and_writes_a_repeat_once(log_gateway, workdir):
    _process, address = log_gateway
    first = request("log-1", "log", "ops")

    receipts = [deliver(address, first).receipt, deliver(address, request("log-2", "log", "ops")).receipt]
    repeat = deliver(address, first).receipt

    lines = [json.loads(line) for line in (workdir / "log" / "deliveries.jsonl").read_text().splitlines()]
    assert [(line["seq"], line["delivery_id"]) for line in lines] == [(1, "log-1"), (2, "log-2")]
    assert receipts == ["1", "2"] and repeat == "1"
    assert lines[0]["notification"]["title"] == "resolve SLA breached: URGENT handoff h-1"


def test_a_log_batch_is_numbered_in_its_order_and_a_repeat_within_it_written_once(log_gateway, workdir):
    process, address = log_gateway
    batch = [request(f"log-batch-{n}", "log", "ops") for n in range(5)]
    already = len((workdir / "log" / "deliveries.jsonl").read_text().splitlines()) \
        if (workdir / "log" / "deliveries.jsonl").exists() else 0

    results = deliver_batch(address, [*batch[:3], batch[1], *batch[3:]])
    again = deliver_batch(address, batch)

    lines = [json.loads(line) for line in (workdir / "log" / "deliveries.jsonl").read_text().splitlines()][already:]
    assert [line["delivery_id"] for line in lines] == [f"log-batch-{n}" for n in range(5)]
    assert [line["seq"] for line in lines] == list(range(already + 1, already + 6))
    assert [r.receipt for r in results] == [str(already + n) for n in (1, 2, 3, 2, 4, 5)]
    assert [r.receipt for r in again] == [str(already + n) for n in range(1, 6)]
    # The gateway's own log names each delivery with its receipt, one line per send.
    sends = [entry for entry in _json_lines(process.log_path) if entry.get("event") == "delivered"
             and any(key.startswith("log-batch-") for key in entry.get("receipts", {}))]
    assert [entry["receipts"] for entry in sends] == [{f"log-batch-{n}": str(already + n + 1) for n in range(5)}]


def _json_lines(path: Path) -> list[dict]:
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # not a log entry (the ready line)
    return entries


# --- the process ----------------------------------------------------------------------


def read_ready(process: subprocess.Popen, timeout: float = 30) -> dict[str, str]:
    """The ready line's endpoints; fails when the process exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.2)
        if readable:
            line = process.stdout.readline()
            if line.startswith('{"ready"'):
                return json.loads(line)
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited with {process.returncode}: {process.stderr.read()}")
    raise AssertionError("the gateway printed no ready line in time")


def gateway_process(kind: str, env: dict[str, str]) -> subprocess.Popen:
    base = {key: value for key, value in os.environ.items() if key != "GATEWAY_KIND"}
    return subprocess.Popen(
        [sys.executable, "-m", "gateways", kind],
        env={**base, "GRPC_PORT": "0", "METRICS_PORT": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> int:
    """SIGTERM by pid, then SIGKILL if it lingers; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def test_sigterm_stops_a_gateway_with_exit_0_and_numbering_resumes_after_restart(tmp_path, tokens_file):
    env = {"AUTH_TOKENS_FILE": str(tokens_file), "LOG_FILE": str(tmp_path / "deliveries.jsonl"),
           "DATA_DIR": str(tmp_path / "data")}
    receipts = []
    for delivery_id in ("restart-1", "restart-2"):
        process = gateway_process("log", env)
        try:
            ready = read_ready(process)
            receipts.append(deliver(ready["grpc"], request(delivery_id, "log", "ops")).receipt)
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
        finally:
            stop(process)

    assert receipts == ["1", "2"]


def test_a_delivery_id_is_never_sent_twice_across_a_kill_9_of_the_gateway(tmp_path, tokens_file, receiver):
    env = {"AUTH_TOKENS_FILE": str(tokens_file), "WEBHOOK_SECRETS": json.dumps({"*": BILLING_SECRET}),
           "WEBHOOK_TIMEOUT": "10", "DATA_DIR": str(tmp_path / "data")}
    fast, slow = receiver.url("/hooks/billing/kill-test"), receiver.url("/hooks/billing/slow")
    # given a gateway that delivered one id and is in the middle of sending another
    process = gateway_process("webhook", env)
    try:
        address = read_ready(process)["grpc"]
        first = deliver(address, request("kill-1", "webhook", fast))
        with gateway_stub(address) as stub:
            under_way = stub.Deliver.future(request("kill-2", "webhook", slow), timeout=30)
            deadline = time.monotonic() + 10
            while not receiver.bodies_for("kill-2") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert receiver.bodies_for("kill-2"), "the slow send never reached the receiver"
            # when it is killed -9 (by its pid) and started again on the same data directory
            process.kill()
            process.wait(10)
            assert under_way.exception(10) is not None
    finally:
        stop(process)
    process = gateway_process("webhook", env)
    try:
        address = read_ready(process)["grpc"]
        # then the delivered id is answered with its first receipt, and nothing is sent
        assert deliver(address, request("kill-1", "webhook", fast)).receipt == first.receipt
        # and the id whose send was cut off is refused as in doubt, not sent again
        refused = refusal(address, request("kill-2", "webhook", slow))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not sent again" in refused.details()
    finally:
        stop(process)
    assert len(receiver.bodies_for("kill-1")) == 1 and len(receiver.bodies_for("kill-2")) == 1


def test_a_bad_setting_stops_start_up_with_exit_2_naming_the_variable(tokens_file):
    process = gateway_process("webhook", {"AUTH_TOKENS_FILE": str(tokens_file), "WEBHOOK_SECRETS": '{"*": "short"}'})
    try:
        _out, err = process.communicate(timeout=30)
    finally:
        stop(process)

    assert process.returncode == 2
    assert "WEBHOOK_SECRETS: the secret for '*' is shorter than 16 bytes" in err


def test_help_lists_the_kinds_and_the_settings():
    result = subprocess.run(
        [sys.executable, "-m", "gateways", "--help"], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0
    assert "{webhook,email,log}" in result.stdout
    for variable in ("WEBHOOK_SECRETS", "SMTP_HOST", "LOG_FILE", "AUTH_TOKENS_FILE"):
        assert variable in result.stdout
