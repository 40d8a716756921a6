"""Boot test: the deploy zip starts the way App Service starts it, on a bare interpreter.

The zip is extracted into an empty folder and started with the exact `app_command_line` the dev
stack declares, under a Python that has nothing installed, with App Service's platform variables
and the dev stack's app settings. The settings that only work inside Azure are swapped for the
local shortcuts of the env-var contract (PostgreSQL and Azurite run for real on loopback).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from PIL import Image

from devtools.readiness import NotReadyError, wait_for_http_ok
from devtools.services import free_port
from devtools.site_setup import child_environment, prepare_site
from release.build import DEFAULT_PYTHON_VERSION
from review.synth import cached_run
from tests.release.app_service import (
    BOOT_TIMEOUT_SECONDS,
    RunningSite,
    app_service_environment,
    can_import_flask,
    extract,
    start_site,
    stop,
)
from tests.site_pages import png_photo

# What the dev stack must declare for the package to start (infra/README.md, App settings).
EXPECTED_DEV_SETTINGS = {
    "AZURE_CLIENT_ID", "AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_DATABASE",
    "AZURE_POSTGRESQL_USER", "AZURE_POSTGRESQL_PORT", "AZURE_POSTGRESQL_SSLMODE",
    "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_CONTAINER",
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "SECRET_KEY", "SCM_DO_BUILD_DURING_DEPLOYMENT",
}  # fmt: skip
# Settings that only work inside Azure (managed identity, Key Vault references, the real
# ingestion endpoint); the boot test replaces them with the contract's local shortcuts.
AZURE_ONLY_SETTINGS = {
    "AZURE_CLIENT_ID", "AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_DATABASE",
    "AZURE_POSTGRESQL_USER", "AZURE_POSTGRESQL_PORT", "AZURE_POSTGRESQL_SSLMODE",
    "AZURE_STORAGE_ACCOUNT_URL", "SECRET_KEY", "APPLICATIONINSIGHTS_CONNECTION_STRING",
}  # fmt: skip


# --- the dev stack and the interpreter ---------------------------------------------------------


@pytest.fixture(scope="session")
def dev_site_config() -> dict:
    """The dev stack's web app siteConfig, as the Pulumi program declares it (offline)."""
    apps = [r for r in cached_run("dev").resources if r.type == "azure-native:web:WebApp"]
    assert len(apps) == 1, "the dev stack declares one web app"
    return apps[0].inputs["siteConfig"]


def declared_settings(site_config: dict) -> dict[str, str]:
    return {pair["name"]: pair["value"] for pair in site_config["appSettings"]}


# --- a stand-in for Application Insights' ingestion endpoint -------------------------------


class IngestionSink:
    """Accepts telemetry uploads on loopback and keeps their decoded bodies."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                sink.bodies.append(body.decode("utf-8", "replace"))
                reply = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ingestion() -> Iterator[IngestionSink]:
    sink = IngestionSink()
    yield sink
    sink.close()


# --- starting the package like App Service does ---------------------------------------------


def local_app_settings(declared: dict[str, str], postgres, azurite, sink_url: str) -> dict:
    kept = {name: value for name, value in declared.items() if name not in AZURE_ONLY_SETTINGS}
    # The same setup as `make dev` and `make bench`, minus the migrations: startup.py runs
    # them, and that is part of what this test proves.
    site = prepare_site(postgres, azurite, f"boot_{uuid.uuid4().hex[:8]}",
                        container=kept["AZURE_STORAGE_CONTAINER"], migrate=False)
    instrumentation_key = uuid.uuid4()
    return {
        **kept,
        **site,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey={instrumentation_key};IngestionEndpoint={sink_url};"
            f"LiveEndpoint={sink_url}"
        ),
        # Statsbeat reports to a fixed Microsoft endpoint; nothing here can reach it.
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        # Azure Monitor's default sampler keeps up to 5 traces a second per process, adaptively:
        # on a busy machine it can drop the test's few requests. Every trace is kept here.
        "OTEL_TRACES_SAMPLER": "always_on",
    }


def wait_until_healthy(site: RunningSite) -> float:
    """Seconds from start to the first 200 on /healthz."""
    remaining = site.started_at + BOOT_TIMEOUT_SECONDS - time.monotonic()
    try:
        wait_for_http_ok(site.process, f"{site.base_url}/healthz", remaining)
    except NotReadyError as failure:
        pytest.fail(f"{failure}:\n{site.output()}")
    return time.monotonic() - site.started_at


# --- the review round trip ------------------------------------------------------------------


def post_review_with_photo(base_url: str) -> bytes:
    """Create a restaurant, review it with a photo, and return the photo as the site serves it."""
    browser = requests.Session()
    created = browser.post(
        f"{base_url}/restaurants/new",
        data={"name": "Boot Test Bistro", "street_address": "1 Package Street",
              "description": "Started from the zip."},
        allow_redirects=False, timeout=10,
    )  # fmt: skip
    assert created.status_code == 303, created.text
    detail_url = urljoin(base_url + "/", created.headers["Location"])

    reviewed = browser.post(
        f"{detail_url}/reviews",
        data={"reviewer_name": "Release Engineer", "rating": "5",
              "review_text": "Booted on a bare interpreter."},
        files={"photo": ("dish.png", png_photo(), "image/png")},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    assert reviewed.status_code == 303, reviewed.text

    page = browser.get(detail_url, timeout=10)
    assert "Booted on a bare interpreter." in page.text
    photo_paths = re.findall(r"/photos/[A-Za-z0-9._-]+", page.text)
    assert photo_paths, "the review page links its photo"
    photo = browser.get(urljoin(base_url + "/", photo_paths[0]), timeout=10)
    assert photo.status_code == 200
    assert photo.headers["Content-Type"].startswith("image/")
    return photo.content


def wait_for_request_telemetry(sink: IngestionSink, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("RequestData" in body for body in sink.bodies):
            return
        time.sleep(0.2)
    kinds = Counter(re.findall(r'"baseType":\s*"(\w+)"', "".join(sink.bodies)))
    pytest.fail(f"no request telemetry reached the ingestion endpoint ({len(sink.bodies)} posts: "
                f"{dict(kinds)})")


# --- the tests --------------------------------------------------------------------------------


def test_dev_stack_declares_what_the_package_expects(dev_site_config):
    assert dev_site_config["appCommandLine"] == "python startup.py"
    assert dev_site_config["linuxFxVersion"] == f"PYTHON|{DEFAULT_PYTHON_VERSION}"
    assert dev_site_config["healthCheckPath"] == "/healthz"
    settings = declared_settings(dev_site_config)
    assert set(settings) == EXPECTED_DEV_SETTINGS
    assert settings["SCM_DO_BUILD_DURING_DEPLOYMENT"] == "false"
    assert "WEBSITE_RUN_FROM_PACKAGE" not in settings  # not supported for Python apps


def test_package_boots_on_a_bare_interpreter_and_round_trips_a_review(
    package, bare_python, python_on_path, dev_site_config, postgres, azurite, ingestion,
    tmp_path, capsys,
):  # fmt: skip
    assert not can_import_flask(str(bare_python)), "the boot interpreter has nothing installed"
    wwwroot = extract(package, tmp_path / "wwwroot")
    env = child_environment(
        local_app_settings(declared_settings(dev_site_config), postgres, azurite, ingestion.url),
        base=app_service_environment(free_port(), tmp_path / "home", python_on_path),
    )

    site = start_site(wwwroot, dev_site_config["appCommandLine"], env)
    try:
        boot_seconds = wait_until_healthy(site)
        served = post_review_with_photo(site.base_url)
        wait_for_request_telemetry(ingestion)
        command_line = Path(f"/proc/{site.process.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        exit_code = stop(site)

    assert Image.open(io.BytesIO(served)).size == (64, 48)
    assert b"gunicorn" in command_line, "startup.py must exec gunicorn, not wrap it"
    assert exit_code == 0, site.output()  # graceful stop on SIGTERM
    output = site.output()
    assert "database migrations applied" in output
    assert '"GET /healthz HTTP/1.1" 200' in output  # gunicorn's access log on stdout
    assert env["SECRET_KEY"] not in output and env["DATABASE_URL"] not in output
    assert not (Path(env["HOME"]) / ".gunicorn").exists()  # nothing written to the shared /home
    with capsys.disabled():
        size_mib = package.stat().st_size / (1 << 20)
        print(f"\n[package] {package.name}: {size_mib:.1f} MiB; boot to first healthy "
              f"/healthz: {boot_seconds:.1f} s on {bare_python}")  # fmt: skip


def test_failed_migration_stops_the_start_with_a_clear_log_line(
    package, python_on_path, dev_site_config, tmp_path
):
    wwwroot = extract(package, tmp_path / "wwwroot")
    password = secrets.token_hex(12)
    unreachable = f"postgresql+psycopg2://boot:{password}@127.0.0.1:{free_port()}/reviews"
    env = {
        **app_service_environment(free_port(), tmp_path / "home", python_on_path),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": unreachable,
        "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    }

    site = start_site(wwwroot, dev_site_config["appCommandLine"], env)
    try:
        exit_code = site.process.wait(timeout=BOOT_TIMEOUT_SECONDS)
    finally:
        stop(site)

    output = site.output()
    assert exit_code != 0
    assert "database migrations failed" in output
    assert "not starting the web server" in output
    assert "Booting worker" not in output  # gunicorn never started
    assert password not in output


def test_bad_gunicorn_setting_is_named_before_anything_starts(
    package, python_on_path, dev_site_config, tmp_path
):
    wwwroot = extract(package, tmp_path / "wwwroot")
    env = {**app_service_environment(free_port(), tmp_path / "home", python_on_path),
           "WEB_CONCURRENCY": "lots"}  # fmt: skip

    site = start_site(wwwroot, dev_site_config["appCommandLine"], env)
    exit_code = site.process.wait(timeout=30)

    assert exit_code == 2
    assert "WEB_CONCURRENCY must be a whole number" in site.output()
    assert "applying database migrations" not in site.output()
