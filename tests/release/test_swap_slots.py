"""The slot swap gate, offline: a local HTTP server plays both slots, a fake `az` records calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SWAP_ARGS = [
    "webapp", "deployment", "slot", "swap", "--resource-group", "rg-review",
    "--name", "app-review", "--slot", "staging", "--target-slot", "production",
]  # fmt: skip

FAKE_AZ = """\
import json, os, sys
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["webapp", "show"]:
    print(os.environ.get("FAKE_AZ_HOST", ""))
if os.environ.get("FAKE_AZ_FAIL_ON") in sys.argv:
    print("ERROR: (Conflict) the slot is busy", file=sys.stderr)
    sys.exit(3)
"""


class Slots:
    """Scripted health answers per path: each probe takes the next status, the last one sticks."""

    def __init__(self) -> None:
        self.script: dict[str, list[int]] = {}
        self.hits: dict[str, int] = {}

    def answer(self, path: str) -> int:
        self.hits[path] = self.hits.get(path, 0) + 1
        statuses = self.script[path]
        return statuses.pop(0) if len(statuses) > 1 else statuses[0]


@pytest.fixture
def slots() -> Iterator[tuple[Slots, str]]:
    state = Slots()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(state.answer(self.path))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the loop's next poll: 0.05 s instead of the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_az(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "az"
    script.write_text(f"#!{sys.executable}\n{FAKE_AZ}")
    script.chmod(0o755)
    log = tmp_path / "az-calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AZ_LOG": str(log),
    }
    return log, env


def run_swap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "release.swap_slots", "-g", "rg-review", "-n", "app-review"]
    return subprocess.run(
        [*command, "--interval", "0.01", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def az_calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def urls(base: str) -> list[str]:
    return ["--staging-url", f"{base}/staging", "--production-url", f"{base}/production"]


def test_swaps_once_staging_turns_healthy(slots, fake_az):
    state, base = slots
    log, env = fake_az
    state.script = {"/staging": [503, 503, 200], "/production": [200]}

    result = run_swap(env, *urls(base), "--attempts", "5")

    assert result.returncode == 0, result.stderr
    assert state.hits == {"/staging": 3, "/production": 1}
    assert az_calls(log) == [SWAP_ARGS]


def test_unhealthy_staging_is_never_swapped(slots, fake_az):
    state, base = slots
    log, env = fake_az
    state.script = {"/staging": [500], "/production": [200]}

    result = run_swap(env, *urls(base), "--attempts", "3")

    assert result.returncode == 1
    assert "slot staging never answered 200" in result.stderr
    assert state.hits == {"/staging": 3}
    assert az_calls(log) == []


def test_unhealthy_production_after_swap_is_swapped_back(slots, fake_az):
    state, base = slots
    log, env = fake_az
    state.script = {"/staging": [200], "/production": [502]}

    result = run_swap(env, *urls(base), "--attempts", "2")

    assert result.returncode == 1
    assert "swapped back" in result.stderr
    assert az_calls(log) == [SWAP_ARGS, SWAP_ARGS]


def test_no_rollback_leaves_the_failed_swap(slots, fake_az):
    state, base = slots
    log, env = fake_az
    state.script = {"/staging": [200], "/production": [502]}

    result = run_swap(env, *urls(base), "--attempts", "2", "--no-rollback")

    assert result.returncode == 1
    assert "unhealthy after the swap" in result.stderr
    assert az_calls(log) == [SWAP_ARGS]


def test_failed_az_swap_is_reported_with_its_error(slots, fake_az):
    state, base = slots
    log, env = fake_az
    state.script = {"/staging": [200], "/production": [200]}

    result = run_swap({**env, "FAKE_AZ_FAIL_ON": "swap"}, *urls(base))

    assert result.returncode == 1
    assert "slot swap" in result.stderr and "the slot is busy" in result.stderr
    assert state.hits == {"/staging": 1}  # production is not probed after a failed swap


def test_platform_warmup_only_swaps_through_arm_without_probing(fake_az):
    log, env = fake_az
    # No host answers: any probe or host look-up would show in the calls or fail the run.
    result = run_swap({**env, "FAKE_AZ_HOST": "127.0.0.1:9"}, "--platform-warmup-only")

    assert result.returncode == 0, result.stderr
    assert az_calls(log) == [SWAP_ARGS]
    assert "warm-up" in result.stdout and "health" in result.stdout


def test_platform_warmup_only_reports_a_failed_swap(fake_az):
    log, env = fake_az
    result = run_swap({**env, "FAKE_AZ_FAIL_ON": "swap"}, "--platform-warmup-only")

    assert result.returncode == 1
    assert "the slot is busy" in result.stderr
    assert az_calls(log) == [SWAP_ARGS]


def test_platform_warmup_only_refuses_probe_options():
    result = run_swap(dict(os.environ), "--platform-warmup-only", "--no-rollback")
    assert result.returncode == 2 and "probes nothing" in result.stderr


def test_host_names_come_from_az_per_slot(fake_az):
    log, env = fake_az
    # The fake host does not answer https, so the gate must stop before any swap.
    result = run_swap({**env, "FAKE_AZ_HOST": "127.0.0.1:9"}, "--attempts", "1")

    assert result.returncode == 1
    assert "https://127.0.0.1:9/readyz" in result.stderr
    show = ["webapp", "show", "--resource-group", "rg-review", "--name", "app-review"]
    query = ["--query", "defaultHostName", "--output", "tsv"]
    assert az_calls(log) == [[*show, "--slot", "staging", *query], [*show, *query]]


def test_missing_az_cli_is_a_clear_error(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # a folder without az

    result = run_swap(env)

    assert result.returncode == 1
    assert "az CLI is not on PATH" in result.stderr


def test_help_and_argument_errors():
    result = run_swap(dict(os.environ), "--help")
    assert result.returncode == 0 and "/readyz" in result.stdout and "az CLI" in result.stdout

    result = run_swap(dict(os.environ), "--slot", "production")
    assert result.returncode == 2 and "must differ" in result.stderr

    result = run_swap(dict(os.environ), "--attempts", "0")
    assert result.returncode == 2 and "above zero" in result.stderr

    result = run_swap(dict(os.environ), "--staging-url", "file:///etc/passwd")
    assert result.returncode == 2 and "http(s)://" in result.stderr
