"""Helpers shared by the packaging tests and their fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

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


def copy_sources(source_root: Path, destination: Path) -> Path:
    """A copy of the site's sources in another folder, as a second checkout would be."""
    shutil.copytree(
        source_root / "webapp",
        destination / "webapp",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return destination
