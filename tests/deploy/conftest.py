"""The built overlays, shared by the deployment tests (kubectl kustomize, offline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "production")


def build(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to build the kustomize overlays"
    built = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return built.stdout


@pytest.fixture(scope="session")
def built() -> dict[str, str]:
    """Each overlay's manifests as kubectl kustomize prints them."""
    return {overlay: build(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def objects(built) -> dict[str, list[dict]]:
    return {overlay: [item for item in yaml.safe_load_all(text) if item] for overlay, text in built.items()}
