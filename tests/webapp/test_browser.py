"""A visitor's walk through the site in Debian's headless Chromium (real PostgreSQL, Azurite).

home -> add a restaurant -> add a review with a photo -> the photo is visible (decoded by the
browser from a URL the site serves). A full-page screenshot is kept in the test's tmp folder.
"""

from __future__ import annotations

import io
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

import webapp
from devtools.services import AzuriteServer, PostgresCluster
from webapp.db import get_engine, upgrade_database

pytestmark = pytest.mark.browser

# Debian packages it as `chromium`; some Ubuntu images name the binary `chromium-browser`.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless, offline and quiet: no GPU, no QUIC, no background calls to Google services.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
APP_ROLE = "browser_site"
APP_DATABASE = "browser_site"


@pytest.fixture(scope="module")
def site_url(postgres: PostgresCluster, azurite: AzuriteServer) -> Iterator[str]:
    """The site under werkzeug's threaded server on a free loopback port."""
    password = secrets.token_urlsafe(16)
    postgres.create_role(APP_ROLE, password=password)
    postgres.create_database(APP_DATABASE, owner=APP_ROLE)
    app = webapp.create_app({
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": postgres.url(APP_DATABASE, user=APP_ROLE, password=password),
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AZURE_STORAGE_CONTAINER": "browser-photos",
    })
    upgrade_database(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    get_engine(app).dispose()
    postgres.drop_database(APP_DATABASE)
    postgres.execute(f'DROP ROLE "{APP_ROLE}"')


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("Chromium is missing: run `make deps` (it apt-installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "terrace.png"
    image = Image.new("RGB", (240, 160), (230, 150, 60))
    image.paste((40, 110, 70), (60, 40, 180, 120))  # a green square: a recognisable picture
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_visitor_adds_a_restaurant_and_a_review_with_a_photo(page, site_url, photo_file,
                                                             tmp_path):
    page.goto(site_url)
    expect(page.get_by_role("heading", name="Restaurants", level=1)).to_be_visible()

    page.get_by_role("link", name="Add a restaurant").first.click()
    page.get_by_label("Name", exact=True).fill("Chromium Café")
    page.get_by_label("Street address", exact=True).fill("12 Headless Road")
    page.get_by_label("Description (optional)", exact=True).fill(
        "Terrace seating & <b>not</b> bold.")
    page.get_by_role("button", name="Add restaurant").click()

    expect(page.get_by_role("heading", name="Chromium Café", level=1)).to_be_visible()
    expect(page.get_by_text("Terrace seating & <b>not</b> bold.")).to_be_visible()  # escaped
    page.get_by_label("Your name", exact=True).fill("Ada")
    page.get_by_label("4 stars", exact=True).check()
    page.get_by_label("Your review", exact=True).fill("Lovely terrace, quick service.")
    page.get_by_label("Photo (optional: JPEG, PNG or WebP)", exact=True).set_input_files(
        photo_file)
    page.get_by_role("button", name="Submit review").click()

    expect(page.get_by_text("Thank you for your review!")).to_be_visible()
    expect(page.get_by_text("Lovely terrace, quick service.")).to_be_visible()
    photo = page.get_by_role("img", name="Photo from Ada's review")
    photo.scroll_into_view_if_needed()  # it is lazy-loaded
    expect(photo).to_be_visible()
    photo.evaluate("img => img.decode()")
    assert photo.evaluate("img => img.naturalWidth") == 240
    source = urlsplit(photo.evaluate("img => img.currentSrc"))
    assert f"{source.scheme}://{source.netloc}" == site_url  # served through the site
    assert source.path.startswith("/photos/")

    page.screenshot(path=tmp_path / "review-with-photo.png", full_page=True)
    detail_url = page.url

    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.goto(detail_url)
    expect(photo).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        "the details page scrolls sideways on a phone"
    page.screenshot(path=tmp_path / "review-on-phone.png", full_page=True)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(site_url)
    expect(page.get_by_role("link", name="Chromium Café")).to_be_visible()
    expect(page.get_by_text("4.0 · 1 review")).to_be_visible()
    page.screenshot(path=tmp_path / "home.png", full_page=True)
