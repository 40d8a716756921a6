"""App Service entry point, shipped at the package root: the startup command is `python startup.py`.

It runs on the image's bare interpreter with the standard library only, and

1. puts the package root and vendor/ first on PYTHONPATH for its children, which run with
   `python -S` so the image's own site-packages stay out;
2. applies the database migrations in a child process (`python -S startup.py migrate`, also
   handy by hand over SSH), which calls webapp.db.upgrade_database under the webapp's
   PostgreSQL advisory lock, so instances starting together migrate once; a failure exits
   non-zero and App Service restarts the container;
3. replaces itself (exec) with gunicorn serving `webapp:create_app()` on 0.0.0.0:$PORT, so
   gunicorn is the process App Service signals on stop.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENDOR = ROOT / "vendor"
WSGI_APP = "webapp:create_app()"

# -S: no site-packages of the runtime image, so only the package's own code and vendor/ (via
# PYTHONPATH) are importable: whatever the image ships cannot shadow or add to our pins.
ISOLATION_FLAGS = ["-S"]

DEFAULT_PORT = 8000
DEFAULT_THREADS = 4
MAX_DEFAULT_WORKERS = 12  # a big host must not fork more workers than the plan's memory holds
# App Service's own default for Python apps; a cold worker importing the vendor tree from the
# /home network share can take longer than gunicorn's 30 s default.
WORKER_TIMEOUT_SECONDS = 600
# After SIGTERM (restart, scale-in, slot swap), let in-flight requests finish.
GRACEFUL_TIMEOUT_SECONDS = 30
# Longer than the front end's idle reuse of a connection, so gunicorn is not the side that
# closes a connection the proxy is about to send on (a 502 race).
KEEPALIVE_SECONDS = 75

log = logging.getLogger("startup")


class StartupError(RuntimeError):
    """The environment does not allow starting the site; the message names the setting."""


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s [%(process)d] [startup] %(levelname)s %(message)s",
    )
    if argv[1:] == ["migrate"]:
        return migrate()  # the child below: PYTHONPATH already holds vendor/
    env = environment_with_package_paths(os.environ)
    try:
        command = gunicorn_command(env, available_cpus())
    except StartupError as error:
        log.error("cannot start: %s", error)
        return 2
    if not run_migrations_in_child(env):
        return 1
    log.info("starting gunicorn: %s", " ".join(command[1:]))
    os.chdir(ROOT)
    os.execvpe(command[0], command, env)  # noqa: S606 - our interpreter, fixed arguments
    return 0  # not reached: exec replaces this process


def environment_with_package_paths(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for our children: our code and vendor/ ahead of anything in the image."""
    inherited = env.get("PYTHONPATH", "")
    paths = [str(ROOT), str(VENDOR)] + ([inherited] if inherited else [])
    return {**env, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


# --- migrations ------------------------------------------------------------------------------


def run_migrations_in_child(env: Mapping[str, str]) -> bool:
    """Migrate in a throwaway process, so no connection or telemetry thread leaks into gunicorn."""
    log.info("applying database migrations")
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [python_executable(), *ISOLATION_FLAGS, str(ROOT / "startup.py"), "migrate"],
        env=dict(env),
        check=False,
    )
    if result.returncode != 0:
        log.error(
            "database migrations failed (exit code %s): not starting the web server",
            result.returncode,
        )
        return False
    return True


def migrate() -> int:
    # Run by hand (`python startup.py migrate`), nothing has set PYTHONPATH for us.
    for path in (str(VENDOR), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        from webapp import create_app
        from webapp.db import upgrade_database

        upgrade_database(create_app())
    except Exception:
        log.exception("database migrations failed")
        return 1
    log.info("database migrations applied")
    return 0


# --- gunicorn --------------------------------------------------------------------------------


def gunicorn_command(env: Mapping[str, str], cpus: int) -> list[str]:
    port = positive_int(env, "PORT", DEFAULT_PORT)
    if port > 65535:
        raise StartupError(f"PORT must be a TCP port (1-65535), got {port}")
    workers = positive_int(env, "WEB_CONCURRENCY", default_workers(cpus))
    threads = positive_int(env, "GUNICORN_THREADS", DEFAULT_THREADS)
    return [
        python_executable(), *ISOLATION_FLAGS, "-m", "gunicorn",
        "--bind", f"0.0.0.0:{port}",
        "--worker-class", "gthread",
        "--workers", str(workers),
        "--threads", str(threads),
        "--timeout", str(WORKER_TIMEOUT_SECONDS),
        "--graceful-timeout", str(GRACEFUL_TIMEOUT_SECONDS),
        "--keep-alive", str(KEEPALIVE_SECONDS),
        "--access-logfile", "-",
        "--error-logfile", "-",
        # TLS ends at App Service's front end, the only peer that can reach this port: trust
        # its X-Forwarded-Proto so the site knows it is served over https.
        "--forwarded-allow-ips", "*",
        # Gunicorn 25+ opens a control socket under $HOME, which on App Service is the /home
        # share every instance mounts: they would fight over one socket on a network drive.
        "--no-control-socket",
        "--chdir", str(ROOT),
        WSGI_APP,
    ]  # fmt: skip


def default_workers(cpus: int) -> int:
    """Gunicorn's rule of thumb, (2 x cores) + 1, capped for hosts larger than the plan."""
    return min(2 * max(cpus, 1) + 1, MAX_DEFAULT_WORKERS)


def available_cpus() -> int:
    """Cores this container may use: CPU affinity, further limited by a cgroup v2 quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(Path("/sys/fs/cgroup/cpu.max"))
    return max(1, min(cpus, quota)) if quota else cpus


def cgroup_cpu_quota(cpu_max: Path) -> int | None:
    """Whole cores allowed by cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>")."""
    try:
        quota, period = cpu_max.read_text().split()
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return math.ceil(int(quota) / int(period))


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise StartupError(f"{name} must be a whole number greater than zero, got {raw!r}")
    return int(raw)


def python_executable() -> str:
    # The interpreter App Service started us with; our children must be the same one.
    return sys.executable or "python"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
