"""Which tests `make check` runs, and how `make test` deals the suite out to its workers.

Plain functions of fixture names, marks and module names; tests/conftest.py applies them to the
collected tests. A test is slow when it needs a fixture that starts a server or another program
(directly or through another fixture) or carries a slow mark, so a new test lands in the right
bucket by what it asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Fixtures that start PostgreSQL, Azurite, pip or a bare interpreter. A new fixture that starts a
# program belongs here; a test that starts one itself carries @pytest.mark.slow.
PROCESS_FIXTURES = frozenset({
    "services_dir", "postgres", "azurite",
    "build_output", "package_from_fresh_cache", "bare_python",
})
SLOW_MARKS = frozenset({"slow", "browser"})  # browser: headless Chromium
# Built once per worker and shared by the tests that ask for them: their modules share a worker.
PACKAGE_FIXTURES = frozenset({"build_output", "package_from_fresh_cache"})
PACKAGE_GROUP = "deploy-package"


def is_slow(fixtures: Iterable[str], marks: Iterable[str]) -> bool:
    """fixtures: every fixture the test needs, with those its fixtures need."""
    return bool(PROCESS_FIXTURES.intersection(fixtures) or SLOW_MARKS.intersection(marks))


def worker_group(fixtures_per_test: Iterable[Iterable[str]], module: str) -> str:
    """The worker group of a module, from the fixtures of each of its tests.

    A module's tests run on one worker, so its module fixtures start once; every module that
    needs the deploy package joins one group, so the package is built once.
    """
    if any(PACKAGE_FIXTURES.intersection(fixtures) for fixtures in fixtures_per_test):
        return PACKAGE_GROUP
    return module


def run_order(modules: Iterable[str], slow: Mapping[str, bool]) -> list[str]:
    """Modules with slow tests first, so the longest start early and quick ones fill the end;
    otherwise in the order given."""
    return sorted(modules, key=lambda module: not slow[module])
