"""`make dev`: the whole site on http://127.0.0.1:8000 with its own PostgreSQL and Azurite.

PostgreSQL's cluster, Azurite's blobs, the app role's password and the Flask SECRET_KEY live in
.local/ (git-ignored), so data and sessions survive restarts. The site runs under Flask's
development server with the reloader, in a process group of its own. Ctrl-C (SIGINT) or SIGTERM
stops the site, Azurite and PostgreSQL, in that order, and nothing else.

    .venv/bin/python -m devtools.dev [--data-dir .local] [--port 8000]
    make dev DEV_PORT=8001                      # when port 8000 is taken
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devtools.readiness import NotReadyError, wait_for_http_ok
from devtools.services import (
    REPO_ROOT,
    AzuriteServer,
    PostgresCluster,
    ServiceError,
    free_port,
    persistent_cluster_dir,
    port_is_open,
)
from devtools.site_setup import SiteSetupError, child_environment, flask_command, prepare_site

APP_DATABASE = "restaurant_review"  # also the name of its owner role
DEFAULT_SITE_PORT = 8000
# Fixed ports when free make the services easy to reach from other tools between restarts.
PREFERRED_POSTGRES_PORT = 5433
PREFERRED_AZURITE_PORT = 10000
SITE_READY_TIMEOUT = 60.0
SITE_STOP_TIMEOUT = 10.0


class DevLoopError(RuntimeError):
    """The dev loop cannot start; the message says what to do."""


class ShutdownRequested(Exception):
    """Raised in the main thread by the SIGINT/SIGTERM handler."""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return run(args.data_dir.resolve(), args.port)
    except (DevLoopError, NotReadyError, ServiceError, SiteSetupError) as failure:
        print(f"make dev: {failure}", file=sys.stderr, flush=True)
        return 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.dev",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".local",
                        help="where PostgreSQL, Azurite and the secrets persist (default: .local)")
    parser.add_argument("--port", type=int,
                        default=os.environ.get("DEV_PORT", str(DEFAULT_SITE_PORT)),
                        help="the site's port on 127.0.0.1 (default: $DEV_PORT or 8000)")
    return parser.parse_args(argv)


def run(data_dir: Path, site_port: int) -> int:
    """Start everything, serve until a signal or the site exits, then stop what was started."""
    if port_is_open(site_port):
        raise DevLoopError(
            f"port {site_port} on 127.0.0.1 is already in use (another `make dev`?): stop that "
            "process, or pick another port: `make dev DEV_PORT=8001`"
        )
    _prepare_data_dir(data_dir)

    def start(started: contextlib.ExitStack) -> subprocess.Popen:
        postgres, azurite = _start_services(started, data_dir)
        environment = _prepare_site(postgres, azurite, data_dir)
        site = start_site(started, environment, site_port)
        _print_banner(site_port, postgres, azurite, data_dir)
        return site

    return serve_until_stopped(start)


def serve_until_stopped(start: Callable[[contextlib.ExitStack], subprocess.Popen]) -> int:
    """Run `start` (which registers how to stop what it starts) and wait for the site it
    returns; a signal or the site's exit stops everything, in reverse order."""
    _install_signal_handlers()
    with contextlib.ExitStack() as started:
        try:
            return start(started).wait()
        except ShutdownRequested:
            return 0
        finally:
            _ignore_further_signals()
            print("\nStopping…", flush=True)


# services ----------------------------------------------------------------------------------


def _prepare_data_dir(data_dir: Path) -> None:
    # Only we need to enter it: root's PostgreSQL keeps its cluster elsewhere (see
    # devtools.services.persistent_cluster_dir), so a checkout under /root works as well.
    data_dir.mkdir(parents=True, exist_ok=True)


def _start_services(started: contextlib.ExitStack,
                    data_dir: Path) -> tuple[PostgresCluster, AzuriteServer]:
    postgres = PostgresCluster(persistent_cluster_dir(data_dir),
                               port=_preferred_port(PREFERRED_POSTGRES_PORT))
    # Registered before starting: a signal during start-up must still stop the server.
    started.callback(_announce_stop, "PostgreSQL", postgres.stop)
    _start_postgres(postgres)
    azurite = AzuriteServer(data_dir / "azurite", port=_preferred_port(PREFERRED_AZURITE_PORT))
    started.callback(_announce_stop, "Azurite", azurite.stop)
    azurite.start()
    return postgres, azurite


def _start_postgres(cluster: PostgresCluster) -> None:
    if (cluster.data_dir / "postmaster.pid").exists():
        # A previous run was killed before it could clean up: stop its server (it is ours,
        # in our data folder). A stale pid file of a dead server makes pg_ctl stop fail, and
        # PostgreSQL then removes that file itself on start.
        with contextlib.suppress(ServiceError):
            cluster.stop()
    cluster.start()


def _preferred_port(port: int) -> int:
    return free_port() if port_is_open(port) else port


def _prepare_site(postgres: PostgresCluster, azurite: AzuriteServer,
                  data_dir: Path) -> dict[str, str]:
    """Role, database, container and schema, with the secrets kept in the data folder."""
    return prepare_site(postgres, azurite, APP_DATABASE,
                        password=persistent_secret(data_dir / "postgres_password"),
                        secret_key=persistent_secret(data_dir / "secret_key"))


def persistent_secret(path: Path) -> str:
    """A random value created on first use and kept (owner-only) for later runs."""
    kept = path.read_text().strip() if path.exists() else ""
    if kept:
        return kept
    value = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.chmod(0o600)  # also when an empty file was left behind with other permissions
    path.write_text(value + "\n")
    return value


# the site ----------------------------------------------------------------------------------


def start_site(started: contextlib.ExitStack, environment: dict[str, str],
                port: int) -> subprocess.Popen:
    # A session of its own: the reloader's parent and child are stopped together, by group.
    site = subprocess.Popen(
        flask_command("run", "--host", "127.0.0.1", "--port", str(port), "--debug",
                      "--exclude-patterns", _not_the_site()),
        cwd=REPO_ROOT, env={**child_environment(environment), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    started.callback(_announce_stop, "the site", lambda: _stop_site(site))
    wait_for_http_ok(site, f"http://127.0.0.1:{port}/healthz", SITE_READY_TIMEOUT)
    return site


def _not_the_site() -> str:
    """Reloader exclusions: the reloader watches every .py under the repository, but only
    webapp/ changes the running site (infra/ and tests/ change often while developing)."""
    folders = [path for path in REPO_ROOT.iterdir()
               if path.is_dir() and path.name != "webapp" and not path.name.startswith(".")]
    return os.pathsep.join(f"{folder}{os.sep}*" for folder in folders)


def _stop_site(site: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(site.pid, signal.SIGTERM)
    try:
        site.wait(timeout=SITE_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(site.pid, signal.SIGKILL)
        site.wait()


def _print_banner(port: int, postgres: PostgresCluster, azurite: AzuriteServer,
                  data_dir: Path) -> None:
    lines = [
        "",
        f"  Site:        http://127.0.0.1:{port}",
        f"  PostgreSQL:  psql postgresql://{PostgresCluster.SUPERUSER}@127.0.0.1:{postgres.port}"
        f"/{APP_DATABASE}",
        f"  Azurite:     {azurite.blob_endpoint}",
        f"  Data:        {data_dir}",
        *([f"               PostgreSQL's cluster: {postgres.data_dir}"]
          if not postgres.data_dir.is_relative_to(data_dir) else []),
        "  Ctrl-C stops the site, Azurite and PostgreSQL.",
        "",
    ]
    print("\n".join(lines), flush=True)


# signals -----------------------------------------------------------------------------------


def _install_signal_handlers() -> None:
    def request_shutdown(signum: int, _frame: object) -> None:
        raise ShutdownRequested(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, request_shutdown)
    signal.signal(signal.SIGTERM, request_shutdown)


def _ignore_further_signals() -> None:
    # A second Ctrl-C must not cut the clean-up short and leave servers behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _announce_stop(name: str, stop) -> None:
    print(f"  stopping {name}", flush=True)
    try:
        stop()
    except (ServiceError, OSError) as failure:
        # Keep going: the other services must still be stopped.
        print(f"  could not stop {name} cleanly: {failure}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
