"""The demo driver of `make run`: opens legs, acknowledges some in time, lets others breach,
and prints every notification the departments receive on their Subscribe streams, what the
log gateway writes, and what reaches the example webhooks (config/routing.yaml posts them
to 127.0.0.1:8081, where the driver listens when the port is free)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from aiohttp import web

from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import notification_service_pb2 as notify_pb2
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import types_pb2
from rich.console import Console

from common.grpcclient import aio_channel
from devstack.stack import AGENT_TOKEN

DEPARTMENTS = ("billing", "field-service", "accounts", "claims")
PRIORITIES = (types_pb2.PRIORITY_NORMAL, types_pb2.PRIORITY_HIGH, types_pb2.PRIORITY_URGENT)
console = Console(highlight=False)


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


async def watch(notify_address: str, department: str) -> None:
    """Print the department's notifications until cancelled."""
    async with aio_channel(notify_address, department_token(department)) as channel:
        stub = notify_grpc.NotificationServiceStub(channel)
        async for response in stub.Subscribe(notify_pb2.SubscribeRequest(department=department)):
            note = response.notification
            console.print(f"{_stamp()} [bold red]NOTIFY {department:<13}[/] {note.title}")


async def tail_log_gateway(path: Path) -> None:
    """Print each delivery the log gateway appends to its file, until cancelled."""
    while not path.exists():
        await asyncio.sleep(1)
    with path.open() as lines:
        lines.seek(0, 2)
        while True:
            line = lines.readline()
            if not line:
                await asyncio.sleep(0.5)
                continue
            entry = json.loads(line)
            console.print(f"{_stamp()} [magenta]LOG    {entry['target']:<13}[/] {entry['notification']['title']}")


async def webhook_sink(port: int = 8081) -> web.AppRunner | None:
    """Accept the example webhooks and print them; None when the port is taken."""

    async def received(request: web.Request) -> web.Response:
        note = json.loads(await request.read())["notification"]
        console.print(f"{_stamp()} [yellow]HOOK   {request.match_info['name']:<13}[/] {note['title']}")
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hooks/{name}", received)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError:
        await runner.cleanup()
        console.print(f"(port {port} is taken: webhook deliveries are not shown)")
        return None
    return runner


def department_token(department: str) -> str:
    """The development token of a department's team (config/tokens.example.yaml)."""
    return f"dev-token-{department}"


async def open_leg(
    stub: handoff_grpc.HandoffServiceStub, handoff_address: str, number: int, acknowledge_in_time: bool
) -> None:
    department = random.choice(DEPARTMENTS)
    leg = await stub.CreateHandoff(
        handoff_pb2.CreateHandoffRequest(
            request_id=str(uuid.uuid4()),
            case_id=f"CASE-{number:04d}",
            customer_ref=f"cust-{random.randint(1, 40):03d}",
            department=department,
            priority=random.choice(PRIORITIES),
            summary="demo handoff",
        ),
        timeout=10,
    )
    plan = "will be acknowledged in time" if acknowledge_in_time else "will be left to breach"
    console.print(f"{_stamp()} [cyan]OPEN   {department:<13}[/] {leg.case_id} {leg.handoff_id[:8]} ({plan})")
    if acknowledge_in_time:
        await asyncio.sleep(random.uniform(1, 3))
        # The receiving department acknowledges, with its own token.
        async with aio_channel(handoff_address, department_token(department)) as channel:
            await handoff_grpc.HandoffServiceStub(channel).AcknowledgeHandoff(
                handoff_pb2.AcknowledgeHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id),
                timeout=10,
            )
        console.print(f"{_stamp()} [green]ACK    {department:<13}[/] {leg.case_id} {leg.handoff_id[:8]}")


async def drive(
    handoff_address: str, notify_address: str, check_alive: Callable[[], None], interval: float = 4.0,
    log_file: Path | None = None,
) -> None:
    """Open a leg every `interval` seconds (every third left to breach) until cancelled.

    `check_alive` raises when a service of the stack has died, which ends the demo.
    `log_file`: the log gateway's file, whose deliveries are printed too.
    """
    watchers = [asyncio.create_task(watch(notify_address, d)) for d in DEPARTMENTS]
    if log_file is not None:
        watchers.append(asyncio.create_task(tail_log_gateway(log_file)))
    sink = await webhook_sink()
    tasks: set[asyncio.Task[None]] = set()
    try:
        async with aio_channel(handoff_address, AGENT_TOKEN) as channel:
            stub = handoff_grpc.HandoffServiceStub(channel)
            number = 0
            while True:
                check_alive()
                number += 1
                task = asyncio.create_task(
                    open_leg(stub, handoff_address, number, acknowledge_in_time=number % 3 != 1)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(interval)
    finally:
        for task in [*watchers, *tasks]:
            task.cancel()
        await asyncio.gather(*watchers, *tasks, return_exceptions=True)
        if sink is not None:
            await sink.cleanup()
