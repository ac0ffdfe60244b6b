"""The sla worker's hot path compiled with mypyc: built by make install from the current
sources, loaded by the services devstack starts, and byte for byte the same as the sources
(outputs and stored state of the same synthetic legs, wall and event time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import compile as compiled

ROOT = Path(__file__).resolve().parents[2]


def test_make_install_built_the_compiled_modules_from_the_current_sources():
    assert compiled.is_fresh(compiled.DEFAULT_OUT), "run make install: the compiled modules are missing or stale"


def test_services_started_by_devstack_load_every_compiled_module():
    env = compiled.with_compiled(dict(os.environ))
    modules = [path.removesuffix(".py").replace("/", ".") for path in compiled.MODULES]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)"
    loaded = subprocess.run([sys.executable, "-c", script, *modules], env=env, capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()
    assert len(loaded) == len(modules)
    assert all(path.startswith(str(compiled.DEFAULT_OUT)) and path.endswith(".so") for path in loaded), loaded


def test_a_stale_build_is_not_used(tmp_path):
    (tmp_path / compiled.STAMP).write_text(compiled.sources_digest() + "\n")
    assert compiled.with_compiled({"PYTHONPATH": "x"}, tmp_path)["PYTHONPATH"] == f"{tmp_path}{os.pathsep}x"
    (tmp_path / compiled.STAMP).write_text("an older digest\n")
    assert compiled.with_compiled({"PYTHONPATH": "x"}, tmp_path) == {"PYTHONPATH": "x"}
    assert compiled.with_compiled({}, tmp_path / "missing") == {}


def digests(args: list[str], compiled_modules: bool) -> str:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if compiled_modules:
        env = compiled.with_compiled(env)
        assert "PYTHONPATH" in env
    done = subprocess.run([sys.executable, "-m", "bench.slacpu", "--fixed-clock", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True, timeout=120)
    line = next(line for line in done.stdout.splitlines() if line.startswith("outputs "))
    return line.split(", load average")[0]


@pytest.mark.parametrize("args", [
    ["--legs", "4000", "--customers", "500"],
    ["--legs", "3000", "--customers", "300", "--lifecycle", "--contacts", "--clock", "event", "--calendar", "office"],
    ["--history", "6000"],
], ids=["wall-time", "event-time-lifecycle", "replay-history"])
def test_the_compiled_modules_emit_and_store_what_the_sources_do(args):
    pure = digests(args, compiled_modules=False)
    assert pure.startswith("outputs ") and "digest" in pure
    assert digests(args, compiled_modules=True) == pure


def test_the_unit_suite_passes_on_the_compiled_modules(tmp_path):
    """Compiled code checks declared types at every call; the unit tests, run against it,
    show that no input the code accepts on purpose trips over that (the rest of the suite runs
    the services, hence the compiled modules, as processes)."""
    env = compiled.with_compiled({key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider",
                           "--ignore", "tests/unit/test_compiled.py", "--durations=0", "--durations-min=60",
                           "--basetemp", str(tmp_path / "pytest")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]
