"""`make bench`: the site's throughput next to a trivial Flask endpoint, in one run.

Throwaway PostgreSQL and Azurite in a temp folder; 200 restaurants x 20 reviews with photos,
and a second database of 100,000 restaurants for the name search; the site (page caches on,
and again with them off) and a `return "ok"` Flask app each under gunicorn with the same
settings; Debian's wrk loads the home page, a details page, a photo and its revalidation (all
through the site), the details page's floor (its read and form token without markup), review
posts, a mixed row (readers on home and details pages while a writer posts reviews to them at
WRITES_PER_SECOND), the search, and the trivial app, alternating between them in rounds.
Prints req/s, p99 latency, errors and the ratio to the trivial endpoint next to each target
(TARGETS), then each worker's peak memory under a burst of worst-case photo uploads
(MEMORY_TARGET_MB); exits 1 when any request failed or a target was missed, 2 when the
benchmark itself could not run.

    .venv/bin/python -m devtools.bench [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests
from flask import Flask, abort
from PIL import Image

from devtools.readiness import NotReadyError, wait_for_http_ok
from devtools.seeding import (
    SEARCH_TEXT,
    sample_photos,
    seed,
    seed_search,
    settle,
    upload_photos,
)
from devtools.services import (
    REPO_ROOT,
    AzuriteServer,
    PostgresCluster,
    ServiceError,
    free_port,
)
from devtools.site_setup import SiteSetupError, child_environment, prepare_site
from release.startup import DEFAULT_THREADS, default_workers
from webapp.config import DEFAULT_PHOTO_DECODE_MEMORY_MIB
from webapp.images import bytes_per_pixel, decode_cost

APP_DATABASE = "bench"  # also the name of its owner role
RESTAURANTS = 200
REVIEWS_PER_RESTAURANT = 20
WRITE_RESTAURANT_ID = RESTAURANTS  # seeded ids start at 1
# Identical for the site and the trivial app, so the ratio compares the apps, not the servers.
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
WRK = "/usr/bin/wrk"
WRK_THREADS = 2
WARM_UP_SECONDS = 2
ROUNDS = 2
TRIVIAL_LABEL = 'trivial "ok"'
HOME_LABEL = "/ (home)"
HOME_UNCACHED_LABEL = "/ (home, page caches off)"
DETAILS_LABEL = "/restaurants/1 (details)"
DETAILS_UNCACHED_LABEL = "/restaurants/1 (details, page caches off)"
FLOOR_LABEL = "/restaurants/1's read and form token, no markup (floor, page caches off)"
PHOTO_LABEL = "/photos/<name> (photo)"
REVALIDATION_LABEL = "/photos/<name> (If-None-Match)"
WRITE_LABEL = "POST review (no photo)"
MIXED_LABEL = "home + details reads, a review posted every 0.2 s"
SEARCH_LABEL = "/?q=<1 % of 100,000 names> (search, page caches off)"
# The mixed row: wrk's readers spread over these pages, the writer over the restaurants whose
# pages they read (so its every post drops pages the readers want).
MIXED_HOME_PAGES = 3
MIXED_RESTAURANTS = 20
WRITES_PER_SECOND = 5
# The search row's data (devtools/seeding.py): one in SEARCH_WORDS names holds the searched word.
SEARCH_DATABASE = "bench_search"
SEARCH_RESTAURANTS = 100_000
SEARCH_WORDS = 100
SERVER_READY_TIMEOUT = 60.0
# The upload memory row: the package's gunicorn layout on the smallest plan (B1, one core:
# release/startup.py's default workers and threads), hit by this many uploads at once of the
# most expensive photo the decode budget still accepts (webapp/images.py).
MEMORY_LABEL = "POST review, worst-case photo burst"
MEMORY_WORKERS = default_workers(1)
MEMORY_THREADS = DEFAULT_THREADS
MEMORY_BURST = 12
# B1 has 1.75 GB for the whole instance: three workers at this peak leave room for gunicorn's
# master and the platform's own processes.
MEMORY_TARGET_MB = 450
UPLOAD_TIMEOUT_SECONDS = 120
# An accepted review, or the decode budget's retryable "busy" answer; anything else fails.
BURST_STATUSES = (303, 503)


@dataclass(frozen=True)
class Target:
    """What a row must reach: a share of the trivial endpoint's req/s, maybe a p99 bound."""

    min_ratio: float = 0.0
    max_p99_ms: float | None = None

    def describe(self) -> str:
        parts = [f">= {self.min_ratio:.0%}"] if self.min_ratio else []
        if self.max_p99_ms is not None:
            parts.append(f"p99 <= {self.max_p99_ms:.0f} ms")
        return ", ".join(parts)


# Rows without a target (posting reviews) are reported; every row must be error-free.
TARGETS = {
    HOME_LABEL: Target(0.70),
    HOME_UNCACHED_LABEL: Target(0.25),
    DETAILS_LABEL: Target(0.45, max_p99_ms=100.0),
    DETAILS_UNCACHED_LABEL: Target(0.25, max_p99_ms=60.0),
    MIXED_LABEL: Target(0.35, max_p99_ms=60.0),
    SEARCH_LABEL: Target(max_p99_ms=60.0),
    PHOTO_LABEL: Target(0.35),
    REVALIDATION_LABEL: Target(0.70),
}


class BenchError(RuntimeError):
    """The benchmark could not run (a tool is missing, a server did not start...)."""


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p99_ms: float
    errors: int  # socket errors plus non-2xx/3xx responses


@dataclass(frozen=True)
class Measurement:
    endpoint: str
    result: LoadResult


# the trivial baseline ------------------------------------------------------------------------


def create_trivial_app() -> Flask:
    """The baseline: Flask and gunicorn's own cost per request, no database, no template."""
    app = Flask("trivial")

    @app.get("/")
    def ok() -> str:
        return "ok"

    return app


# The floor: the part of the details page that no rendering strategy removes -----------------

FLOOR_PATH = "/bench/floor/restaurants/"
# About the seeded details page's size, so the floor sends what the page sends.
FLOOR_BODY = "x" * 18_000


def create_floor_app() -> Flask:
    """The site, plus a page that does what the details page must do for every visitor, without
    its markup: the same read of the restaurant, a fresh submission token for the review form
    (which also keeps the page out of caches), a body of the page's size. Everything the site
    runs per request (proxy headers, security headers, the dependency budget, the pool) runs for
    it too, so the details rows' distance to this row is what their markup costs."""
    # Imported here: the trivial app's server imports this module and must not load the site.
    from webapp import create_app
    from webapp.db import get_engine
    from webapp.forms import ReviewForm
    from webapp.queries import restaurant_details

    app = create_app()

    @app.get(FLOOR_PATH + "<int:restaurant_id>")
    def details_floor(restaurant_id: int) -> str:
        if restaurant_details(get_engine(), restaurant_id) is None:
            abort(404)
        return FLOOR_BODY + ReviewForm.new_token()

    return app


# the upload memory row's photo ---------------------------------------------------------------


def decompression_bomb_png(width: int, height: int) -> bytes:
    """An all-transparent RGBA PNG: a few hundred KB that decode to width x height x 4 bytes.

    Written chunk by chunk (IHDR, one IDAT, IEND) so building it never holds the pixels.
    """
    row = bytes(1 + width * 4)  # filter byte "none", then transparent black pixels
    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        _png_chunk(kind, data)
        for kind, data in ((b"IHDR", header), (b"IDAT", compressed), (b"IEND", b"")))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data).to_bytes(4, "big")
    return len(data).to_bytes(4, "big") + kind + data + checksum


def worst_case_photo(budget_mib: int = DEFAULT_PHOTO_DECODE_MEMORY_MIB) -> bytes:
    """The largest square RGBA PNG whose estimated decode cost fits the budget."""
    budget = budget_mib * 1024 * 1024
    per_pixel = 2 * bytes_per_pixel("RGBA")  # the decoded image and its upright copy
    side = math.isqrt(budget // per_pixel)
    while True:  # a few steps: each one pixel less frees far more than the file's size
        photo = decompression_bomb_png(side, side)
        with Image.open(io.BytesIO(photo)) as image:
            if decode_cost(image, len(photo)) <= budget:
                return photo
        side -= 1


# the site and its services -------------------------------------------------------------------


@dataclass(frozen=True)
class SiteServices:
    postgres: PostgresCluster
    azurite: AzuriteServer
    environment: dict[str, str]
    search_environment: dict[str, str]


@contextlib.contextmanager
def site_services(workdir: Path) -> Iterator[SiteServices]:
    """Throwaway PostgreSQL + Azurite with the app's role, database, container and schema."""
    postgres = PostgresCluster(workdir / "postgres", durable=False)
    azurite = AzuriteServer(data_dir=None)
    try:
        postgres.start()
        azurite.start()
        # Same code path as production minus telemetry: exporting spans would measure the
        # exporter (devtools/site_setup.py passes no Application Insights setting on).
        yield SiteServices(postgres, azurite, prepare_site(postgres, azurite, APP_DATABASE),
                           prepare_site(postgres, azurite, SEARCH_DATABASE))
    finally:
        azurite.stop()
        postgres.stop()


@contextlib.contextmanager
def gunicorn(app_spec: str, environment: dict[str, str], ready_path: str = "/") -> Iterator[str]:
    """Serve `app_spec` with the fixed benchmark settings; yield its base URL."""
    with gunicorn_process(app_spec, environment, ready_path) as (base_url, _process):
        yield base_url


@contextlib.contextmanager
def gunicorn_process(app_spec: str, environment: dict[str, str], ready_path: str = "/",
                     workers: int = GUNICORN_WORKERS, threads: int = GUNICORN_THREADS,
                     ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Serve `app_spec`; yield its base URL and gunicorn's master process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
         "--workers", str(workers), "--threads", str(threads),
         # A listening socket per worker, so the kernel spreads wrk's connections over them.
         # On one shared socket, whichever worker wakes first may accept all 16: its threads
         # then fight over one GIL from both cores, and the slice runs at a quarter of its
         # rate (the trivial app: 2,300 req/s instead of 9,000, in about a third of runs).
         "--reuse-port",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app_spec],
        cwd=REPO_ROOT, env=child_environment(environment),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http_ok(process, base_url + ready_path, SERVER_READY_TIMEOUT)
        yield base_url, process
    finally:
        process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop, workers included
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# load generation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One endpoint to load: its URL, extra request headers, a wrk Lua script (for POSTs or
    several paths), and what else runs meanwhile (`background`: its errors count as the row's)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    script: Path | None = None
    background: Callable[[], SteadyWriter] | None = None
    # It saves rows: the database is settled after it (see measure_in_rounds).
    writes: bool = False


def as_load(load: Load | str) -> Load:
    return Load(load) if isinstance(load, str) else load


def run_wrk(load: Load | str, duration: int, connections: int) -> LoadResult:
    load = as_load(load)
    if load.background is None:
        return _run_wrk(load, duration, connections)
    with load.background() as background:
        result = _run_wrk(load, duration, connections)
    return replace(result, errors=result.errors + background.errors)


def _run_wrk(load: Load, duration: int, connections: int) -> LoadResult:
    if not Path(WRK).exists():
        raise BenchError(f"{WRK} not found: run `make deps` (it apt-installs Debian's wrk)")
    url = load.url
    command = [WRK, f"-t{min(WRK_THREADS, connections)}", f"-c{connections}", f"-d{duration}s",
               "--latency"]
    for name, value in load.headers.items():
        command += ["-H", f"{name}: {value}"]
    if load.script is not None:
        command += ["-s", str(load.script)]
    command.append(url)
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk failed on {url}: {result.stderr.strip() or result.stdout.strip()}")
    return parse_wrk_output(result.stdout)


_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_SUCCESS = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk_output(output: str) -> LoadResult:
    """Read req/s, the p99 latency and every kind of error from `wrk --latency` output."""
    rate = _REQUESTS_PER_SECOND.search(output)
    p99 = _P99.search(output)
    if not rate or not p99:
        raise BenchError(f"unexpected wrk output (was --latency given?):\n{output}")
    # wrk prints these lines only when there was at least one such error.
    socket_errors = _SOCKET_ERRORS.search(output)
    non_success = _NON_SUCCESS.search(output)
    errors = sum(int(count) for count in socket_errors.groups()) if socket_errors else 0
    errors += int(non_success.group(1)) if non_success else 0
    return LoadResult(
        requests_per_second=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _TO_MS[p99.group(2)],
        errors=errors,
    )


# reporting -----------------------------------------------------------------------------------


def format_table(baseline: Measurement, measurements: Sequence[Measurement],
                 targets: Mapping[str, Target] | None = None) -> str:
    targets = TARGETS if targets is None else targets
    rows = [("endpoint", "req/s", "p99", "errors", "vs trivial", "target")]
    for measurement in [baseline, *measurements]:
        result = measurement.result
        ratio = result.requests_per_second / baseline.result.requests_per_second
        target = targets.get(measurement.endpoint)
        rows.append((measurement.endpoint, f"{result.requests_per_second:.0f}",
                     f"{result.p99_ms:.1f} ms", str(result.errors), f"{ratio:.0%}",
                     target.describe() if target else "-"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)]
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def problems(baseline: Measurement, measurements: Sequence[Measurement],
             targets: Mapping[str, Target] | None = None) -> list[str]:
    """Why the run fails, if it does: any error, or a row short of its target."""
    targets = TARGETS if targets is None else targets
    found = [f"{m.endpoint}: {m.result.errors} failed requests"
             for m in [baseline, *measurements] if m.result.errors]
    by_label = {m.endpoint: m.result for m in measurements}
    for label, target in targets.items():
        result = by_label.get(label)
        if result is None:
            found.append(f"{label}: not measured")
            continue
        ratio = result.requests_per_second / baseline.result.requests_per_second
        if ratio < target.min_ratio:
            found.append(f"{label} at {ratio:.0%} of the trivial endpoint "
                         f"(target: at least {target.min_ratio:.0%})")
        if target.max_p99_ms is not None and result.p99_ms > target.max_p99_ms:
            found.append(f"{label} p99 {result.p99_ms:.1f} ms "
                         f"(target: at most {target.max_p99_ms:.0f} ms)")
    return found


# posting reviews -----------------------------------------------------------------------------


def review_post_load(site: str, restaurant_id: int, workdir: Path) -> Load:
    """POST the review form without a photo, as a browser does (multipart, empty file part).

    Without a submission token: every post is a new review, none a repeat of another. Like any
    client that sends no Origin or Sec-Fetch-Site header, wrk needs nothing fetched first.
    """
    page_url = f"{site}/restaurants/{restaurant_id}"
    boundary = f"bench-{uuid.uuid4().hex}"
    fields = {"reviewer_name": "Bench Writer", "rating": "4",
              "review_text": "Posted by make bench: quick service, would come back."}
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename=""\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n\r\n")
    body = "".join(parts) + f"--{boundary}--\r\n"
    settings = {
        "wrk.method": "POST",
        "wrk.body": body,
        'wrk.headers["Content-Type"]': f"multipart/form-data; boundary={boundary}",
    }
    script = workdir / "post_review.lua"
    # JSON string escapes (\r, \n, \") are valid Lua escapes for this ASCII text.
    lines = [f"{name} = {json.dumps(value)}\n" for name, value in settings.items()]
    script.write_text("".join(lines))
    return Load(page_url + "/reviews", script=script, writes=True)


# the mixed row --------------------------------------------------------------------------------


def paths_load(site: str, paths: Sequence[str], workdir: Path, name: str) -> Load:
    """GET `paths` in turn, each wrk connection cycling through them from its own start."""
    script = workdir / f"{name}.lua"
    quoted = ", ".join(json.dumps(path) for path in paths)
    # A counter per wrk thread (each has its own Lua state); the offset spreads the threads.
    script.write_text(
        f"local paths = {{{quoted}}}\n"
        "local next_path = math.random(#paths)\n"
        "request = function()\n"
        "  next_path = next_path % #paths + 1\n"
        "  return wrk.format('GET', paths[next_path])\n"
        "end\n")
    return Load(site + paths[0], script=script)


class SteadyWriter:
    """Posts a review every 1 / `per_second` s, round the restaurants, while in its `with`.

    Each post fetches nothing first, as in review_post_load. A post answered other than 303,
    or not at all, is an error.
    """

    def __init__(self, site: str, restaurant_ids: Sequence[int],
                 per_second: float = WRITES_PER_SECOND) -> None:
        self._site = site
        self._restaurant_ids = restaurant_ids
        self._interval = 1 / per_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, name="bench-writer", daemon=True)
        self.posted = 0
        self.errors = 0

    def __enter__(self) -> SteadyWriter:
        self._session = requests.Session()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._session.close()

    def _write(self) -> None:
        next_post = time.monotonic()
        while not self._stop.is_set():
            restaurant_id = self._restaurant_ids[self.posted % len(self._restaurant_ids)]
            form = {"reviewer_name": "Bench Writer", "rating": "5",
                    "review_text": "Posted during the mixed row of make bench."}
            try:
                response = self._session.post(
                    f"{self._site}/restaurants/{restaurant_id}/reviews", data=form,
                    allow_redirects=False, timeout=30)
                self.errors += response.status_code != 303
            except requests.RequestException:
                self.errors += 1
            self.posted += 1
            next_post += self._interval
            self._stop.wait(max(0.0, next_post - time.monotonic()))


def mixed_load(site: str, workdir: Path) -> Load:
    """Readers on the first home pages and the first restaurants' pages, and the writer."""
    restaurant_ids = list(range(1, MIXED_RESTAURANTS + 1))
    paths = [f"/?page={page}" for page in range(1, MIXED_HOME_PAGES + 1)]
    paths += [f"/restaurants/{restaurant_id}" for restaurant_id in restaurant_ids]
    load = paths_load(site, paths, workdir, "mixed_reads")
    return replace(load, background=lambda: SteadyWriter(site, restaurant_ids), writes=True)


# upload memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryResult:
    """Peak and idle resident memory of each worker (MB), and the burst's answers by status."""

    peak_mb: list[float]
    idle_mb: list[float]
    statuses: dict[int | str, int]

    def describe(self) -> str:
        answers = ", ".join(f"{count} x {status}" for status, count in sorted(
            self.statuses.items(), key=lambda item: str(item[0])))
        return (f"{MEMORY_LABEL}: {len(self.peak_mb)} workers x {MEMORY_THREADS} threads, "
                f"{sum(self.statuses.values())} uploads ({answers}); peak RSS per worker "
                f"{max(self.peak_mb):.0f} MB (idle {max(self.idle_mb):.0f} MB), "
                f"target <= {MEMORY_TARGET_MB} MB")


def memory_problems(result: MemoryResult, target_mb: float = MEMORY_TARGET_MB) -> list[str]:
    found = [f"{MEMORY_LABEL}: {count} answers {status}, expected 303 or 503"
             for status, count in result.statuses.items() if status not in BURST_STATUSES]
    if max(result.peak_mb) > target_mb:
        found.append(f"{MEMORY_LABEL}: a worker peaked at {max(result.peak_mb):.0f} MB "
                     f"(target: at most {target_mb:.0f} MB)")
    return found


def measure_upload_memory(environment: dict[str, str], restaurant_id: int, photo: bytes,
                          uploads: int = MEMORY_BURST) -> MemoryResult:
    """Post `photo` `uploads` times at once to a site with the package's B1 gunicorn layout."""
    with gunicorn_process("webapp:create_app()", environment, ready_path="/healthz",
                          workers=MEMORY_WORKERS, threads=MEMORY_THREADS) as (site, process):
        workers = child_pids(process.pid)
        idle = [resident_mb(pid, "VmRSS") for pid in workers]
        statuses = post_all_at_once(f"{site}/restaurants/{restaurant_id}", photo, uploads)
        peak = [resident_mb(pid, "VmHWM") for pid in workers]
    counts: dict[int | str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return MemoryResult(peak_mb=peak, idle_mb=idle, statuses=counts)


def post_all_at_once(page_url: str, photo: bytes, uploads: int) -> list[int | str]:
    """`uploads` clients, each on a thread of its own, post the photo together."""
    start = threading.Barrier(uploads)
    statuses: list[int | str] = []
    form = {"reviewer_name": "Bench Uploader", "rating": "3",
            "review_text": "Posted by make bench with a very large photo."}

    def post() -> None:
        try:
            start.wait(timeout=UPLOAD_TIMEOUT_SECONDS)
            response = requests.post(
                page_url + "/reviews", data=form, allow_redirects=False,
                files={"photo": ("worst.png", photo, "image/png")},
                timeout=UPLOAD_TIMEOUT_SECONDS)
            statuses.append(response.status_code)
        except (requests.RequestException, threading.BrokenBarrierError) as error:
            start.abort()
            statuses.append(type(error).__name__)

    clients = [threading.Thread(target=post) for _ in range(uploads)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    return statuses


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent` (gunicorn's workers), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the fields follow its end.
            parent_pid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if parent_pid == parent:
            children.append(int(stat.parent.name))
    if not children:
        raise BenchError(f"gunicorn (pid {parent}) has no worker processes")
    return children


def resident_mb(pid: int, field_name: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak since the process started) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise BenchError(f"/proc/{pid}/status has no {field_name}")


# the run -------------------------------------------------------------------------------------


def benchmark(duration: int, connections: int) -> int:
    # Taken before the bench starts its own servers: afterwards it counts them and wrk.
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="restaurant-review-bench-"))
    workdir.chmod(0o755)  # PostgreSQL may run as another OS user and must walk in
    try:
        with site_services(workdir) as services:
            print(f"Seeding {RESTAURANTS} restaurants x {REVIEWS_PER_RESTAURANT} reviews…",
                  flush=True)
            photo_names = upload_photos(services.environment, sample_photos())
            seed(services.postgres, APP_DATABASE, photo_names, RESTAURANTS,
                 REVIEWS_PER_RESTAURANT)
            print(f"Seeding {SEARCH_RESTAURANTS} restaurants for the search…", flush=True)
            seed_search(services.postgres, SEARCH_DATABASE, SEARCH_RESTAURANTS, SEARCH_WORDS)
            # The same site with its page caches off shows what each request costs when it
            # goes to PostgreSQL; so does the search site, whose results are never cached. The
            # floor's server is that site plus the floor's page.
            caches_off = {"HOME_PAGE_CACHE_SECONDS": "0", "DETAILS_PAGE_CACHE_SECONDS": "0"}
            uncached_environment = {**services.environment, **caches_off}
            search_environment = {**services.search_environment, **caches_off}
            with gunicorn("webapp:create_app()", services.environment,
                          ready_path="/healthz") as site, \
                    gunicorn("webapp:create_app()", uncached_environment,
                             ready_path="/healthz") as uncached_site, \
                    gunicorn("devtools.bench:create_floor_app()", uncached_environment,
                             ready_path="/healthz") as floor_site, \
                    gunicorn("webapp:create_app()", search_environment,
                             ready_path="/healthz") as search_site, \
                    gunicorn("devtools.bench:create_trivial_app()", {}) as trivial:
                photo_url = f"{site}/photos/{photo_names[0]}"
                photo_etag = f'"{photo_names[0].split(".")[0]}"'  # the name's SHA-256
                loads = {
                    TRIVIAL_LABEL: Load(trivial + "/"),
                    HOME_LABEL: Load(site + "/"),
                    HOME_UNCACHED_LABEL: Load(uncached_site + "/"),
                    DETAILS_LABEL: Load(site + "/restaurants/1"),
                    DETAILS_UNCACHED_LABEL: Load(uncached_site + "/restaurants/1"),
                    FLOOR_LABEL: Load(floor_site + FLOOR_PATH + "1"),
                    PHOTO_LABEL: Load(photo_url),
                    REVALIDATION_LABEL: Load(photo_url, headers={"If-None-Match": photo_etag}),
                    # Into the last restaurant: no other row reads its page.
                    WRITE_LABEL: review_post_load(site, WRITE_RESTAURANT_ID, workdir),
                    MIXED_LABEL: mixed_load(site, workdir),
                    SEARCH_LABEL: Load(f"{search_site}/?q={SEARCH_TEXT}"),
                }
                measurements = measure_in_rounds(
                    loads, duration, connections,
                    settle=lambda: settle(services.postgres, APP_DATABASE))
            photo = worst_case_photo()
            with Image.open(io.BytesIO(photo)) as image:
                print(f"{MEMORY_LABEL}: {MEMORY_BURST} uploads of a {image.width} x "
                      f"{image.height} RGBA PNG ({len(photo) // 1024} KiB)…", flush=True)
            memory = measure_upload_memory(services.environment, WRITE_RESTAURANT_ID, photo)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(measurements, memory, duration, connections, load_before)


def measure_in_rounds(loads: Mapping[str, Load | str], duration: int, connections: int,
                      settle: Callable[[], None] = lambda: None) -> list[Measurement]:
    """Load each target in turn, `ROUNDS` times, `duration / ROUNDS` seconds each.

    Alternating spreads any background load on the machine over every endpoint alike, so the
    ratios stay fair even when the absolute numbers move. `settle` runs, untimed, after the
    warm-up and after each slice of a load that writes: the thousands of reviews a write slice
    saves would otherwise start autovacuum during whichever slice comes next.
    """
    loads = {label: as_load(load) for label, load in loads.items()}
    for load in loads.values():
        run_wrk(load, WARM_UP_SECONDS, connections)  # pools, caches and workers warmed up
    settle()
    slice_seconds = max(1, round(duration / ROUNDS))
    runs: dict[str, list[LoadResult]] = {label: [] for label in loads}
    for round_number in range(1, ROUNDS + 1):
        for label, load in loads.items():
            print(f"Round {round_number}/{ROUNDS}: {label} for {slice_seconds} s…", flush=True)
            runs[label].append(run_wrk(load, slice_seconds, connections))
            if load.writes:
                settle()
    return [Measurement(label, combine(results)) for label, results in runs.items()]


def combine(results: Sequence[LoadResult]) -> LoadResult:
    """Equal-length runs: mean rate, worst p99 (the conservative choice), all errors."""
    return LoadResult(
        requests_per_second=sum(r.requests_per_second for r in results) / len(results),
        p99_ms=max(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
    )


def report(measurements: Sequence[Measurement], memory: MemoryResult, duration: int,
           connections: int, load_before: float) -> int:
    by_label = {m.endpoint: m for m in measurements}
    baseline = by_label[TRIVIAL_LABEL]
    site_measurements = [m for m in measurements if m is not baseline]
    # The load average before the run shows whether other work was using the CPUs.
    print(f"\ngunicorn {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads, wrk "
          f"{connections} connections, {duration} s per endpoint in {ROUNDS} rounds, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before the run\n")
    print(format_table(baseline, site_measurements))
    print(f"\n{memory.describe()}")
    failures = problems(baseline, site_measurements) + memory_problems(memory)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = parser.parse_args(argv)
    try:
        return benchmark(args.duration, args.connections)
    except (BenchError, NotReadyError, ServiceError, SiteSetupError) as failure:
        print(f"make bench: {failure}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
