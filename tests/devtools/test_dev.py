"""`make dev` end to end: serves the site, keeps data across restarts, stops all it started."""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from devtools.dev import APP_DATABASE
from devtools.services import REPO_ROOT, PostgresCluster, free_port

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


class DevLoop:
    """`python -m devtools.dev` as a child process, its output read line by line."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.dev", "--data-dir", str(data_dir),
             "--port", str(port)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, prefix: str) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
            if line.strip().startswith(prefix):
                return line.strip()
        self.stop(signal.SIGTERM)
        pytest.fail(f"`make dev` never printed {prefix!r}:\n{''.join(self.output)}")

    def postgres_port(self) -> int:
        line = self.wait_for_line("PostgreSQL:")
        return int(line.rsplit(":", 1)[1].split("/")[0])

    def service_pids(self) -> set[int]:
        """The processes `make dev` is responsible for: its descendants and the postmaster."""
        postmaster = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        return descendants(self.process.pid) | {postmaster}

    def stop(self, signum: int) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue  # the process ended while we looked
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = set(), [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def superuser_cursor(postgres_port: int):
    """An autocommit cursor in the site's database, as the dev cluster's trusted superuser."""
    with contextlib.closing(psycopg2.connect(host="127.0.0.1", port=postgres_port,
                                             user=PostgresCluster.SUPERUSER,
                                             dbname=APP_DATABASE)) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            yield cursor


def site_is_healthy(port: int) -> bool:
    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_serves_the_site_keeps_data_across_restarts_and_stops_everything(services_dir):
    data_dir = services_dir / "dev-loop"
    port = free_port()

    first = DevLoop(data_dir, port)
    postgres_port = first.postgres_port()
    first.wait_for_line("Ctrl-C")
    assert site_is_healthy(port)
    with superuser_cursor(postgres_port) as cursor:
        cursor.execute("CREATE TABLE kept_across_restarts (note text)")
        cursor.execute("INSERT INTO kept_across_restarts VALUES ('still here')")
    secret_key = (data_dir / "secret_key").read_text()
    started = first.service_pids()
    commands = " ".join(command_line(pid) for pid in started)
    assert all(name in commands for name in ("azurite-blob", "flask", "postgres"))

    assert first.stop(signal.SIGINT) == 0, "".join(first.output)
    assert not [pid for pid in started if is_running(pid)]
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    second = DevLoop(data_dir, port)
    postgres_port = second.postgres_port()
    second.wait_for_line("Ctrl-C")
    assert site_is_healthy(port)
    with superuser_cursor(postgres_port) as cursor:
        cursor.execute("SELECT note FROM kept_across_restarts")
        assert cursor.fetchall() == [("still here",)]
    assert (data_dir / "secret_key").read_text() == secret_key
    assert (data_dir / "secret_key").stat().st_mode & 0o077 == 0
    started = second.service_pids()

    assert second.stop(signal.SIGTERM) == 0, "".join(second.output)
    assert not [pid for pid in started if is_running(pid)]


def test_a_taken_site_port_is_a_clear_error_before_anything_starts(services_dir):
    data_dir = services_dir / "dev-loop-port-taken"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devtools.dev", "--data-dir", str(data_dir), "--port",
             str(port)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "make dev DEV_PORT=" in result.stderr  # says how to pick another port
    assert not data_dir.exists()  # nothing was started or created
