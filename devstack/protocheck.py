"""Fail when the generated protobuf code differs from what proto/ generates now."""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path


def _sources(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.suffix in {".py", ".pyi"}}


def stale_files(generated: Path, protos: list[str]) -> list[str]:
    """Generated files that are missing, extra or different from a fresh generation."""
    with tempfile.TemporaryDirectory() as fresh:
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", f"--python_out={fresh}",
             f"--pyi_out={fresh}", f"--grpc_python_out={fresh}", *protos],
            check=True,
        )
        wanted = _sources(Path(fresh))
        have = _sources(generated)
        differing = [
            str(name) for name in wanted & have if not filecmp.cmp(Path(fresh) / name, generated / name, shallow=False)
        ]
        return sorted({*map(str, wanted ^ have), *differing})


def main() -> int:
    generated, protos = Path(sys.argv[1]), sys.argv[2:]
    stale = stale_files(generated, protos)
    if stale:
        print(f"generated code is stale ({', '.join(stale)}); run 'make proto'", file=sys.stderr)
        return 1
    print(f"generated code is current ({len(protos)} proto files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
