"""The suite's buckets (tests/fast_loop.py, applied by tests/conftest.py): what `make check`
leaves out, and the order in which `make test` deals modules out to its workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fast_loop import is_slow, run_order

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("fixtures", [
    {"client", "app", "database", "postgres"},  # postgres through the app's fixtures
    {"blob_service", "azurite"},
    {"dev_data_dir", "services_dir"},
    {"package", "build_output", "source_snapshot"},
    {"package_from_fresh_cache"},
    {"python_on_path", "bare_python"},
])
def test_a_test_needing_a_service_or_a_program_is_slow(fixtures):
    assert is_slow(fixtures, marks=())


@pytest.mark.parametrize("marks", [{"browser"}, {"slow"}, {"parametrize", "slow"}])
def test_a_slow_or_browser_mark_makes_a_test_slow(marks):
    assert is_slow({"tmp_path"}, marks)


def test_a_test_on_mocks_and_temporary_files_is_fast():
    assert not is_slow({"stack_view", "tmp_path", "monkeypatch", "request"}, {"parametrize"})


def test_modules_with_slow_tests_run_first_in_order_then_the_largest_quick_ones():
    sizes = {"a": 3, "b": 1, "c": 9, "d": 5, "e": 3}
    slow = {"a": False, "b": True, "c": False, "d": True, "e": False}
    assert run_order(sizes, slow) == ["b", "d", "c", "a", "e"]


def pytest_in_subprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow  # a pytest of its own
def test_make_checks_selection_leaves_out_the_tests_on_real_services():
    result = pytest_in_subprocess("--collect-only", "-q", "-m", "not slow",
                                  "tests/devtools/test_services.py")
    assert result.returncode == 0, result.stdout + result.stderr
    selected = {line.split("::")[1] for line in result.stdout.splitlines() if "::" in line}
    assert "test_azurite_oauth_without_https_is_refused" in selected  # starts nothing
    assert "test_postgres_database_lifecycle" not in selected  # the postgres fixture
    assert "test_azurite_round_trips_a_blob" not in selected  # the azurite fixture
    assert "test_azurite_stops_promptly" not in selected  # services_dir: its own Azurite


@pytest.mark.slow  # a pytest of its own
def test_a_selection_of_no_tests_fails_instead_of_exiting_5():
    result = pytest_in_subprocess("-q", "-m", "slow and not slow", "tests/test_fast_loop.py")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "no tests were selected" in result.stdout
