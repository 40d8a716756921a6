"""Fixtures shared by every test folder: real PostgreSQL and Azurite, started once per run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.services import AzuriteServer, PostgresCluster
from tests.fast_loop import is_slow, run_order

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


# --- the fast loop (tests/fast_loop.py): the slow mark, and the order modules run in -----------

def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(_module(item), []).append(item)
        if is_slow(item.fixturenames, (mark.name for mark in item.iter_markers())):
            item.add_marker(pytest.mark.slow)
    slow = {module: any(item.get_closest_marker("slow") for item in members)
            for module, members in by_module.items()}
    # xdist (--dist loadscope --no-loadscope-reorder) deals whole modules out in this order.
    sizes = {module: len(members) for module, members in by_module.items()}
    rank = {module: index for index, module in enumerate(run_order(sizes, slow))}
    items.sort(key=lambda item: rank[_module(item)])  # stable: each module keeps its own order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A selection that matches nothing (a mistyped path or -m) must fail loudly, not end in
    # pytest's exit code 5 that a caller may take for "nothing to do".
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line("error: no tests were selected", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
