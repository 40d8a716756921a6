"""Builds of the deploy package, shared by the release tests (each build runs once per session).

Every build starts from one snapshot of webapp/ taken at the start of the run, so edits made to
the working tree while the tests run cannot make two builds differ. The snapshot and the `make
package` build are made once per run and shared by xdist's workers. `package` goes through the
real command line with the repository's vendor cache; `package_from_fresh_cache` vendors again
from scratch into a private cache, so comparing the two proves pip's output itself is
reproducible, not just our zip writer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from release.build import DEFAULT_PYTHON_VERSION, build_package
from tests.release.app_service import can_import_flask, python_version_of
from tests.release.package_builds import (
    REPO_CACHE,
    REPO_ROOT,
    build_settings,
    copy_sources,
    once_per_run,
)


@pytest.fixture(scope="session")
def source_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return once_per_run(tmp_path_factory, "source-snapshot",
                        lambda folder: copy_sources(REPO_ROOT, folder))


@pytest.fixture(scope="session")
def build_output(
    source_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The package as `make package` builds it, and what the command printed."""

    def build(folder: Path) -> None:
        command = [sys.executable, "-m", "release.build", "--source", str(source_snapshot),
                   "--dist", str(folder / "dist"), "--cache", str(REPO_CACHE)]  # fmt: skip
        result = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, result.stderr
        (folder / "stdout.txt").write_text(result.stdout)

    built = once_per_run(tmp_path_factory, "package-cli", build)
    zip_path = built / "dist" / f"webapp-py{DEFAULT_PYTHON_VERSION}.zip"
    return zip_path, (built / "stdout.txt").read_text()


@pytest.fixture(scope="session")
def package(build_output: tuple[Path, str]) -> Path:
    return build_output[0]


@pytest.fixture(scope="session")
def package_from_fresh_cache(
    source_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    work = tmp_path_factory.mktemp("fresh-cache")
    return build_package(build_settings(source_snapshot, work / "dist", cache=work / "cache"))


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CPython of the package's version with no third-party packages at all.

    The system interpreter when it is bare, else a fresh venv without pip (which does not see
    the base interpreter's site-packages).
    """
    version = DEFAULT_PYTHON_VERSION
    for candidate in (f"/usr/bin/python{version}", "/usr/bin/python3"):
        usable = os.access(candidate, os.X_OK) and python_version_of(candidate) == version
        if usable and not can_import_flask(candidate):
            return Path(candidate)
    base = getattr(sys, "_base_executable", sys.executable)
    if python_version_of(base) != version:
        pytest.fail(f"no CPython {version} on this machine to boot the package with")
    venv = tmp_path_factory.mktemp("bare-python")
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def python_on_path(bare_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `python` is the bare interpreter, as in App Service's runtime image."""
    if (bare_python.parent.parent / "pyvenv.cfg").is_file():
        return bare_python.parent  # a venv's python finds its pyvenv.cfg only from its own folder
    folder = tmp_path_factory.mktemp("image-bin")
    (folder / "python").symlink_to(bare_python)
    return folder
