"""Refusing forms sent from other sites, security headers and cookie flags behind App Service's
HTTPS front end."""

from __future__ import annotations

import hmac
import io
import logging
import re
from collections.abc import Callable

import flask
import pytest
from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import BadSignature, Serializer, Signer

from tests.webapp.conftest import SECRET_KEY, dispose
from webapp import create_app, security

FORM_PAGE = "/restaurants/new"
RESTAURANT = {"name": "Posted Place", "street_address": "1 Main Street"}
REFUSED_TITLE = "Form sent from another website"


# --- Forms sent from other sites ------------------------------------------------------------
# The browser says where a form comes from (webapp/security.py): Sec-Fetch-Site when it sends
# it, else Origin. The test client's requests go to http://localhost.

FROM_ANOTHER_SITE = {
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    # A sibling subdomain is another origin: it may be someone else's site.
    "Sec-Fetch-Site same-site": {"Sec-Fetch-Site": "same-site"},
    "only an Origin of another host": {"Origin": "https://evil.example"},
    "only an Origin on another port": {"Origin": "http://localhost:8080"},
    # Sandboxed frames, data: URLs and some redirects send an opaque origin.
    "only Origin null": {"Origin": "null"},
    # The browser's own word wins over an Origin a page cannot forge anyway.
    "cross-site although Origin matches": {"Sec-Fetch-Site": "cross-site",
                                           "Origin": "http://localhost"},
}
FROM_THE_SITE = {
    "Sec-Fetch-Site same-origin": {"Sec-Fetch-Site": "same-origin"},
    # Started by the visitor (address bar, bookmark, reload): no other site involved.
    "Sec-Fetch-Site none": {"Sec-Fetch-Site": "none"},
    # curl, scripts, monitoring: CSRF is an attack through browsers only.
    "no header at all": {},
    # Browsers too old for Fetch Metadata still send Origin on a POST.
    "only an Origin of the site": {"Origin": "http://localhost"},
    "over HTTPS behind the front end": {"X-Forwarded-Proto": "https",
                                        "Origin": "https://localhost"},
}


def count(run_sql, table: str) -> int:
    return run_sql(f"SELECT count(*) FROM {table}")[0][0]


@pytest.fixture
def restaurant_id(run_sql) -> int:
    [(restaurant_id,)] = run_sql("INSERT INTO restaurants (name, street_address) "
                                 "VALUES ('Target Bistro', '1 A') RETURNING id")
    return restaurant_id


@pytest.fixture
def blob_count(container) -> Callable[[], int]:
    return lambda: len(list(container.list_blobs())) if container.exists() else 0


def post_restaurant(client: FlaskClient, headers: dict):
    return client.post(FORM_PAGE, data=RESTAURANT, headers=headers)


def post_review(client: FlaskClient, restaurant_id: int, headers: dict, photo: bytes,
                reviewer_name: str = "Ada"):
    data = {"reviewer_name": reviewer_name, "rating": "4", "review_text": "Lovely soup.",
            "photo": (io.BytesIO(photo), "soup.png")}
    return client.post(f"/restaurants/{restaurant_id}/reviews", data=data, headers=headers,
                       content_type="multipart/form-data")


def assert_refused(response) -> None:
    assert response.status_code == 403, response.text
    assert f"<h1>{REFUSED_TITLE}</h1>" in response.text
    assert "open the page here and send the form from there" in response.text


@pytest.mark.parametrize("headers", FROM_ANOTHER_SITE.values(), ids=FROM_ANOTHER_SITE.keys())
def test_a_restaurant_form_from_another_site_is_refused_and_saves_nothing(client, run_sql,
                                                                         headers):
    assert_refused(post_restaurant(client, headers))
    assert count(run_sql, "restaurants") == 0


@pytest.mark.parametrize("headers", FROM_ANOTHER_SITE.values(), ids=FROM_ANOTHER_SITE.keys())
def test_a_review_from_another_site_is_refused_and_saves_nothing(client, restaurant_id, run_sql,
                                                                 blob_count, make_image,
                                                                 headers):
    assert_refused(post_review(client, restaurant_id, headers, make_image("PNG")))
    assert count(run_sql, "reviews") == 0
    assert blob_count() == 0  # the photo was never read, let alone stored


@pytest.mark.parametrize("headers", FROM_THE_SITE.values(), ids=FROM_THE_SITE.keys())
def test_a_restaurant_form_from_the_site_itself_is_saved(client, run_sql, headers):
    response = post_restaurant(client, headers)
    assert response.status_code == 303, response.text
    assert run_sql("SELECT name FROM restaurants") == [(RESTAURANT["name"],)]


@pytest.mark.parametrize("headers", FROM_THE_SITE.values(), ids=FROM_THE_SITE.keys())
def test_a_review_from_the_site_itself_is_saved_with_its_photo(client, restaurant_id, run_sql,
                                                               blob_count, make_image,
                                                               headers):
    response = post_review(client, restaurant_id, headers, make_image("PNG"))
    assert response.status_code == 303, response.text
    assert run_sql("SELECT reviewer_name FROM reviews") == [("Ada",)]
    assert blob_count() == 1


def test_links_from_other_sites_open_every_page(client, restaurant_id):
    for page in ("/", f"/restaurants/{restaurant_id}", FORM_PAGE):
        response = client.get(page, headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 200, page
        assert REFUSED_TITLE not in response.text


def test_a_refusal_logs_one_warning_with_the_origin_but_not_the_form(client, restaurant_id,
                                                                     make_image, caplog):
    reviewer = "Zebulon Quackenbush-Ferreira"
    with caplog.at_level(logging.DEBUG):
        post_review(client, restaurant_id, {"Origin": "https://evil.example"},
                    make_image("PNG"), reviewer_name=reviewer)

    [warning] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    message = warning.getMessage()
    assert "POST" in message
    assert f"/restaurants/{restaurant_id}/reviews" in message
    assert "Origin: https://evil.example" in message
    assert "Sec-Fetch-Site: -" in message  # the browser did not say
    assert reviewer not in caplog.text
    assert "Lovely soup" not in caplog.text


def test_reading_pages_sets_no_cookie(client, restaurant_id):
    # Why forms carry no CSRF token: a reader of the site is not given a session to hold one.
    for page in ("/", f"/restaurants/{restaurant_id}", FORM_PAGE):
        response = client.get(page)
        assert response.status_code == 200, page
        assert "Set-Cookie" not in response.headers, page
    assert client.get_cookie("session") is None


def test_pages_with_a_form_are_never_stored_by_a_cache(client, restaurant_id):
    # Their submission token is one visitor's: a second visitor sent the same one would have
    # their review dropped as a repeat of the first.
    for page in (FORM_PAGE, f"/restaurants/{restaurant_id}"):
        response = client.get(page)
        assert 'name="submission_token"' in response.text, page
        assert response.headers["Cache-Control"] == "no-store", page
    # A page without a form may be kept.
    assert "Cache-Control" not in client.get("/").headers


def test_a_form_shown_again_with_its_errors_is_never_stored_by_a_cache(client, restaurant_id):
    # It renders the token that was posted, not a new one: still the visitor's own.
    token = "0d6f1b4e-8c3a-4f7e-9b2d-5a1c3e7f9b0d"
    response = client.post(f"/restaurants/{restaurant_id}/reviews", data={
        "reviewer_name": "Ada", "rating": "4", "review_text": "", "submission_token": token})
    assert response.status_code == 400
    assert f'value="{token}"' in response.text
    assert response.headers["Cache-Control"] == "no-store"


# Any header text an HTTP request can carry (no line breaks or NUL).
header_values = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\0"),
                        max_size=30)
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(sec_fetch_site=header_values.filter(lambda value: value.strip() not in
                                           ("same-origin", "none")),
       origin=st.one_of(st.none(), st.just("http://localhost"), header_values))
def test_any_other_sec_fetch_site_is_refused_whatever_the_origin(client, run_sql,
                                                                 sec_fetch_site, origin):
    headers = {"Sec-Fetch-Site": sec_fetch_site}
    if origin is not None:
        headers["Origin"] = origin

    assert_refused(post_restaurant(client, headers))
    assert count(run_sql, "restaurants") == 0


@PROPERTY
@given(origin=header_values.filter(
    lambda value: value.strip().partition("://")[2] != "localhost"))
def test_without_sec_fetch_site_any_origin_not_naming_the_host_is_refused(client, run_sql,
                                                                          origin):
    # Malformed ones included: nothing in them is parsed, so none can become a server error.
    assert_refused(post_restaurant(client, {"Origin": origin}))
    assert count(run_sql, "restaurants") == 0


# --- Security headers -----------------------------------------------------------------------


def test_pages_carry_security_headers(client):
    headers = client.get("/").headers

    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in headers  # plain HTTP locally


def test_every_response_carries_them_once_and_a_page_may_set_its_own(app, client):
    @app.get("/framed-widget")
    def widget():
        return "widget", {"X-Frame-Options": "SAMEORIGIN"}

    for path, status in (("/no-such-page", 404), ("/framed-widget", 200)):
        response = client.get(path, headers={"X-Forwarded-Proto": "https"})
        assert response.status_code == status
        for name in (*security.SECURITY_HEADERS, "Strict-Transport-Security"):
            assert len(response.headers.getlist(name)) == 1, (path, name)
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_healthz_is_plain_and_uncached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"
    assert response.headers["Cache-Control"] == "no-store"


def test_no_external_assets_are_referenced(client):
    html = client.get("/").text
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert client.get("/static/style.css").status_code == 200


# --- The session cookie: flash messages after a post ----------------------------------------
# The site signs it with its own reusable serializer (webapp/security.py): what it writes must
# stay exactly what stock Flask reads, and the other way round.

OLD_SECRET_KEY = "an-earlier-secret-key-0123456789"  # noqa: S105 - tests only
FLASH = ("message", "Thank you for your review!")  # what flask.flash keeps in the session
SESSION_PAYLOADS = {
    "one flash message": {"_flashes": [FLASH]},
    "short but compressible": {"note": "x" * 40},
    "several flash messages": {
        "_flashes": [FLASH, ("message", "Chez Test was added. Be the first to review it!")],
    },
    "long and random": {"_flashes": [FLASH], "other": "f3a9c1e07b5d2846" * 8},
}


def tampered(signed: str) -> str:
    # The first character: a base64 string's last one may carry only padding bits.
    return ("B" if signed[0] == "A" else "A") + signed[1:]


def session_cookie(response) -> str:
    return next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")
    )


def test_session_cookie_is_secure_behind_the_https_front_end(client):
    # App Service terminates TLS and forwards plain HTTP with X-Forwarded-Proto: https.
    response = client.post(FORM_PAGE, data=RESTAURANT, headers={"X-Forwarded-Proto": "https"})
    cookie = session_cookie(response)  # the flash message lives in the session
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_session_cookie_is_not_secure_over_plain_local_http(client):
    cookie = session_cookie(client.post(FORM_PAGE, data=RESTAURANT))
    assert "Secure" not in cookie
    assert "HttpOnly" in cookie


def test_the_flash_message_of_a_post_is_shown_on_the_next_page_only(client):
    response = client.post(FORM_PAGE, data=RESTAURANT)
    message = f"{RESTAURANT['name']} was added."

    assert message in client.get(response.headers["Location"]).text
    assert message not in client.get(response.headers["Location"]).text


def test_a_tampered_session_cookie_is_ignored_not_shown_or_an_error(client):
    response = client.post(FORM_PAGE, data=RESTAURANT)
    client.set_cookie("session", tampered(client.get_cookie("session").value))

    page = client.get(response.headers["Location"])

    assert page.status_code == 200
    assert f"{RESTAURANT['name']} was added." not in page.text


def test_a_flash_message_signed_before_a_key_rotation_is_still_shown(config):
    # Flask reads the session through SECRET_KEY_FALLBACKS: a post just before a deployment
    # that rotates the key still shows its message just after.
    before = create_app({**config, "SECRET_KEY": OLD_SECRET_KEY})
    after = create_app({**config, "SECRET_KEY_FALLBACKS": [OLD_SECRET_KEY]})
    try:
        old_client = before.test_client()
        response = old_client.post(FORM_PAGE, data=RESTAURANT)
        assert response.status_code == 303
        client = after.test_client()
        client.set_cookie("session", old_client.get_cookie("session").value)

        page = client.get(response.headers["Location"])
        assert f"{RESTAURANT['name']} was added." in page.text
    finally:
        dispose(before)
        dispose(after)


def test_the_reused_session_signer_follows_a_changed_secret_key(app):
    interface = app.session_interface
    old_key = app.secret_key
    payload = SESSION_PAYLOADS["one flash message"]
    signed = interface.get_signing_serializer(app).dumps(payload)
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app).loads(signed) == payload

    app.secret_key = "another-secret-key-0123456789"
    with pytest.raises(BadSignature):
        interface.get_signing_serializer(app).loads(signed)

    app.config["SECRET_KEY_FALLBACKS"] = [old_key]  # a key rotation keeps old sessions
    assert interface.get_signing_serializer(app).loads(signed) == payload


@pytest.fixture
def signing_app() -> Flask:
    """A bare app with the site's security setup and nothing else (no database)."""
    app = Flask(__name__)
    app.secret_key = SECRET_KEY
    security.init_app(app)
    return app


def stock_session_serializer(app: Flask):
    return SecureCookieSessionInterface().get_signing_serializer(app)


@pytest.mark.parametrize("payload", SESSION_PAYLOADS.values(), ids=SESSION_PAYLOADS.keys())
def test_session_cookies_are_read_by_stock_flask_and_the_other_way_round(signing_app, payload):
    ours = signing_app.session_interface.get_signing_serializer(signing_app)
    stock = stock_session_serializer(signing_app)

    assert stock.loads(ours.dumps(payload)) == payload
    assert ours.loads(stock.dumps(payload)) == payload


SESSION_USES = {
    "untouched": lambda session: None,
    "read": lambda session: session.get("_flashes"),
    "emptied": lambda session: session.clear(),
    "written": lambda session: session.update(_flashes=[FLASH]),
    "made permanent": lambda session: setattr(session, "permanent", True),
}


@pytest.mark.parametrize("use", SESSION_USES.values(), ids=SESSION_USES.keys())
@pytest.mark.parametrize("cookie", ["", "with a cookie"])
@pytest.mark.parametrize("own_vary", ["", "Accept-Encoding"])
def test_a_response_carries_the_session_headers_stock_flask_gives_it(signing_app, use, cookie,
                                                                     own_vary):
    def headers(app: Flask) -> list[tuple[str, str]]:
        @app.get("/use")
        def use_session():
            use(session)
            return "ok", {"Vary": own_vary} if own_vary else {}

        client = app.test_client()
        if cookie:
            client.set_cookie("session", app.session_interface.get_signing_serializer(app)
                              .dumps(SESSION_PAYLOADS["one flash message"]))
        # A signed value holds the time it was signed: only whether there is one is compared.
        return [(name, re.sub(r"^session=[^;]+", "session=(signed)", value))
                for name, value in client.get("/use").headers if name in ("Set-Cookie", "Vary")]

    stock = Flask(__name__)
    stock.secret_key = SECRET_KEY
    assert headers(signing_app) == headers(stock)


def test_a_request_without_cookies_parses_none(signing_app, monkeypatch):
    parsed = []
    monkeypatch.setattr(flask.Request, "cookies", property(lambda _request: parsed.append(1)))

    assert signing_app.test_client().get("/missing").status_code == 404
    assert parsed == []


def test_a_visitor_with_nothing_in_the_session_costs_no_cookie_attributes(signing_app,
                                                                          monkeypatch):
    looked_up = []
    monkeypatch.setattr(SecureCookieSessionInterface, "get_cookie_domain",
                        lambda _interface, _app: looked_up.append("domain"))

    response = signing_app.test_client().get("/missing")  # reads nothing in the session

    assert response.status_code == 404
    assert looked_up == []


def test_short_payloads_are_not_compressed_and_stock_flask_still_reads_them(signing_app):
    payload = SESSION_PAYLOADS["short but compressible"]
    ours = signing_app.session_interface.get_signing_serializer(signing_app).dumps(payload)
    stock = stock_session_serializer(signing_app).dumps(payload)

    assert stock.startswith(".")  # what itsdangerous marks as compressed
    assert not ours.startswith(".")
    assert stock_session_serializer(signing_app).loads(ours) == payload


def test_session_cookies_follow_secret_key_fallbacks_like_stock_flask(signing_app):
    payload = SESSION_PAYLOADS["one flash message"]
    signing_app.secret_key = OLD_SECRET_KEY
    signed_with_old_key = stock_session_serializer(signing_app).dumps(payload)

    signing_app.secret_key = SECRET_KEY
    signing_app.config["SECRET_KEY_FALLBACKS"] = [OLD_SECRET_KEY]
    ours = signing_app.session_interface.get_signing_serializer(signing_app)
    assert ours.loads(signed_with_old_key) == payload
    # New cookies are signed with the current key, which stock Flask without the fallback reads.
    signing_app.config["SECRET_KEY_FALLBACKS"] = []
    assert stock_session_serializer(signing_app).loads(ours.dumps(payload)) == payload
    with pytest.raises(BadSignature):
        signing_app.session_interface.get_signing_serializer(signing_app).loads(
            signed_with_old_key)


def test_a_tampered_session_cookie_is_refused(signing_app):
    forged = tampered(signing_app.session_interface.get_signing_serializer(signing_app).dumps(
        SESSION_PAYLOADS["one flash message"]))

    for serializer in (signing_app.session_interface.get_signing_serializer(signing_app),
                       stock_session_serializer(signing_app)):
        with pytest.raises(BadSignature):
            serializer.loads(forged)


NO_SIGNING_WORK = {"serializers": 0, "derived keys": 0, "keyed hmacs": 0}


class SigningWork:
    """Counts the signing set-up work done: serializers built, keys derived and HMACs keyed."""

    def __init__(self, monkeypatch) -> None:
        self.counts = dict(NO_SIGNING_WORK)
        self._count(monkeypatch, Serializer, "__init__", "serializers")
        self._count(monkeypatch, Signer, "derive_key", "derived keys")
        self._count(monkeypatch, hmac, "new", "keyed hmacs")

    def _count(self, monkeypatch, owner, name: str, counter: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.counts[counter] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def test_flash_cookies_are_signed_without_rebuilding_serializers_or_keys(app, monkeypatch):
    client = app.test_client(use_cookies=False)  # every post a first visit
    client.post(FORM_PAGE, data=RESTAURANT)  # builds what is built once per process
    work = SigningWork(monkeypatch)

    for number in range(10):
        response = client.post(FORM_PAGE, data={**RESTAURANT, "name": f"Signed {number}"})
        assert response.status_code == 303
        assert session_cookie(response)
    assert work.counts == NO_SIGNING_WORK
