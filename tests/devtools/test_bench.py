"""The benchmark's parts on tiny numbers, so `make bench` cannot rot between runs."""

from __future__ import annotations

import http.client
import io
import urllib.parse
import uuid
from pathlib import Path

import pytest
from PIL import Image

from devtools import bench
from devtools.bench import BenchError, LoadResult, Measurement
from webapp import images
from webapp.config import DEFAULT_PHOTO_DECODE_MEMORY_MIB

SITE_NAME = "bench_probe"

WRK_OUTPUT_WITH_ERRORS = """\
Running 1s test @ http://127.0.0.1:8000/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20s   300.00ms   1.90s    70.00%
    Req/Sec     5.00      2.00    10.00     80.00%
  Latency Distribution
     50%    1.10s
     75%    1.40s
     90%    1.70s
     99%    1.85s
  12 requests in 1.00s, 3.00KB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:     11.95
Transfer/sec:      3.00KB
"""


def test_site_under_gunicorn_serves_every_measured_row_to_wrk(postgres, site_environment,
                                                               seeded, tmp_path):
    def reviews_of(restaurant_id: int) -> int:
        return postgres.execute("SELECT count(*) FROM reviews WHERE restaurant_id = %s",
                                database=SITE_NAME, params=(restaurant_id,))[0][0]

    photo_path = f"/photos/{seeded[0]}"
    revalidation = {"If-None-Match": '"' + seeded[0].split(".")[0] + '"'}
    before = reviews_of(3)
    with bench.gunicorn("devtools.bench:create_floor_app()", site_environment,
                        ready_path="/healthz") as site:
        loads = [bench.Load(site + "/"), bench.Load(site + "/restaurants/1"),
                 bench.Load(site + bench.FLOOR_PATH + "1"),
                 bench.Load(site + photo_path), bench.Load(site + photo_path, revalidation),
                 bench.review_post_load(site, 3, tmp_path)]
        results = [bench.run_wrk(load, duration=1, connections=2) for load in loads]
        assert status_of(site + photo_path, revalidation) == 304
    for result in results:
        assert result.errors == 0  # a refused post (4xx) or a failed read (5xx) is an error
        assert result.requests_per_second > 0
        assert result.p99_ms > 0
    assert reviews_of(3) > before  # the posts were saved, not just answered


def test_mixed_row_reads_while_the_writer_posts_to_the_pages_read(postgres, site_environment,
                                                                  seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "MIXED_RESTAURANTS", 3)
    monkeypatch.setattr(bench, "MIXED_HOME_PAGES", 1)
    before = postgres.execute("SELECT count(*) FROM reviews", database=SITE_NAME)[0][0]
    with bench.gunicorn("webapp:create_app()", site_environment, ready_path="/healthz") as site:
        result = bench.run_wrk(bench.mixed_load(site, tmp_path), duration=1, connections=2)

    assert result.errors == 0 and result.requests_per_second > 0
    posted = postgres.execute("SELECT count(*), count(DISTINCT restaurant_id) FROM reviews "
                              "WHERE reviewer_name = 'Bench Writer'", database=SITE_NAME)[0]
    assert posted[0] >= bench.WRITES_PER_SECOND // 2  # about one second's worth, each saved
    assert postgres.execute("SELECT count(*) FROM reviews", database=SITE_NAME)[0][0] > before


def status_of(url: str, headers: dict[str, str]) -> int:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", parts.path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_floor_reads_the_restaurant_and_issues_a_fresh_submission_token(
        site_environment, seeded, monkeypatch):
    for name, value in site_environment.items():
        monkeypatch.setenv(name, value)
    client = bench.create_floor_app().test_client()

    first, second = client.get(bench.FLOOR_PATH + "1"), client.get(bench.FLOOR_PATH + "1")

    tokens = set()
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"  # it rendered a form's token
        body = response.get_data(as_text=True)
        assert body[:-36] == bench.FLOOR_BODY
        assert uuid.UUID(body[-36:]).version == 4
        tokens.add(body[-36:])
    assert len(tokens) == 2  # issued per request, as the details page does
    assert client.get_cookie("session") is None  # reading a page starts no session
    assert client.get(bench.FLOOR_PATH + "999").status_code == 404  # read, not assumed


@pytest.mark.slow  # starts gunicorn
def test_each_gunicorn_worker_listens_on_a_socket_of_its_own():
    # One shared socket lets a single worker take every wrk connection (see gunicorn_process).
    with bench.gunicorn_process("devtools.bench:create_trivial_app()", {}, workers=2,
                                threads=1) as (base_url, _process):
        port = urllib.parse.urlsplit(base_url).port
        assert listening_sockets(port) == 2


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on `port`, from the kernel's table (/proc/net/tcp)."""
    listen_state = "0A"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local_address, state = line.split()[1], line.split()[3]
        count += state == listen_state and int(local_address.rsplit(":", 1)[1], 16) == port
    return count


def test_parse_wrk_output_reads_rate_p99_in_ms_and_every_error_kind():
    result = bench.parse_wrk_output(WRK_OUTPUT_WITH_ERRORS)
    assert result == LoadResult(requests_per_second=11.95, p99_ms=1850.0, errors=10)


def test_parse_wrk_output_without_latency_distribution_is_a_clear_error():
    without_latency = WRK_OUTPUT_WITH_ERRORS.replace("     99%    1.85s\n", "")
    with pytest.raises(BenchError, match="--latency"):
        bench.parse_wrk_output(without_latency)


def measurement(endpoint: str, rate: float, errors: int = 0) -> Measurement:
    return Measurement(endpoint, LoadResult(requests_per_second=rate, p99_ms=5.0, errors=errors))


TARGETS = {"home": bench.Target(0.50), "details": bench.Target(0.25, max_p99_ms=100.0)}


def timed(endpoint: str, rate: float, p99_ms: float) -> Measurement:
    return Measurement(endpoint, LoadResult(requests_per_second=rate, p99_ms=p99_ms, errors=0))


def test_rows_that_reach_their_targets_pass():
    baseline = measurement("trivial", 1000)
    rows = [measurement("home", 500), timed("details", 250, 100.0), measurement("write", 10)]
    assert bench.problems(baseline, rows, TARGETS) == []


def test_a_row_below_its_ratio_or_above_its_p99_fails_the_run():
    baseline = measurement("trivial", 1000)
    rows = [measurement("home", 499), timed("details", 300, 100.1)]
    assert bench.problems(baseline, rows, TARGETS) == [
        "home at 50% of the trivial endpoint (target: at least 50%)",
        "details p99 100.1 ms (target: at most 100 ms)",
    ]


def test_a_target_without_a_measurement_fails_the_run():
    assert bench.problems(measurement("trivial", 1000), [measurement("home", 900)], TARGETS) == [
        "details: not measured"]


def test_any_failed_request_fails_the_run():
    baseline = measurement("trivial", 1000)
    rows = [measurement("home", 900), timed("details", 900, 5.0),
            measurement("photo", 800, errors=2)]
    assert bench.problems(baseline, rows, TARGETS) == ["photo: 2 failed requests"]


def test_the_default_targets_are_the_agreed_ones():
    agreed = {
        bench.HOME_LABEL: bench.Target(0.70),
        bench.HOME_UNCACHED_LABEL: bench.Target(0.25),
        bench.DETAILS_LABEL: bench.Target(0.45, max_p99_ms=100.0),
        bench.DETAILS_UNCACHED_LABEL: bench.Target(0.25, max_p99_ms=60.0),
        bench.MIXED_LABEL: bench.Target(0.35, max_p99_ms=60.0),
        bench.SEARCH_LABEL: bench.Target(max_p99_ms=60.0),
        bench.PHOTO_LABEL: bench.Target(0.35),
        bench.REVALIDATION_LABEL: bench.Target(0.70),
    }
    assert agreed == bench.TARGETS


def test_the_report_gives_the_load_from_before_the_run_and_fails_on_a_miss(capsys):
    trivial = measurement(bench.TRIVIAL_LABEL, 1000)
    memory = bench.MemoryResult(peak_mb=[200.0], idle_mb=[90.0], statuses={303: 12})

    status = bench.report([trivial, measurement(bench.HOME_LABEL, 100)], memory,
                          duration=10, connections=16, load_before=0.4)

    output = capsys.readouterr()
    assert "load average 0.4 before the run" in output.out
    assert status == 1
    assert f"FAIL: {bench.HOME_LABEL} at 10% of the trivial endpoint" in output.err


def test_table_shows_each_endpoint_with_its_ratio_and_target():
    table = bench.format_table(measurement("trivial", 1000),
                               [measurement("home", 450), measurement("write", 20)], TARGETS)
    lines = table.splitlines()
    assert lines[0].split() == ["endpoint", "req/s", "p99", "errors", "vs", "trivial", "target"]
    assert lines[2].split() == ["trivial", "1000", "5.0", "ms", "0", "100%", "-"]
    assert lines[3].split() == ["home", "450", "5.0", "ms", "0", "45%", ">=", "50%"]
    assert lines[4].split() == ["write", "20", "5.0", "ms", "0", "2%", "-"]


def test_a_latency_only_target_shows_and_checks_only_the_p99():
    baseline = measurement("trivial", 1000)
    target = {"search": bench.Target(max_p99_ms=60.0)}
    assert target["search"].describe() == "p99 <= 60 ms"
    assert bench.problems(baseline, [timed("search", 1, 59.0)], target) == []
    assert bench.problems(baseline, [timed("search", 900, 61.0)], target) == [
        "search p99 61.0 ms (target: at most 60 ms)"]


def test_rounds_combine_to_mean_rate_worst_p99_and_all_errors():
    combined = bench.combine([LoadResult(100.0, 5.0, 0), LoadResult(300.0, 9.0, 2)])
    assert combined == LoadResult(requests_per_second=200.0, p99_ms=9.0, errors=2)


def test_the_database_settles_after_the_warm_up_and_after_each_writing_slice(monkeypatch):
    steps = []
    monkeypatch.setattr(bench, "run_wrk", lambda load, seconds, connections: (
        steps.append((load.url, seconds)) or LoadResult(1.0, 1.0, 0)))
    loads = {"read": "http://site/", "write": bench.Load("http://site/post", writes=True)}

    bench.measure_in_rounds(loads, duration=2 * bench.ROUNDS, connections=1,
                            settle=lambda: steps.append("settle"))

    warm_up = [("http://site/", bench.WARM_UP_SECONDS), ("http://site/post",
                                                         bench.WARM_UP_SECONDS)]
    one_round = [("http://site/", 2), ("http://site/post", 2), "settle"]
    assert steps == warm_up + ["settle"] + one_round * bench.ROUNDS


def test_the_review_rows_are_the_loads_that_write(tmp_path):
    writer_site = "http://127.0.0.1:9"  # nothing is fetched until the row runs
    assert bench.mixed_load(writer_site, tmp_path).writes
    assert not bench.paths_load(writer_site, ["/"], tmp_path, "reads").writes


@pytest.mark.slow  # gunicorn and wrk
def test_measure_in_rounds_loads_every_target_and_labels_the_results(monkeypatch):
    monkeypatch.setattr(bench, "WARM_UP_SECONDS", 1)
    with bench.gunicorn("devtools.bench:create_trivial_app()", {}) as trivial:
        measurements = bench.measure_in_rounds(
            {"ok": trivial + "/", "missing": trivial + "/missing"}, duration=2, connections=2)
    by_label = {m.endpoint: m.result for m in measurements}
    assert list(by_label) == ["ok", "missing"]
    assert by_label["ok"].errors == 0 and by_label["ok"].requests_per_second > 0
    assert by_label["missing"].errors > 0  # every 404 is a non-2xx/3xx response for wrk


def test_upload_memory_row_reads_every_workers_peak_and_the_bursts_answers(seeded,
                                                                          site_environment):
    photo = bench.decompression_bomb_png(400, 300)

    result = bench.measure_upload_memory(site_environment, 1, photo, uploads=3)

    assert result.statuses == {303: 3}  # every upload accepted: none refused, none shed
    assert len(result.peak_mb) == len(result.idle_mb) == bench.MEMORY_WORKERS
    assert all(peak >= idle > 0 for peak, idle in zip(result.peak_mb, result.idle_mb,
                                                       strict=True))
    assert bench.memory_problems(result) == []
    assert "3 x 303" in result.describe()


def test_memory_row_fails_above_its_target_or_on_an_answer_other_than_303_or_503():
    fine = bench.MemoryResult(peak_mb=[300.0, 200.0], idle_mb=[100.0, 100.0],
                              statuses={303: 10, 503: 2})
    assert bench.memory_problems(fine, target_mb=450) == []
    too_big = bench.MemoryResult(peak_mb=[451.0], idle_mb=[100.0], statuses={303: 1})
    assert bench.memory_problems(too_big, target_mb=450) == [
        f"{bench.MEMORY_LABEL}: a worker peaked at 451 MB (target: at most 450 MB)"]
    failed = bench.MemoryResult(peak_mb=[200.0], idle_mb=[100.0],
                                statuses={500: 1, "ConnectionError": 1})
    assert len(bench.memory_problems(failed, target_mb=450)) == 2


def test_memory_row_runs_the_packages_b1_layout_with_the_largest_photo_the_budget_takes():
    assert (bench.MEMORY_WORKERS, bench.MEMORY_THREADS) == (3, 4)  # startup.py on one core
    budget = DEFAULT_PHOTO_DECODE_MEMORY_MIB * 1024 * 1024
    with Image.open(io.BytesIO(bench.worst_case_photo())) as image:
        side = image.width
    for size, accepted in ((side, True), (side + 1, False)):
        photo = bench.decompression_bomb_png(size, size)
        with Image.open(io.BytesIO(photo)) as image:
            assert (images.decode_cost(image, len(photo)) <= budget) is accepted
