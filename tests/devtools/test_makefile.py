"""The Makefile: the deploy side needs Python only, the dev loop installs Debian packages first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_SETUP = "devtools/install-system-deps.sh"
# The files the Makefile's rules name as prerequisites: enough of a checkout for `make -n`.
PREREQUISITES = ("Makefile", "requirements.txt", "webapp/requirements.txt", SYSTEM_SETUP,
                 "devtools/package.json", "devtools/package-lock.json",
                 "review/requirements-checkov.txt")


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout where nothing is installed yet (no .venv), so `make -n` shows every step."""
    root = tmp_path_factory.mktemp("checkout")
    for name in PREREQUISITES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    return root


def dry_run(checkout: Path, target: str) -> str:
    make = shutil.which("make")
    assert make, "GNU make is needed to read the Makefile"
    result = subprocess.run([make, "-n", target], cwd=checkout, capture_output=True, text=True,
                            check=True, timeout=30)
    return result.stdout


@pytest.mark.parametrize("target", ["deploy-deps", "package", "synth", "synth-check", "diff",
                                    "lint"])
def test_deploy_side_targets_install_no_system_packages(fresh_checkout, target):
    steps = dry_run(fresh_checkout, target)
    assert "-m venv .venv" in steps  # the virtualenv is still made on a fresh checkout
    assert SYSTEM_SETUP not in steps


@pytest.mark.parametrize("target", ["dev", "test", "bench", "chaos"])
def test_dev_loop_targets_install_system_packages_before_the_virtualenv(fresh_checkout, target):
    steps = dry_run(fresh_checkout, target)
    assert steps.index(SYSTEM_SETUP) < steps.index("-m venv .venv")
