"""Helpers shared by the release tests and their fixtures."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from release.build import DEFAULT_PYTHON_VERSION, BuildSettings, default_lock_path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The repository's vendor cache, as `make package` uses it: a second test run skips pip.
REPO_CACHE = REPO_ROOT / "build"


def build_settings(
    source: Path, dist: Path, cache: Path = REPO_CACHE, **overrides: object
) -> BuildSettings:
    values = {
        "source_root": source,
        "dist_dir": dist,
        "cache_dir": cache,
        "python_version": DEFAULT_PYTHON_VERSION,
        "source_date_epoch": 315532800,
        "lock_file": default_lock_path(DEFAULT_PYTHON_VERSION),
    }
    return BuildSettings(**{**values, **overrides})


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, fill: Callable[[Path], object]
) -> Path:
    """A folder that `fill` fills once per test run, even when xdist's workers all ask for it.

    Each xdist worker has a base temporary folder of its own inside the run's: the first worker
    to ask fills <run's folder>/<name> while it holds a lock, the others wait, then reuse it.
    """
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent
    folder, complete = root / name, root / f"{name}.complete"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not complete.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way
            folder.mkdir()
            fill(folder)
            complete.touch()
    return folder


def copy_sources(source_root: Path, destination: Path) -> Path:
    """A copy of the site's sources in another folder, as a second checkout would be."""
    shutil.copytree(
        source_root / "webapp",
        destination / "webapp",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return destination
