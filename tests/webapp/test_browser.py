"""A visitor's walk through the site in Debian's headless Chromium (real PostgreSQL, Azurite).

home -> add a restaurant -> add a review with a photo -> the photo is visible (decoded by the
browser from a URL the site serves). A full-page screenshot is kept in the test's tmp folder.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def serving(wsgi_app) -> Iterator[int]:
    """``wsgi_app`` under werkzeug's threaded server on a free loopback port (yielded)."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


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
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"
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


FOREIGN_NAME = "Forged Bistro"


@pytest.fixture
def foreign_page_url(site_url: str) -> Iterator[str]:
    """Another website (http://localhost, not the site's 127.0.0.1) whose page posts the site's
    new-restaurant form, as a page planting reviews through its visitors' browsers would."""
    page = (f'<form method="post" action="{site_url}/restaurants/new">'
            f'<input name="name" value="{FOREIGN_NAME}">'
            '<input name="street_address" value="1 Elsewhere Street">'
            '<button>Win a prize</button></form>').encode()

    def foreign_site(_environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page]

    with serving(foreign_site) as port:
        yield f"http://localhost:{port}/"


def test_a_form_posted_from_another_website_is_refused_and_saves_nothing(
        page, foreign_page_url, postgres):
    page.goto(foreign_page_url)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Win a prize").click()

    assert navigation.value.status == 403
    expect(page.get_by_role("heading", name="Form sent from another website")).to_be_visible()
    [[saved]] = postgres.execute("SELECT count(*) FROM restaurants WHERE name = %s",
                                 database=APP_DATABASE, params=(FOREIGN_NAME,))
    assert saved == 0


PHONE = {"width": 390, "height": 844}
MAX_PHOTO_BYTES = 8 * 1024 * 1024  # the site's default limit


@pytest.fixture
def busy_restaurant(postgres: PostgresCluster, site_url: str) -> str:
    """The URL of a restaurant with enough long reviews that the form sits far down a phone."""
    [(restaurant_id,)] = postgres.execute(
        "INSERT INTO restaurants (name, street_address) VALUES ('Busy Bistro', '3 Long Street') "
        "RETURNING id", database=APP_DATABASE)
    postgres.execute(
        "INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text) "
        "SELECT %s, 'Guest ' || n, 4, repeat('A long and thoughtful review. ', 12) "
        "FROM generate_series(1, 12) AS n", database=APP_DATABASE, params=(restaurant_id,))
    return f"{site_url}/restaurants/{restaurant_id}"


def review_count(postgres: PostgresCluster) -> int:
    return postgres.execute("SELECT count(*) FROM reviews", database=APP_DATABASE)[0][0]


def test_a_refused_review_opens_at_the_field_to_fix_on_a_phone(page, busy_restaurant, postgres):
    page.set_viewport_size(PHONE)
    page.goto(busy_restaurant)
    before = review_count(postgres)
    name = page.get_by_label("Your name", exact=True)
    name.fill("\u200b\u200d")  # passes the browser's `required`; shows nothing
    page.get_by_label("5 stars", exact=True).check()
    page.get_by_label("Your review", exact=True).fill("Kept after the error.")
    page.get_by_role("button", name="Submit review").click()

    expect(page.get_by_text("Enter your name.")).to_be_visible()
    expect(name).to_be_focused()
    expect(name).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 1500  # not left at the top of the page
    expect(page.get_by_label("Your review", exact=True)).to_have_value("Kept after the error.")
    assert review_count(postgres) == before


@pytest.fixture
def phone_photo(tmp_path: Path) -> Path:
    """A photo over the site's limit, as phones take them."""
    path = tmp_path / "phone.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * (MAX_PHOTO_BYTES + 512 * 1024))
    return path


def fill_review(page: Page, photo: Path) -> None:
    page.get_by_label("Your name", exact=True).fill("Grace")
    page.get_by_label("3 stars", exact=True).check()
    page.get_by_label("Your review", exact=True).fill("Typed on a phone, kept.")
    page.get_by_label("Photo (optional: JPEG, PNG or WebP)", exact=True).set_input_files(photo)


def test_a_too_large_photo_is_caught_before_it_is_sent(page, busy_restaurant, phone_photo,
                                                       postgres):
    page.set_viewport_size(PHONE)
    page.goto(busy_restaurant)
    before = review_count(postgres)
    fill_review(page, phone_photo)
    warning = page.get_by_text("photos can be up to 8 MiB")
    expect(warning).to_be_visible()

    posted = []
    page.on("request", lambda request: posted.append(request) if request.method == "POST"
            else None)
    page.get_by_role("button", name="Submit review").click()

    expect(page.get_by_label("Photo (optional: JPEG, PNG or WebP)", exact=True)).to_be_focused()
    assert posted == []  # nothing was uploaded
    expect(page.get_by_label("Your review", exact=True)).to_have_value("Typed on a phone, kept.")
    assert review_count(postgres) == before


def test_without_the_script_a_too_large_photo_keeps_the_review(browser, busy_restaurant,
                                                                phone_photo, postgres):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(busy_restaurant)
    before = review_count(postgres)
    fill_review(page, phone_photo)
    page.get_by_role("button", name="Submit review").click()

    expect(page.get_by_text("The photo is larger than 8 MiB")).to_be_visible()
    photo = page.get_by_label("Photo (optional: JPEG, PNG or WebP)", exact=True)
    expect(photo).to_be_focused()
    expect(photo).to_be_in_viewport()
    expect(page.get_by_label("Your name", exact=True)).to_have_value("Grace")
    expect(page.get_by_label("3 stars", exact=True)).to_be_checked()
    expect(page.get_by_label("Your review", exact=True)).to_have_value("Typed on a phone, kept.")
    assert review_count(postgres) == before
    context.close()


def test_a_portrait_photo_is_bounded_and_opens_full_size(page, busy_restaurant, tmp_path):
    portrait = tmp_path / "portrait.png"
    Image.new("RGB", (600, 1600), (90, 60, 150)).save(portrait, format="PNG")
    page.goto(busy_restaurant)
    page.get_by_label("Your name", exact=True).fill("Tall")
    page.get_by_label("2 stars", exact=True).check()
    page.get_by_label("Your review", exact=True).fill("A tall photo.")
    page.get_by_label("Photo (optional: JPEG, PNG or WebP)", exact=True).set_input_files(portrait)
    page.get_by_role("button", name="Submit review").click()

    photo = page.get_by_role("img", name="Photo from Tall's review")
    photo.scroll_into_view_if_needed()
    photo.evaluate("img => img.decode()")
    box = photo.bounding_box()
    assert box["height"] <= 400  # 24rem, not the 1,600 px it has
    assert abs(box["width"] / box["height"] - 600 / 1600) < 0.02  # in proportion
    link = page.get_by_role("link", name="Photo from Tall's review")
    assert link.get_attribute("href") == photo.get_attribute("src")
