"""`make chaos`: the site under load while PostgreSQL and Blob Storage fail, one fault at a time.

Real PostgreSQL and Azurite (with a data folder, so blobs survive its restart) in a temp
folder, the site under gunicorn (gthread, like App Service), and a bounded pool of client
threads on loopback: home page, details page, photo, photo revalidation (If-None-Match), and
new reviews with and without a photo. After a quiet baseline each fault runs in turn:

- PostgreSQL restarted (fast shutdown, then start);
- PostgreSQL paused: every server process SIGSTOPped for the fault time, then SIGCONT;
- Blob Storage down: Azurite stopped, started again after the fault time;
- Blob Storage paused: Azurite SIGSTOPped for the fault time.

Prints one row per phase: requests, 503s, other errors, the slowest answer as the site timed it
(gunicorn's access log) and as the client saw it, when the dependency itself answered a direct
request again after the fault ended, and the recovery time: from that moment to the end of the
last failed answer to a request sent after it. Exits 1 when any of these fail: an answer
neither expected nor a 503 (or a request without an answer), a site answer slower than the
budget, a failure to a request sent later than 2 s after the dependency answered again, an
accepted review missing from the database or its photo bytes, a refused review visible.

    .venv/bin/python -m devtools.chaos [--fault-seconds 5] [--clients 12] [--budget 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from azure.storage.blob import BlobServiceClient
from PIL import Image

from devtools.readiness import NotReadyError, wait_for_http_ok
from devtools.seeding import sample_photos, seed, upload_photos
from devtools.services import REPO_ROOT, AzuriteServer, PostgresCluster, ServiceError, free_port
from devtools.site_setup import PHOTO_CONTAINER, child_environment, prepare_site
from webapp.images import DecodeBudget, ValidatedPhoto, validate_photo
from webapp.storage import photo_name_for

SITE_DATABASE = "chaos"  # also its owner role
RESTAURANTS = 10
REVIEWS_PER_RESTAURANT = 3
DEFAULT_BUDGET_SECONDS = 3.0
# A request sent this long after the dependency returned must succeed.
RECOVERY_LIMIT_SECONDS = 2.0
GUNICORN_WORKERS = 2
# At least as many threads per worker as clients: however the clients' keep-alive connections
# spread over the workers, no request waits in a worker's queue behind one stuck on a fault,
# so a client's latency is the site's own answer time.
GUNICORN_THREADS = 16
# Long enough to see the hangs the budget exists to prevent, short enough to end the run.
CLIENT_TIMEOUT_SECONDS = 30.0
SERVER_READY_TIMEOUT = 60.0
# Answers the site gives when all is well; 503 is the only acceptable failure.
EXPECTED_STATUSES = {200, 303, 304}
UNAVAILABLE = 503
REQUEST_ID_HEADER = "X-Chaos-Id"
# gunicorn's access log: the request id, then the site's answer time in seconds.
ACCESS_LOG_FORMAT = "%({x-chaos-id}i)s %(L)s"
WARM_UP_ATTEMPTS = 10
PROBE_INTERVAL_SECONDS = 0.05
PROBE_TIMEOUT = 0.5


class ChaosError(RuntimeError):
    """The harness itself could not run (a service did not start...)."""


# what the clients saw --------------------------------------------------------------------


@dataclass
class WriteAttempt:
    marker: str  # unique text in the review, to find it in the database
    photo: bytes | None
    photo_name: str | None
    stored_photo: bytes | None = None  # what the site stores for `photo`: a fresh encoding


@dataclass
class Sample:
    request_id: str
    kind: str
    started: float
    finished: float
    status: int | None  # None: no HTTP answer at all
    error: str | None = None  # exception class when there was no answer
    write: WriteAttempt | None = None
    # The site's own answer time from gunicorn's access log (None: the site never logged it).
    server_seconds: float | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def failed(self) -> bool:
        return self.status not in EXPECTED_STATUSES

    @property
    def unexpected(self) -> bool:
        """Neither a normal answer nor the 503 page: a defect whatever the fault."""
        return self.failed and self.status != UNAVAILABLE


@dataclass(frozen=True)
class SiteFixtures:
    restaurant_ids: list[int]
    photo_names: list[str]


def unique_png() -> bytes:
    """A small PNG no other upload shares (random pixels), so its blob is this review's own."""
    image = Image.frombytes("RGB", (8, 8), os.urandom(8 * 8 * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stored_form_of(photo: bytes) -> ValidatedPhoto:
    """What the site stores for an uploaded photo (webapp/images.py re-encodes it)."""
    return validate_photo(photo, len(photo), DecodeBudget(64 * 1024 * 1024, 0))


class LoadGenerator:
    """`clients` threads, each with its own session, sending the site's traffic mix in a loop."""

    MIX = ("home", "details", "photo", "home", "details", "revalidate", "review", "home",
           "photo", "details", "review_photo")

    def __init__(self, base_url: str, fixtures: SiteFixtures, clients: int) -> None:
        self.base_url = base_url
        self.fixtures = fixtures
        self.clients = clients
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the clients; returns once each has seen the details page (the site is warm)."""
        self._ready = threading.Barrier(self.clients + 1)
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            self._ready.wait(timeout=60)
        except threading.BrokenBarrierError:
            raise ChaosError("the clients could not load the details page") from None

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_SECONDS + 5)

    def _client(self, index: int) -> None:
        chooser = random.Random(index)  # noqa: S311 - a traffic mix, not a secret
        with requests.Session() as session:
            try:
                self._warm_up(session)
            except (ChaosError, requests.RequestException):
                self._ready.abort()
                return
            self._ready.wait()
            step = index
            while not self._stop.is_set():
                kind = self.MIX[step % len(self.MIX)]
                step += 1
                self._record(self._send(session, kind, chooser))

    def _warm_up(self, session: requests.Session) -> None:
        """Wait until the details page answers: faults start on a warm site, not a cold one."""
        restaurant = self.fixtures.restaurant_ids[0]
        for _attempt in range(WARM_UP_ATTEMPTS):
            page = session.get(f"{self.base_url}/restaurants/{restaurant}", timeout=10)
            if page.status_code == 200:
                return
            time.sleep(0.5)
        raise ChaosError(f"the details page answered {page.status_code} before any fault")

    def _send(self, session: requests.Session, kind: str, chooser: random.Random) -> Sample:
        restaurant = chooser.choice(self.fixtures.restaurant_ids)
        photo = chooser.choice(self.fixtures.photo_names)
        write = None
        request_id = uuid.uuid4().hex
        request: dict = {"method": "GET", "headers": {REQUEST_ID_HEADER: request_id}}
        if kind == "home":
            request["url"] = self.base_url + "/"
        elif kind == "details":
            request["url"] = f"{self.base_url}/restaurants/{restaurant}"
        elif kind in ("photo", "revalidate"):
            request["url"] = f"{self.base_url}/photos/{photo}"
            if kind == "revalidate":
                request["headers"]["If-None-Match"] = f'"{photo.split(".")[0]}"'
        else:
            write = self._write_attempt(with_photo=kind == "review_photo")
            request.update(self._review_form(restaurant, write))
        started = time.monotonic()
        try:
            response = session.request(timeout=CLIENT_TIMEOUT_SECONDS, allow_redirects=False,
                                        **request)
            response.content  # noqa: B018 - read the whole body: the answer ends with it
        except requests.RequestException as error:
            return Sample(request_id, kind, started, time.monotonic(), None,
                          type(error).__name__, write)
        return Sample(request_id, kind, started, time.monotonic(), response.status_code, None,
                      write)

    @staticmethod
    def _write_attempt(with_photo: bool) -> WriteAttempt:
        photo = unique_png() if with_photo else None
        stored = stored_form_of(photo) if photo else None
        name = photo_name_for(stored.data, stored.extension) if stored else None
        return WriteAttempt(marker=f"chaos-{uuid.uuid4().hex}", photo=photo, photo_name=name,
                            stored_photo=stored.data if stored else None)

    def _review_form(self, restaurant: int, write: WriteAttempt) -> dict:
        data = {"reviewer_name": "Chaos", "rating": "4",
                "review_text": f"Steady under fire {write.marker}"}
        files = {"photo": ("photo.png", write.photo, "image/png")} if write.photo else {
            "photo": ("", b"", "application/octet-stream")}
        return {"method": "POST", "url": f"{self.base_url}/restaurants/{restaurant}/reviews",
                "data": data, "files": files}

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)


# faults ----------------------------------------------------------------------------------


def postgres_pids(cluster: PostgresCluster) -> list[int]:
    """The postmaster and every process it forked (backends, checkpointer, WAL writer...)."""
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Field 4 is the parent pid; the command name (field 2) may contain spaces.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def pause(pids: Sequence[int], seconds: float) -> None:
    """SIGSTOP the processes (sockets stay open, nothing answers), then SIGCONT them."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@dataclass
class Fault:
    name: str
    inject: Callable[[], None]  # returns once the dependency is restarted or resumed
    answers: Callable[[], None]  # raises unless the dependency itself answers a real request


def wait_until_answering(answers: Callable[[], None], timeout: float = 60.0) -> float:
    """Poll the dependency directly (not through the site); the time it first answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answers()
            return time.monotonic()
        except Exception:  # anything but an answer means "not back yet"
            time.sleep(PROBE_INTERVAL_SECONDS)
    raise ChaosError(f"the dependency did not answer within {timeout:g} s of its return")


def faults(postgres: PostgresCluster, azurite: AzuriteServer, seconds: float,
           photo_name: str) -> list[Fault]:
    def postgres_answers() -> None:
        # Probed once the fault is over (started or resumed): it answers or refuses at once.
        postgres.execute("SELECT count(*) FROM reviews", database=SITE_DATABASE)

    def storage_answers() -> None:
        # A fresh client each time: a real download on a new connection, short timeouts.
        with BlobServiceClient.from_connection_string(
                azurite.connection_string, retry_total=0, connection_timeout=PROBE_TIMEOUT,
                read_timeout=PROBE_TIMEOUT) as service:
            service.get_blob_client(PHOTO_CONTAINER, photo_name).download_blob().readall()

    def restart_postgres() -> None:
        postgres.stop()
        postgres.start()

    def storage_down() -> None:
        # Stopped (SIGTERM), not killed: Azurite saves its blob index on the way out, as a
        # real storage account keeps every acknowledged write.
        azurite.stop()
        time.sleep(seconds)
        azurite.start()

    return [
        Fault("PostgreSQL restart", restart_postgres, postgres_answers),
        Fault(f"PostgreSQL paused {seconds:g} s", lambda: pause(postgres_pids(postgres), seconds),
              postgres_answers),
        Fault(f"Blob Storage down {seconds:g} s", storage_down, storage_answers),
        Fault(f"Blob Storage paused {seconds:g} s", lambda: pause([azurite.pid], seconds),
              storage_answers),
    ]


# phases and their figures ----------------------------------------------------------------


@dataclass
class Phase:
    name: str
    started: float
    # When the dependency answered a direct request again (the start, for the baseline);
    # recovery is measured from here.
    returned: float
    # When the fault ended: restart done, SIGCONT sent (the start, for the baseline).
    resumed: float = 0.0
    ended: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    @property
    def unavailable(self) -> int:
        return sum(1 for sample in self.samples if sample.status == UNAVAILABLE)

    @property
    def other_errors(self) -> int:
        return sum(1 for sample in self.samples if sample.unexpected)

    @property
    def slowest(self) -> float:
        """The longest wait of a client (includes the load generator's own scheduling)."""
        return max((sample.seconds for sample in self.samples), default=0.0)

    @property
    def slowest_at_site(self) -> float:
        """The site's longest answer, from receiving the request to sending the response."""
        slowest = self.slowest_sample_at_site
        return 0.0 if slowest is None else slowest.server_seconds

    @property
    def slowest_sample_at_site(self) -> Sample | None:
        timed = [s for s in self.samples if s.server_seconds is not None]
        return max(timed, key=lambda s: s.server_seconds, default=None)

    @property
    def recovery(self) -> float:
        """From the dependency's return to the end of the last failure of a later request."""
        late = [s.finished - self.returned for s in self.samples
                if s.failed and s.started >= self.returned]
        return max(late, default=0.0)

    def late_failures(self, limit: float = RECOVERY_LIMIT_SECONDS) -> list[Sample]:
        return [s for s in self.samples if s.failed and s.started >= self.returned + limit]


def assign(phases: list[Phase], samples: Sequence[Sample]) -> None:
    """By when the answer came: a request in flight when a fault began belongs to that fault."""
    for phase in phases:
        phase.samples = [s for s in samples if phase.started <= s.finished < phase.ended]


def format_table(phases: Sequence[Phase]) -> str:
    rows = [("phase", "requests", "503s", "other errors", "slowest (site)", "slowest (client)",
             "dependency back", "recovery")]
    for phase in phases:
        baseline = phase.name == "baseline"
        back = "-" if baseline else f"+{phase.returned - phase.resumed:.2f} s"
        recovery = "-" if baseline else f"{phase.recovery:.2f} s"
        rows.append((phase.name, str(len(phase.samples)), str(phase.unavailable),
                     str(phase.other_errors), f"{phase.slowest_at_site:.2f} s",
                     f"{phase.slowest:.2f} s", back, recovery))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join([row[0].ljust(widths[0])]
                       + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:],
                                                                    strict=True)])
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def slowest_answers(phases: Sequence[Phase], count: int = 3) -> str:
    """The slowest answers of each phase, timed from the dependency's return (diagnostics)."""
    lines = []
    for phase in phases:
        for sample in sorted(phase.samples, key=lambda s: s.seconds, reverse=True)[:count]:
            sent = sample.started - phase.returned
            site = "-" if sample.server_seconds is None else f"{sample.server_seconds:.2f} s"
            lines.append(f"{phase.name}: {sample.kind} {sample.status or sample.error} in "
                         f"{sample.seconds:.2f} s (site {site}), sent at {sent:+.2f} s")
    return "\n".join(lines)


def problems(phases: Sequence[Phase], budget: float) -> list[str]:
    found = []
    for phase in phases:
        kinds = sorted({f"{s.kind}: {s.status or s.error}" for s in phase.samples if s.unexpected})
        if kinds:
            found.append(f"{phase.name}: {phase.other_errors} answers neither expected nor 503 "
                         f"({', '.join(kinds)})")
        if phase.slowest_at_site > budget:
            slowest = phase.slowest_sample_at_site
            found.append(f"{phase.name}: the site's slowest answer took "
                         f"{phase.slowest_at_site:.2f} s, over the {budget:g} s budget "
                         f"({slowest.kind} {slowest.status}, sent "
                         f"{slowest.started - phase.started:.2f} s into the phase)")
        unlogged = [s for s in phase.samples if s.status is not None and s.server_seconds is None]
        if unlogged:
            found.append(f"{phase.name}: {len(unlogged)} answers missing from the access log")
        late = phase.late_failures()
        if late:
            found.append(f"{phase.name}: {len(late)} failures to requests sent more than "
                         f"{RECOVERY_LIMIT_SECONDS:g} s after the dependency returned")
    return found


# what was saved --------------------------------------------------------------------------


def write_problems(samples: Sequence[Sample], postgres: PostgresCluster,
                   container: BlobServiceClient) -> list[str]:
    """Every accepted review saved with its photo's bytes; no refused review visible."""
    rows = postgres.execute(
        "SELECT review_text, photo_name FROM reviews WHERE review_text LIKE %s",
        database=SITE_DATABASE, params=("%chaos-%",))
    saved = {text.rsplit(" ", 1)[-1]: photo for text, photo in rows}
    photos = container.get_container_client(PHOTO_CONTAINER)
    found = []
    for sample in samples:
        write = sample.write
        if write is None:
            continue
        if sample.status == 303:
            if write.marker not in saved:
                found.append(f"accepted review {write.marker} is missing")
            elif saved[write.marker] != write.photo_name:
                found.append(f"accepted review {write.marker} has photo {saved[write.marker]}")
            elif write.photo is not None and (
                    photos.download_blob(write.photo_name).readall() != write.stored_photo):
                found.append(f"photo of accepted review {write.marker} differs or is missing")
        elif sample.status is not None and write.marker in saved:
            found.append(f"review {write.marker} answered {sample.status} but was saved")
    return found


def orphaned_photos(postgres: PostgresCluster, service: BlobServiceClient) -> int:
    """Blobs no review refers to (left by failed writes; webapp.sweep removes them later)."""
    referenced = {name for (name,) in postgres.execute(
        "SELECT DISTINCT photo_name FROM reviews WHERE photo_name IS NOT NULL",
        database=SITE_DATABASE)}
    blobs = {blob.name for blob in service.get_container_client(PHOTO_CONTAINER).list_blobs()}
    return len(blobs - referenced)


# the run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def chaos_services(workdir: Path) -> Iterator[tuple[PostgresCluster, AzuriteServer, dict]]:
    postgres = PostgresCluster(workdir / "postgres", durable=False)
    azurite = AzuriteServer(workdir / "azurite")
    try:
        postgres.start()
        azurite.start()
        yield postgres, azurite, prepare_site(postgres, azurite, name=SITE_DATABASE)
    finally:
        azurite.stop()
        postgres.stop()


def seed_site(postgres: PostgresCluster, environment: dict[str, str]) -> SiteFixtures:
    photo_names = upload_photos(environment, sample_photos())
    seed(postgres, SITE_DATABASE, photo_names, RESTAURANTS, REVIEWS_PER_RESTAURANT)
    ids = [row[0] for row in postgres.execute("SELECT id FROM restaurants ORDER BY id",
                                              database=SITE_DATABASE)]
    return SiteFixtures(restaurant_ids=ids, photo_names=photo_names)


def read_access_log(access_log: Path, samples: Sequence[Sample]) -> None:
    """Fill in each sample's server_seconds from gunicorn's access log."""
    times = {}
    for line in access_log.read_text(errors="replace").splitlines():
        request_id, _, seconds = line.partition(" ")
        with contextlib.suppress(ValueError):
            times[request_id] = float(seconds)
    for sample in samples:
        sample.server_seconds = times.get(sample.request_id)


@contextlib.contextmanager
def site(environment: dict[str, str], log_file: Path, access_log: Path) -> Iterator[str]:
    """The site under gunicorn on loopback, its log in `log_file`; yields the base URL."""
    port = free_port()
    # The same environment as make dev/bench: no Azure, identity or telemetry settings leak in.
    child_env = child_environment(environment)
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
             "--workers", str(GUNICORN_WORKERS), "--threads", str(GUNICORN_THREADS),
             "--bind", f"127.0.0.1:{port}", "--timeout", "120",
             "--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT,
             "webapp:create_app()"],
            cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http_ok(process, base_url + "/healthz", SERVER_READY_TIMEOUT)
            yield base_url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class ChaosResult:
    phases: list[Phase]
    problems: list[str]
    orphans: int
    server_errors_logged: int


def run_chaos(workdir: Path, fault_seconds: float, settle_seconds: float, clients: int,
              budget: float, report: Callable[[str], None] = print,
              keep_logs: Path | None = None) -> ChaosResult:
    with chaos_services(workdir) as (postgres, azurite, environment):
        environment = {**environment, "REQUEST_BUDGET_SECONDS": str(budget)}
        fixtures = seed_site(postgres, environment)
        log_file, access_log = workdir / "site.log", workdir / "access.log"
        with site(environment, log_file, access_log) as base_url:
            load = LoadGenerator(base_url, fixtures, clients)
            load.start()
            now = time.monotonic()
            phases = [Phase("baseline", now, now, now)]
            time.sleep(settle_seconds)
            for fault in faults(postgres, azurite, fault_seconds, fixtures.photo_names[0]):
                phases[-1].ended = time.monotonic()
                report(f"fault: {fault.name}…")
                started = time.monotonic()
                fault.inject()
                resumed = time.monotonic()
                phases.append(Phase(fault.name, started, wait_until_answering(fault.answers),
                                    resumed))
                time.sleep(settle_seconds)
            load.stop()
            phases[-1].ended = time.monotonic()
        samples = load.snapshot()
        read_access_log(access_log, samples)
        assign(phases, samples)
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            found = problems(phases, budget) + write_problems(samples, postgres, service)
            orphans = orphaned_photos(postgres, service)
        logged = log_file.read_text(errors="replace").count("Error handling request")
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for log in (log_file, access_log):
                shutil.copy(log, keep_logs / log.name)
    if logged:
        found.append(f"gunicorn logged {logged} unhandled errors (bare 500s)")
    return ChaosResult(phases, found, orphans, logged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.chaos",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--fault-seconds", type=float, default=5.0,
                        help="how long storage is down and each dependency paused")
    parser.add_argument("--settle-seconds", type=float, default=4.0,
                        help="load after each fault before the next one")
    parser.add_argument("--clients", type=int, default=12, help="concurrent client threads")
    parser.add_argument("--details", action="store_true",
                        help="also print each phase's slowest answers")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy the site's log and access log into DIR")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_SECONDS,
                        help="the site's REQUEST_BUDGET_SECONDS, and the slowest answer allowed")
    args = parser.parse_args(argv)
    if not 0 < args.clients <= GUNICORN_THREADS:
        parser.error(f"--clients must be 1-{GUNICORN_THREADS}")
    workdir = Path(tempfile.mkdtemp(prefix="restaurant-review-chaos-"))
    workdir.chmod(0o755)  # PostgreSQL may run as another OS user and must walk in
    try:
        result = run_chaos(workdir, args.fault_seconds, args.settle_seconds, args.clients,
                           args.budget, keep_logs=args.keep_logs)
    except (ChaosError, NotReadyError, ServiceError) as failure:
        print(f"make chaos: {failure}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.clients} clients, budget {args.budget:g} s, faults of {args.fault_seconds:g} s,"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print(format_table(result.phases))
    print(f"\nphoto blobs no review refers to: {result.orphans}")
    if args.details:
        print("\nslowest answers (sent at: seconds from the dependency's return)")
        print(slowest_answers(result.phases))
    for problem in result.problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
