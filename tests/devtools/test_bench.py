"""The benchmark's parts on tiny numbers, so `make bench` cannot rot between runs."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobServiceClient

from devtools import bench, site_setup
from devtools.bench import BenchError, LoadResult, Measurement

NAME = "bench_probe"

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


@pytest.fixture(scope="module")
def site_environment(postgres, azurite) -> dict[str, str]:
    environment = site_setup.prepare_site(postgres, azurite, NAME)
    yield environment
    postgres.drop_database(NAME)
    postgres.execute(f'DROP ROLE "{NAME}"')


@pytest.fixture(scope="module")
def seeded(postgres, site_environment) -> list[str]:
    photo_names = bench.upload_photos(site_environment, bench.sample_photos(2))
    bench.seed(postgres, NAME, photo_names, restaurants=3, reviews_per_restaurant=2)
    return photo_names


def test_seed_inserts_every_restaurant_with_its_reviews_and_photos(postgres, seeded):
    per_restaurant = postgres.execute(
        "SELECT restaurant_id, count(*), min(rating), max(rating), "
        "array_agg(DISTINCT photo_name) FROM reviews GROUP BY restaurant_id ORDER BY 1",
        database=NAME,
    )
    assert postgres.execute("SELECT count(*) FROM restaurants", database=NAME) == [(3,)]
    assert len(per_restaurant) == 3
    for _restaurant, reviews, lowest, highest, photos in per_restaurant:
        assert reviews == 2
        assert 1 <= lowest <= highest <= 5
        assert set(photos) <= set(seeded)


def test_seeded_photos_are_stored_under_the_sites_names(azurite, seeded):
    assert len(set(seeded)) == 2  # distinct images, distinct content-addressed names
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string).get_container_client(site_setup.PHOTO_CONTAINER)
    for name in seeded:
        properties = container.get_blob_client(name).get_blob_properties()
        assert properties.content_settings.content_type == "image/jpeg"


def test_site_under_gunicorn_serves_the_seeded_pages_to_wrk(site_environment, seeded):
    with bench.gunicorn("webapp:create_app()", site_environment, ready_path="/healthz") as site:
        home = bench.run_wrk(site + "/", duration=1, connections=2)
        photo = bench.run_wrk(f"{site}/photos/{seeded[0]}", duration=1, connections=2)
    for result in (home, photo):
        assert result.errors == 0
        assert result.requests_per_second > 0
        assert result.p99_ms > 0


def test_parse_wrk_output_reads_rate_p99_in_ms_and_every_error_kind():
    result = bench.parse_wrk_output(WRK_OUTPUT_WITH_ERRORS)
    assert result == LoadResult(requests_per_second=11.95, p99_ms=1850.0, errors=10)


def test_parse_wrk_output_without_latency_distribution_is_a_clear_error():
    without_latency = WRK_OUTPUT_WITH_ERRORS.replace("     99%    1.85s\n", "")
    with pytest.raises(BenchError, match="--latency"):
        bench.parse_wrk_output(without_latency)


def measurement(endpoint: str, rate: float, errors: int = 0) -> Measurement:
    return Measurement(endpoint, LoadResult(requests_per_second=rate, p99_ms=5.0, errors=errors))


def test_home_page_below_the_target_ratio_fails_the_run():
    baseline = measurement("trivial", 1000)
    assert bench.problems(baseline, measurement("home", 400), [measurement("home", 400)]) == []
    slow = measurement("home", 399)
    assert bench.problems(baseline, slow, [slow]) == [
        "home page at 40% of the trivial endpoint (target: at least 40%)"]


def test_any_failed_request_fails_the_run():
    baseline = measurement("trivial", 1000)
    home = measurement("home", 900)
    assert bench.problems(baseline, home, [home, measurement("photo", 800, errors=2)]) == [
        "photo: 2 failed requests"]


def test_table_shows_each_endpoint_with_its_ratio():
    table = bench.format_table(measurement("trivial", 1000), [measurement("home", 450)])
    lines = table.splitlines()
    assert lines[0].split() == ["endpoint", "req/s", "p99", "errors", "vs", "trivial"]
    assert lines[2].split() == ["trivial", "1000", "5.0", "ms", "0", "100%"]
    assert lines[3].split() == ["home", "450", "5.0", "ms", "0", "45%"]


def test_rounds_combine_to_mean_rate_worst_p99_and_all_errors():
    combined = bench.combine([LoadResult(100.0, 5.0, 0), LoadResult(300.0, 9.0, 2)])
    assert combined == LoadResult(requests_per_second=200.0, p99_ms=9.0, errors=2)


def test_measure_in_rounds_loads_every_target_and_labels_the_results(monkeypatch):
    monkeypatch.setattr(bench, "WARM_UP_SECONDS", 1)
    with bench.gunicorn("devtools.bench:create_trivial_app()", {}) as trivial:
        measurements = bench.measure_in_rounds(
            {"ok": trivial + "/", "missing": trivial + "/missing"}, duration=2, connections=2)
    by_label = {m.endpoint: m.result for m in measurements}
    assert list(by_label) == ["ok", "missing"]
    assert by_label["ok"].errors == 0 and by_label["ok"].requests_per_second > 0
    assert by_label["missing"].errors > 0  # every 404 is a non-2xx/3xx response for wrk
