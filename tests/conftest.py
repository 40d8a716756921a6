"""Fixtures shared by every test folder: real PostgreSQL and Azurite, started once per run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import os

import pytest

from devtools.services import AzuriteServer, PostgresCluster

# Tests that run `make` expect what a contributor's shell prints. Under `make test` the outer
# make exports its level and flags, and a nested make would then announce every directory it
# enters and join the outer job server.
for variable in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
    os.environ.pop(variable, None)


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    """A scratch folder other OS users can walk into (PostgreSQL runs as `postgres` under root)."""
    path = Path(tempfile.mkdtemp(prefix="restaurant-review-tests-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(services_dir: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(services_dir / "postgres", durable=False).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    server = AzuriteServer(data_dir=None).start()
    yield server
    server.stop()
