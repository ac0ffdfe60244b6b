"""handoff-devstack: run the local stack in the foreground (run) or background (up/down)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console

from devstack.simulator.live import DEPARTMENTS_FILE, EVENT_TIME, LiveRun, simulation_setup
from devstack.processes import ServiceFailed
from devstack.stack import WELL_KNOWN_PORTS, Stack

app = typer.Typer(help="Run Kafka, the three services, the channel gateways and a simulated contact centre locally.",
                  no_args_is_help=True,
                  add_completion=False)
console = Console(highlight=False)

STATE_DIR = Path(".run")
STATE_FILE = STATE_DIR / "stack.json"
Bootstrap = Annotated[
    str, typer.Option("--kafka-bootstrap", envvar="KAFKA_BOOTSTRAP", help="Use this Kafka instead of a local one.")
]
Policies = Annotated[Path, typer.Option(help="SLA policy file.", exists=True, dir_okay=False)]
# How long a stop waits for the run's streams to close before it stops the stack anyway.
CLOSE_WAIT_S = 10
FreePorts = Annotated[
    bool,
    typer.Option("--free-ports", help="Let services pick free ports instead of 50051-50053 (gRPC) and 9461-9463 (metrics)."),
]


def _ports(free_ports: bool) -> dict[str, tuple[int, int]] | None:
    return None if free_ports else WELL_KNOWN_PORTS


def _print_endpoints(endpoints: dict[str, str]) -> None:
    for name, address in endpoints.items():
        console.print(f"  {name:<18} {address}")


def _stop_on_sigterm() -> None:
    # A SIGTERM stops the supervisor the same way Ctrl-C does, so children are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


def _stopping() -> None:
    """The supervisor is stopping already: a second SIGTERM or Ctrl-C must not cut the stop
    short (it would leave the services and the broker it has not stopped yet running)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@app.command()
def run(
    kafka_bootstrap: Bootstrap = "",
    policies: Policies = Path("config/sim-sla-policies.yaml"),
    centre: Annotated[Path, typer.Option(help="The simulated contact centre.", exists=True, dir_okay=False)]
    = Path("config/simulator.yaml"),
    seed: Annotated[Optional[int], typer.Option(help="Seed of the simulation (default: the centre file's).")] = None,
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per real second.")] = None,
    workdir: Annotated[Path, typer.Option(help="Data and logs of this run.")] = Path("var/run"),
    free_ports: FreePorts = False,
) -> None:
    """Start everything on event time, simulate a contact centre and watch it live; Ctrl-C stops everything."""
    _stop_on_sigterm()
    try:
        setup = simulation_setup(centre, policies, DEPARTMENTS_FILE, datetime.now(timezone.utc), seed, speed)
    except ValueError as error:
        console.print(f"[red]{error}[/red]", markup=True, highlight=False)
        raise typer.Exit(2)
    stack = Stack(workdir, policies, kafka_bootstrap or None, ports=_ports(free_ports), gateways=True,
                  env=EVENT_TIME)
    live: LiveRun | None = None
    # One event loop for the run and its final table: a gRPC call the run cancelled may
    # still complete on the loop it was made on, which must not be closed by then.
    runner = asyncio.Runner()
    try:
        with console.status("starting Kafka, the gateways and the services..."):
            stack.start()
        console.print("[bold]stack is up[/bold] (logs in %s)" % (workdir / "logs"))
        _print_endpoints(stack.endpoints())
        live = LiveRun(*setup, console=console)
        runner.run(_simulate(live, stack))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except ServiceFailed as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1)
    finally:
        _stopping()
        closed = True
        if live is not None:
            try:
                closed = _cancel_left(runner)
                console.print(runner.run(live.final_table()))
            except Exception as error:  # the stack is stopped whatever the table does
                console.print(f"[red]no charge-back table: {error!r}[/red]")
        if closed:
            runner.close()
        console.print("stopping...")
        stack.stop()
        console.print("stopped; nothing left running")


def _cancel_left(runner: asyncio.Runner) -> bool:
    """Cancel what a run cut short by a signal left on the loop, and let it close its streams
    for at most CLOSE_WAIT_S (the stack is stopped after this whatever a stream does).
    False when a task is still closing: closing the runner would wait for it without end."""
    loop = runner.get_loop()
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if not left:
        return True
    _, pending = loop.run_until_complete(asyncio.wait(left, timeout=CLOSE_WAIT_S))
    if pending:
        console.print(f"[yellow]{len(pending)} task(s) still closing after {CLOSE_WAIT_S} s; "
                      "stopping anyway[/yellow]")
    return not pending


async def _simulate(live: LiveRun, stack: Stack) -> None:
    """Run the simulation and its view until Ctrl-C, SIGTERM or q; each cancels it, so it closes its streams.

    While it runs, SIGTERM cancels it through the loop, as asyncio does for Ctrl-C: at an
    await, never in the middle of the loop's own bookkeeping (where an exception raised by a
    signal handler can leave a future that nothing completes, and the stop waiting on it).
    """
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await live.run(stack.services["handoff"].grpc, stack.services["sla"].grpc, stack.services["notify"].grpc,
                       stack.bootstrap, stack.check_alive)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # which leaves SIGTERM's default: fatal
        _stop_on_sigterm()


@app.command()
def serve(
    kafka_bootstrap: Bootstrap = "",
    policies: Policies = Path("config/sla-policies.yaml"),
    workdir: Annotated[Path, typer.Option(help="Data and logs.")] = Path("var/up"),
    free_ports: FreePorts = False,
) -> None:
    """Run the stack until SIGTERM, keeping .run/stack.json current (used by `up`)."""
    _stop_on_sigterm()
    stack = Stack(workdir, policies, kafka_bootstrap or None, ports=_ports(free_ports), gateways=True)
    try:
        stack.start()
        STATE_FILE.write_text(json.dumps({"pid": os.getpid(), "endpoints": stack.endpoints()}))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        _stopping()
        stack.stop()
        STATE_FILE.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running_state() -> dict | None:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return state if _alive(state["pid"]) else None


@app.command()
def up(
    kafka_bootstrap: Bootstrap = "",
    policies: Policies = Path("config/sla-policies.yaml"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the stack.")] = 180,
    free_ports: FreePorts = False,
) -> None:
    """Start the stack in the background and print every endpoint."""
    if state := _running_state():
        console.print(f"already up (supervisor pid {state['pid']}):")
        _print_endpoints(state["endpoints"])
        return
    STATE_DIR.mkdir(exist_ok=True)
    STATE_FILE.unlink(missing_ok=True)
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap} if kafka_bootstrap else dict(os.environ)
    with (STATE_DIR / "stack.log").open("a") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "devstack", "serve", "--policies", str(policies),
             *(["--free-ports"] if free_ports else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while (state := _running_state()) is None:
        if supervisor.poll() is not None or time.monotonic() > deadline:
            if supervisor.poll() is None:
                supervisor.terminate()
                supervisor.wait(60)
            console.print(f"[red]the stack did not start[/red]; see {STATE_DIR / 'stack.log'}")
            raise typer.Exit(1)
        time.sleep(0.5)
    console.print(f"[bold]stack is up[/bold] (supervisor pid {state['pid']}; `make down` stops it)")
    _print_endpoints(state["endpoints"])


@app.command()
def down(timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean stop.")] = 90) -> None:
    """Stop the background stack started by `up`."""
    state = _running_state()
    if state is None:
        console.print("nothing is running")
        STATE_FILE.unlink(missing_ok=True)
        return
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state["pid"]):
        if time.monotonic() > deadline:
            console.print(f"[red]supervisor {state['pid']} did not stop within {timeout:.0f}s[/red]")
            raise typer.Exit(1)
        time.sleep(0.3)
    console.print("stopped")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
