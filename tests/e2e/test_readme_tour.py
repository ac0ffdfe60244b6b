"""The README's tour works as written: its commands, run one after another against the
stack `make up POLICIES=...` starts (the same policies, routing and gateways, on free
ports), show a notification, a breach, an avoidable repeat contact and its cost, and write
the report."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def tour_commands() -> tuple[Path, list[str]]:
    """The policy file `make up` is given and the handoffctl lines of the README's tour."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Tour.*?```sh\n(.*?)```", readme, re.S).group(1)
    lines = [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]
    (up,) = [line for line in lines if line.startswith("make up")]
    policies = ROOT / re.search(r"POLICIES=(\S+)", up).group(1)
    return policies, [line for line in lines if not line.startswith("make ")]


@pytest.mark.timeout(600)  # a broker, the stack and a minute of demo, on a shared machine
def test_the_readme_tour_shows_a_notification_a_breach_a_repeat_and_a_report(tmp_path: Path) -> None:
    policies, commands = tour_commands()
    assert policies.name == "demo-sla-policies.yaml" and len(commands) >= 6
    (tmp_path / "config").symlink_to(ROOT / "config")  # the tour runs in the repository's root
    with Stack(tmp_path / "up", policies, gateways=True) as stack:
        env = {**os.environ, "HANDOFF_GRPC": stack.services["handoff"].grpc, "SLA_GRPC": stack.services["sla"].grpc,
               "NOTIFY_GRPC": stack.services["notify"].grpc, "COLUMNS": "120"}
        env.pop("HANDOFF_CA", None)
        # one shell, as a reader types them: `export` carries over; a marker before each command splits the output
        script = "set -euo pipefail\n" + "".join(
            f"echo '@@@ {n}'\n" + command.replace(".venv/bin/handoffctl", f"{shlex.quote(sys.executable)} -m handoffctl.main")
            + "\n" for n, command in enumerate(commands))
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.stdout, done.stderr)
    outputs = [part.split("\n", 1)[-1] for part in done.stdout.split("@@@ ")[1:]]
    assert len(outputs) == len(commands), done.stdout
    told = next(out for command, out in zip(commands, outputs) if " watch " in command)
    card = next(out for command, out in zip(commands, outputs) if " scorecard" in command)
    # then billing was told twice, once of the breach; the scorecard shows the breach and the repeat's cost
    assert told.count("cursor") == 2 and "breach" in told.lower(), told
    figures = {row.split("  ")[0]: row.split("  ", 1)[-1].strip() for row in card.splitlines()}
    assert figures["department"] == "billing" and figures["breaches"] == "1", card
    assert (figures["avoidable repeats"], figures["failure-demand cost"]) == ("1", "4.50 EUR"), card
    report = (tmp_path / "chargeback.html").read_text()
    assert "Charge-back report" in report and "4.50 EUR" in report and "CC-4100" in report
