"""Which tests `make check` runs, and in which order `make test` deals modules to its workers.

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


def is_slow(fixtures: Iterable[str], marks: Iterable[str]) -> bool:
    """fixtures: every fixture the test needs, with those its fixtures need."""
    return bool(PROCESS_FIXTURES.intersection(fixtures) or SLOW_MARKS.intersection(marks))


def run_order(sizes: Mapping[str, int], slow: Mapping[str, bool]) -> list[str]:
    """The order in which workers get whole modules (sizes: module -> number of tests).

    Modules with slow tests first, in the order given, so the longest start early; then the
    others, most tests first, so the workers' last minutes go to small modules.
    """

    def rank(module: str) -> tuple[bool, int]:
        return (not slow[module], 0 if slow[module] else -sizes[module])

    return sorted(sizes, key=rank)
