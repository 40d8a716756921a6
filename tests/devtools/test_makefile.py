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


def copy_checkout(root: Path) -> Path:
    for name in PREREQUISITES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    return root


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout where nothing is installed yet (no .venv), so `make -n` shows every step."""
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


def make(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("make")
    assert executable, "GNU make is needed to read the Makefile"
    return subprocess.run([executable, *args], cwd=checkout, capture_output=True, text=True,
                          check=False, timeout=30)


def dry_run(checkout: Path, target: str) -> str:
    result = make(checkout, "-n", target)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fake_tool(path: Path, log: Path, exit_code: int) -> Path:
    """A script that writes its name to `log` when called and exits with `exit_code`."""
    path.write_text(f"#!/bin/sh\necho {path.name} >> {log}\nexit {exit_code}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("target", ["deploy-deps", "package", "synth", "synth-check", "diff",
                                    "lint", "check"])
def test_deploy_side_targets_install_no_system_packages(fresh_checkout, target):
    steps = dry_run(fresh_checkout, target)
    assert "-m venv .venv" in steps  # the virtualenv is still made on a fresh checkout
    assert SYSTEM_SETUP not in steps


def test_test_runs_every_test_and_check_the_quick_ones_both_on_every_core(fresh_checkout):
    test = [line for line in dry_run(fresh_checkout, "test").splitlines() if "-m pytest" in line]
    check = [line for line in dry_run(fresh_checkout, "check").splitlines() if "-m pytest" in line]
    assert len(test) == len(check) == 1
    assert "-n auto" in test[0] and "-n auto" in check[0]
    assert "-m" not in test[0].split("-m pytest", 1)[1].split()
    assert check[0].endswith('-m "not slow"')


@pytest.mark.parametrize("target", ["dev", "test", "bench", "chaos"])
def test_dev_loop_targets_install_system_packages_before_the_virtualenv(fresh_checkout, target):
    steps = dry_run(fresh_checkout, target)
    assert steps.index(SYSTEM_SETUP) < steps.index("-m venv .venv")


@pytest.mark.parametrize("target", ["dev", "test", "bench", "chaos"])
def test_dev_loop_targets_make_no_virtualenv_before_the_system_packages_under_j(tmp_path, target):
    """Under `make -j` a virtualenv made alongside the system setup would find no python3-venv."""
    checkout = copy_checkout(tmp_path)
    calls = tmp_path / "calls.log"
    fake_tool(checkout / SYSTEM_SETUP, calls, exit_code=1)  # the system setup fails
    python = fake_tool(tmp_path / "python3", calls, exit_code=0)
    result = make(checkout, "-j4", target, f"PYTHON={python}")
    assert result.returncode != 0
    assert calls.read_text().splitlines() == ["install-system-deps.sh"], result.stderr


def test_the_deploy_side_refuses_a_python_older_than_3_11(tmp_path):
    """No virtualenv from a python3 the program can't run on (macOS's own is 3.9)."""
    checkout = copy_checkout(tmp_path)
    calls = tmp_path / "calls.log"
    python = tmp_path / "python3"  # answers the version check like Python 3.9, anything else ok
    python.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                      "case \"$*\" in *version_info*) exit 1;; esac\nexit 0\n")
    python.chmod(0o755)
    result = make(checkout, "deploy-deps", f"PYTHON={python}")
    assert result.returncode != 0
    assert "is older than Python 3.11: install 3.11+" in result.stderr
    assert "-m venv" not in calls.read_text()
