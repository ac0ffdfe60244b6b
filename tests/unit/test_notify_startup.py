"""A bad routing file stops notify before it touches Kafka: exit code 2 and `file:line: reason`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOKENS = Path(__file__).resolve().parents[2] / "config" / "tokens.example.yaml"


def test_notify_refuses_to_start_on_a_bad_routing_file_naming_file_and_line(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("receivers:\n  - name: billing\n    channels: [{type: log}]\nroute:\n  receiver: nobody\n")
    env = {**os.environ, "NOTIFY_ROUTING_FILE": str(routing), "AUTH_TOKENS_FILE": str(TOKENS),
           "KAFKA_BOOTSTRAP": "127.0.0.1:1", "DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "notify"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"error: {routing}:5: receiver 'nobody' is not defined under 'receivers'" in done.stderr
