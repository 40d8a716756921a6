"""App Service entry point, shipped at the package root: the startup command is `python startup.py`.

It runs on the image's bare interpreter with the standard library only, and

1. puts the package root and vendor/ first on PYTHONPATH for its children, which run with
   `python -S` so the image's own site-packages stay out;
2. applies the database migrations in a child process (`python -S startup.py migrate`, also
   handy by hand over SSH), which calls webapp.db.upgrade_database under the webapp's
   PostgreSQL advisory lock, so instances starting together migrate once; a failure exits
   non-zero and App Service restarts the container;
3. starts the orphaned-photo sweeper in the background (`python -S startup.py sweep-loop`):
   every PHOTO_SWEEP_INTERVAL_MINUTES (default 360, 0 turns it off) it runs
   webapp.sweep.sweep_orphaned_photos, which takes a PostgreSQL advisory lock so only one
   instance sweeps at a time; it exits when gunicorn (its parent after the exec) is gone;
4. replaces itself (exec) with gunicorn serving `webapp:create_app()` on 0.0.0.0:$PORT, so
   gunicorn is the process App Service signals on stop.

Why a background process and not a WebJob: WebJobs on Linux App Service are a preview
feature, and the sweep needs exactly what the site has here (its settings, managed identity,
network path to the private PostgreSQL and storage, and vendor/). Every instance runs one;
the advisory lock, not the schedule, keeps them from sweeping at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
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

# The orphaned-photo sweep: often enough that failed uploads do not pile up, rarely enough to
# cost nothing. The first round waits a random part of the interval, so instances started
# together spread out.
DEFAULT_SWEEP_INTERVAL_MINUTES = 360
# How often the sweeper checks that gunicorn (its parent) still runs.
PARENT_CHECK_SECONDS = 30.0

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
    if argv[1:] == ["sweep-loop"]:
        return sweep_loop(os.environ)
    env = environment_with_package_paths(os.environ)
    try:
        command = gunicorn_command(env, available_cpus())
        sweep_interval = sweep_interval_seconds(env)
    except StartupError as error:
        log.error("cannot start: %s", error)
        return 2
    if not run_migrations_in_child(env):
        return 1
    start_photo_sweeper(env, sweep_interval)
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


# --- the orphaned-photo sweep ----------------------------------------------------------------


def sweep_interval_seconds(env: Mapping[str, str]) -> float:
    """PHOTO_SWEEP_INTERVAL_MINUTES in seconds; 0 means no sweeping on this instance."""
    raw = env.get("PHOTO_SWEEP_INTERVAL_MINUTES", "").strip()
    if not raw:
        return DEFAULT_SWEEP_INTERVAL_MINUTES * 60.0
    if not raw.isdigit():
        raise StartupError(
            f"PHOTO_SWEEP_INTERVAL_MINUTES must be a whole number of minutes (0 turns the "
            f"sweep off), got {raw!r}")
    return int(raw) * 60.0


def start_photo_sweeper(env: Mapping[str, str], interval: float) -> subprocess.Popen | None:
    """Start the sweeper child; it outlives this process's exec and follows gunicorn's life."""
    if interval <= 0:
        log.info("orphaned-photo sweep turned off (PHOTO_SWEEP_INTERVAL_MINUTES=0)")
        return None
    log.info("orphaned-photo sweep every %.0f minutes", interval / 60)
    return subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [python_executable(), *ISOLATION_FLAGS, str(ROOT / "startup.py"), "sweep-loop"],
        env=dict(env),
    )


def sweep_loop(env: Mapping[str, str]) -> int:
    """The sweeper child: sweep every interval while the parent (gunicorn) runs."""
    for path in (str(VENDOR), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from webapp import create_app
    from webapp.sweep import sweep_orphaned_photos

    parent = os.getppid()
    _exit_with_parent()
    app = create_app()
    sweep_periodically(
        lambda: sweep_orphaned_photos(app),
        interval=sweep_interval_seconds(env),
        parent_alive=lambda: os.getppid() == parent,
    )
    log.info("gunicorn is gone: the photo sweeper stops")
    return 0


def _exit_with_parent() -> None:
    """Ask Linux to SIGTERM us when gunicorn exits, so no sweeper outlives the site.

    (The parent check in sweep_periodically is the fallback where prctl is unavailable.)
    """
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def sweep_periodically(
    sweep: Callable[[], object],
    interval: float,
    parent_alive: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    first_delay: float | None = None,
) -> None:
    """Call `sweep` every `interval` seconds until the parent is gone; a failed round is logged
    and the next one tried (storage or PostgreSQL may just be down for a while)."""
    wait = random.uniform(0, interval) if first_delay is None else first_delay  # noqa: S311
    while True:
        while wait > 0:
            if not parent_alive():
                return
            step = min(wait, PARENT_CHECK_SECONDS)
            sleep(step)
            wait -= step
        if not parent_alive():
            return
        try:
            sweep()
        except Exception:
            log.exception("orphaned-photo sweep failed; trying again next round")
        wait = interval


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
