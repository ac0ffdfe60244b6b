"""The tools that check the deployment, fetched once into the cache (like the Kafka jars).

- promtool and prometheus: Debian's `prometheus` package, unpacked (not installed) into
  the cache, so nothing runs as a system service and no root is needed once downloaded;
- the Strimzi, KEDA and Prometheus Operator schemas: npm packages (deploy/crds/package-lock.json);
- kubernetes-validate and checkov: a virtualenv of their own (deploy/tools.lock).

`python -m deploy.tools fetch` (make deploy-tools) fetches what is missing and prints where
each is; the tests call the same functions and fail, never skip, when one cannot be had.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from common.localkafka import cache_dir

HERE = Path(__file__).resolve().parent
PROMETHEUS_DEB = "prometheus=2.42.0+ds-5+deb12u1"
PROMETHEUS_VERSION = "2.42.0"


def _digest(*files: Path) -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:12]


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def _once(home: Path, build: Callable[[Path], None]) -> Path:
    """`home`, built by `build(home)` on first use; concurrent callers wait for the first.

    Built in place (a virtualenv cannot move), and complete only once its marker is written:
    what an interrupted build left behind is removed first.
    """
    marker = home / ".complete"
    if marker.exists():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()
            build(home)
            marker.write_text("ok\n")
    return home


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise RuntimeError(f"`{tool}` not found on PATH: {hint}")
    return found


def _unpack_prometheus(staged: Path) -> None:
    apt = _require("apt-get", "promtool comes from Debian's prometheus package")
    with tempfile.TemporaryDirectory() as download:
        fetched = _run([apt, "download", PROMETHEUS_DEB], cwd=Path(download))
        if fetched.returncode != 0:  # a fresh machine has no package lists yet
            _run([apt, "update"])
            fetched = _run([apt, "download", PROMETHEUS_DEB], cwd=Path(download))
        if fetched.returncode != 0:
            raise RuntimeError(f"apt-get download {PROMETHEUS_DEB} failed:\n{fetched.stderr[-2000:]}")
        deb = next(Path(download).glob("prometheus_*.deb"))
        unpacked = _run(["dpkg-deb", "-x", str(deb), str(staged)])
        if unpacked.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {deb.name} failed:\n{unpacked.stderr[-2000:]}")


def prometheus_bin() -> Path:
    """The directory holding `prometheus` and `promtool`."""
    return _once(cache_dir() / f"prometheus-{PROMETHEUS_VERSION}", _unpack_prometheus) / "usr" / "bin"


def promtool() -> Path:
    return prometheus_bin() / "promtool"


def _install_schemas(staged: Path) -> None:
    npm = _require("npm", "install Node.js 20+ and npm, e.g. `apt-get install nodejs npm`")
    for name in ("package.json", "package-lock.json", "validate.mjs"):
        shutil.copy(HERE / "crds" / name, staged / name)
    installed = _run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=staged)
    if installed.returncode != 0:
        raise RuntimeError(f"npm ci of the CRD schema packages failed:\n{installed.stderr[-2000:]}")


def crd_schemas() -> Path:
    """The directory holding the schema packages' node_modules and validate.mjs."""
    crds = HERE / "crds"
    version = _digest(crds / "package-lock.json", crds / "validate.mjs")
    return _once(cache_dir() / f"crd-schemas-{version}", _install_schemas)


def _install_checkers(staged: Path) -> None:
    venv = staged / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    if made.returncode != 0:
        raise RuntimeError(f"cannot make a virtualenv:\n{made.stderr[-2000:]}")
    installed = _run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                      "-r", str(HERE / "tools.lock")])
    if installed.returncode != 0:
        raise RuntimeError(f"installing deploy/tools.lock failed:\n{installed.stderr[-3000:]}")


def checkers_bin() -> Path:
    """The directory holding `kubernetes-validate` and `checkov`."""
    return _once(cache_dir() / f"deploy-checkers-{_digest(HERE / 'tools.lock')}", _install_checkers) / "venv" / "bin"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.tools", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch"])
    parser.parse_args(argv)
    print(f"promtool, prometheus: {prometheus_bin()}")
    print(f"CRD schemas: {crd_schemas()}")
    print(f"kubernetes-validate, checkov: {checkers_bin()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
