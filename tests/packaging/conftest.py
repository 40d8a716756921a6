"""Builds of the deploy package, shared by the packaging tests (each build runs once per session).

Every build starts from one snapshot of webapp/ taken at the start of the run, so edits made to
the working tree while the tests run cannot make two builds differ. `package` goes through the
real command line with the repository's vendor cache; `package_from_fresh_cache` vendors again
from scratch into a private cache, so comparing the two proves pip's output itself is
reproducible, not just our zip writer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from package_builds import REPO_CACHE, REPO_ROOT, build_settings, copy_sources

from release.build import DEFAULT_PYTHON_VERSION, build_package


@pytest.fixture(scope="session")
def source_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_sources(REPO_ROOT, tmp_path_factory.mktemp("source-snapshot"))


@pytest.fixture(scope="session")
def build_output(
    source_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The package as `make package` builds it, and what the command printed."""
    dist = tmp_path_factory.mktemp("dist-cli")
    command = [sys.executable, "-m", "release.build", "--source", str(source_snapshot),
               "--dist", str(dist), "--cache", str(REPO_CACHE)]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    return dist / f"webapp-py{DEFAULT_PYTHON_VERSION}.zip", result.stdout


@pytest.fixture(scope="session")
def package(build_output: tuple[Path, str]) -> Path:
    return build_output[0]


@pytest.fixture(scope="session")
def package_from_fresh_cache(
    source_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    work = tmp_path_factory.mktemp("fresh-cache")
    return build_package(build_settings(source_snapshot, work / "dist", cache=work / "cache"))
