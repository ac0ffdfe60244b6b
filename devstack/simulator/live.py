"""`make run`: the stack on event time, the simulated centre driving it, and the live view.

Keys (when the terminal is one): space pauses and resumes simulated time, + and - change
its speed, q quits like Ctrl-C. On the way out the charge-back table is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import termios
import tty
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from rich.console import Console
from rich.live import Live

from common.departments import load_departments
from devstack.simulator.centre import Centre, load_centre
from devstack.simulator.monitor import Monitor
from devstack.simulator.plan import Plan, make_plan, start_of_run
from devstack.simulator.runner import SimClock, Simulation
from devstack.simulator.view import DepartmentName, chargeback_table, money, render
from sla.adapters.policy_file import PolicyFileError, load_policies

REFRESH = 4  # screen refreshes per second
ROOT = Path(__file__).resolve().parents[2]
DEPARTMENTS_FILE = ROOT / "config" / "departments.yaml"
# sla and notify run on the simulation's event time, driven by its heartbeats.
EVENT_TIME = {"SLA_CLOCK": "event", "NOTIFY_CLOCK": "event"}


@contextlib.contextmanager
def keys_from(stream, on_key):
    """Call `on_key(character)` for each key pressed while inside; nothing when `stream` is no terminal."""
    if not stream.isatty():
        yield
        return
    descriptor = stream.fileno()
    saved = termios.tcgetattr(descriptor)
    tty.setcbreak(descriptor)  # keys one by one, no echo; Ctrl-C still interrupts
    loop = asyncio.get_running_loop()
    loop.add_reader(descriptor, lambda: on_key(stream.read(1)))
    try:
        yield
    finally:
        loop.remove_reader(descriptor)
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def repeat_costs(plan: Plan, cost_per_channel: Mapping[str, int], currency: str) -> dict[str, str]:
    """What a repeat call on each case costs, by the channel its customer uses."""
    return {case.case_id: money(cost_per_channel.get(case.channel, 0), currency) for case in plan.cases}


async def webhook_sink(port: int = 8081) -> web.AppRunner | None:
    """Accept the example webhooks of config/routing.yaml (127.0.0.1:8081); None when the port is taken."""

    async def received(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hooks/{name}", received)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError:
        await runner.cleanup()
        return None
    return runner


class LiveRun:
    """The simulation, its monitor and the screen, until cancelled."""

    def __init__(self, centre: Centre, plan: Plan, names: Mapping[str, DepartmentName], costs: Mapping[str, str],
                 console: Console) -> None:
        self.centre, self.plan, self.names, self.costs, self.console = centre, plan, names, costs, console
        self.departments = [d.name for d in centre.departments]
        self.clock = SimClock(plan.start, centre.speed, plan.end, centre.zone)
        self.monitor: Monitor | None = None

    def _key(self, key: str, task: asyncio.Task) -> None:
        if key == " ":
            self.clock.toggle_pause()
        elif key in "+=":
            self.clock.set_speed(self.clock.speed * 2)
        elif key in "-_":
            self.clock.set_speed(self.clock.speed / 2)
        elif key in "qQ":
            task.cancel()

    async def run(self, handoff: str, sla: str, notify: str, bootstrap: str, check_alive) -> None:
        task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        sink = await webhook_sink()
        simulation = Simulation(self.plan, self.clock, handoff, bootstrap)
        self.monitor = Monitor(sla, notify, self.departments, self.plan.start)
        workers = [asyncio.create_task(simulation.run()),
                   asyncio.create_task(self.monitor.poll(lambda: self.clock.now() + timedelta(seconds=1)))]

        def screen():
            return render(self.clock, simulation.progress, self.monitor.snapshot, self.departments, self.names,
                          self.costs, self.console.size.height)

        try:
            with keys_from(sys.stdin, lambda key: self._key(key, task)), \
                    Live(screen(), console=self.console, screen=True, auto_refresh=False) as live:
                while True:
                    check_alive()
                    for worker in workers:
                        if worker.done() and worker.exception():
                            raise worker.exception()
                    live.update(screen(), refresh=True)
                    await asyncio.sleep(1 / REFRESH)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if sink is not None:
                await sink.cleanup()
            # The caller decides what a signal does from here on; the loop outlives this run.
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    async def final_table(self):
        """The charge-back table over the whole run (the latest reading if the services do not answer)."""
        if self.monitor is None:
            return "no charge-back table: the simulation did not start"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.monitor.final(self.clock.now() + timedelta(seconds=1)), 10)
        return chargeback_table(self.departments, self.names, self.monitor.snapshot.scorecards)


def department_names(path: Path) -> dict[str, DepartmentName]:
    """Display names and cost centres from the departments file."""
    return {d.name: DepartmentName(d.display_name, d.cost_centre) for d in load_departments(path).departments}


def simulation_setup(centre_file: Path, policy_file: Path, departments_file: Path, today: datetime,
                     seed: int | None = None, speed: float | None = None):
    """(centre, plan, names, repeat costs) for a run; ValueError naming the file when one is bad."""
    centre = load_centre(centre_file)
    centre = centre.model_copy(update={k: v for k, v in (("seed", seed), ("speed", speed)) if v is not None})
    try:
        policies = load_policies(policy_file)
    except PolicyFileError as error:
        raise ValueError(str(error)) from None
    names = department_names(departments_file)
    unknown = [d.name for d in centre.departments if d.name not in names]
    if unknown:
        raise ValueError(f"{centre_file}: departments {', '.join(unknown)} are not in {departments_file}")

    def business(department: str, priority: str):
        policy = policies.find(department, priority)
        return policy.calendar.add if policy else (lambda start, span: start + span)

    plan = make_plan(centre, start_of_run(centre, today), business)
    costs = repeat_costs(plan, policies.repeats.cost_per_contact, policies.repeats.currency)
    return centre, plan, names, costs
