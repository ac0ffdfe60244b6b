"""The sla worker's hot path, compiled to C extension modules with mypyc.

The modules below are plain, type-annotated Python; mypyc turns each into a C extension that
behaves the same and runs about 1.6 times faster (docs/decisions/0003). They are built into a
directory of their own that holds complete copies of the `sla` and `common` packages, the
extensions beside their sources, and a stamp of the sources they were built from:

    python -m devstack.compile --out .venv/compiled      # make install runs this
    python -m devstack.compile --out .venv/compiled --check

The source tree stays pure Python: tests import it in process, and an edit takes effect at
once. Processes that devstack starts (make run, the end-to-end tests, make bench) put the
compiled directory first on their path while its stamp matches the sources
(`compiled_path`); when it does not, they run the sources and say so once. The image
copies the directory over the installed packages.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The packages copied whole into the compiled directory, by the directory that holds each.
PACKAGES = {"sla": ROOT / "services/sla", "common": ROOT / "services/common"}
# Compiled modules, relative to the compiled directory. Everything the sla worker runs per
# record, apart from the stream engine (async generators, which mypyc does not compile), the
# policies (a target may be given as a plain timedelta: a field of two types would reach
# every reader) and the repeat codec (protobuf's enum stubs do not type-check there).
MODULES = (
    "sla/domain/clocks.py",
    "sla/domain/calendar.py",
    "sla/domain/repeats.py",
    "sla/adapters/codec.py",
    "sla/adapters/customers.py",
    "sla/entrypoints/engine.py",
    "sla/entrypoints/repeat_tracker.py",
    "sla/entrypoints/worker.py",
    "common/clock.py",
    "common/codec.py",
    "common/ids.py",
    "common/streams/store.py",
)
STAMP = "SOURCES"
DEFAULT_OUT = ROOT / ".venv/compiled"
GENERATED = ROOT / "services/common/gen"
_warned = False


def sources_digest() -> str:
    """One digest over every source file of the copied packages, the modules compiled and the
    compiler's version."""
    digest = hashlib.sha256("\n".join(MODULES).encode() + b"\0")
    for name, parent in sorted(PACKAGES.items()):
        for path in sorted((parent / name).rglob("*.py")):
            digest.update(str(path.relative_to(parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(_compiler_version().encode())
    return digest.hexdigest()


def _compiler_version() -> str:
    try:
        from mypy.version import __version__
    except ImportError:
        return "none"
    return __version__


def is_fresh(out: Path) -> bool:
    stamp = out / STAMP
    return stamp.is_file() and stamp.read_text().strip() == sources_digest()


def compiled_path(out: Path = DEFAULT_OUT) -> Path | None:
    """The compiled directory when it was built from the current sources; None otherwise (the
    first time it is stale, with a word on stderr)."""
    global _warned
    if is_fresh(out):
        return out
    if out.exists() and not _warned:
        _warned = True
        print(f"note: the compiled modules in {out} are older than the sources; services run the "
              "sources (make install rebuilds them)", file=sys.stderr)
    return None


def with_compiled(env: dict[str, str], out: Path = DEFAULT_OUT) -> dict[str, str]:
    """`env` with the compiled directory first on PYTHONPATH, when it is fresh."""
    found = compiled_path(out)
    if found is None:
        return env
    rest = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": f"{found}{os.pathsep}{rest}" if rest else str(found)}


def build(out: Path) -> None:
    """Copy the packages into a fresh directory beside `out`, compile the modules there, and
    put it in place of `out` in one rename, so `out` is never half built."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = sources_digest()
    work = Path(tempfile.mkdtemp(prefix=".compiling-", dir=out.parent))
    try:
        for name, parent in PACKAGES.items():
            shutil.copytree(parent / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        env = {**os.environ, "MYPYPATH": os.pathsep.join([str(work), str(GENERATED)])}
        result = subprocess.run([sys.executable, __file__, "--in-place"], cwd=work, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"compiling {', '.join(MODULES)} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
        for scratch in ("build", ".mypy_cache"):
            shutil.rmtree(work / scratch, ignore_errors=True)
        (work / STAMP).write_text(digest + "\n")
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compile_here() -> None:
    """Build the extensions beside their sources in the current directory (a fresh copy)."""
    from mypyc.build import mypycify
    from setuptools import setup

    options = ["--ignore-missing-imports", "--follow-imports=silent", *MODULES]
    setup(name="handoff-compiled", script_args=["--quiet", "build_ext", "--inplace"],
          ext_modules=mypycify(options, opt_level="3"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.compile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the compiled directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the directory is missing or stale")
    parser.add_argument("--in-place", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_place:
        _compile_here()
        return 0
    if args.check:
        fresh = is_fresh(args.out)
        print(f"{args.out}: {'built from the current sources' if fresh else 'missing or stale'}")
        return 0 if fresh else 1
    if is_fresh(args.out):
        return 0
    build(args.out)
    print(f"compiled {len(MODULES)} modules into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
