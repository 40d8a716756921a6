"""CSRF, security headers and cookie flags behind App Service's HTTPS front end."""

from __future__ import annotations

import hmac
import logging
import re
import time
import zlib
from datetime import UTC, datetime

import flask
import flask_wtf.csrf
import pytest
from flask import Flask, session
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface, session_json_serializer
from itsdangerous import BadSignature, Serializer, Signer, TimestampSigner, URLSafeTimedSerializer
from markupsafe import Markup
from wtforms import ValidationError

from tests.site_pages import csrf_token
from tests.webapp.conftest import SECRET_KEY, dispose
from webapp import create_app, security
from webapp.db import get_engine


@pytest.fixture
def csrf_client(config):
    """A client of an app with CSRF protection on, as in production."""
    app: Flask = create_app({**config, "WTF_CSRF_ENABLED": True})
    yield app.test_client()
    get_engine(app).dispose()
    app.extensions["photo_store"].close()


def test_forms_without_csrf_token_are_rejected_and_save_nothing(csrf_client, run_sql):
    response = csrf_client.post("/restaurants/new", data={"name": "Forged", "street_address": "1"})

    assert response.status_code == 400
    assert "Form expired" in response.text
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


def test_forms_with_the_token_from_the_page_are_accepted(csrf_client, run_sql):
    FORM_PAGE = csrf_client.get("/restaurants/new")
    token = csrf_token(FORM_PAGE.text)

    response = csrf_client.post(
        "/restaurants/new", data={"name": "Real", "street_address": "1", "csrf_token": token}
    )
    assert response.status_code == 303
    restaurant_page = csrf_client.get(response.headers["Location"]).text

    # The review form carries its own token too.
    forged_review = csrf_client.post(
        response.headers["Location"] + "/reviews",
        data={"reviewer_name": "Eve", "rating": "1", "review_text": "forged"},
    )
    assert forged_review.status_code == 400
    review = csrf_client.post(
        response.headers["Location"] + "/reviews",
        data={"reviewer_name": "Bob", "rating": "5", "review_text": "real",
              "csrf_token": csrf_token(restaurant_page)},
    )
    assert review.status_code == 303
    assert run_sql("SELECT reviewer_name FROM reviews") == [("Bob",)]


def test_review_over_https_behind_the_front_end_needs_a_same_origin_referer(csrf_client,
                                                                            run_sql):
    # App Service ends TLS and forwards plain HTTP: Flask-WTF then sees HTTPS (through
    # ProxyFix) and, as for any HTTPS request, also insists on a same-origin Referer.
    [(restaurant_id,)] = run_sql(
        "INSERT INTO restaurants (name, street_address) VALUES ('Secure Bistro', '1 A') "
        "RETURNING id"
    )
    # Plain-HTTP requests as the front end forwards them; only the header says HTTPS.
    page = f"/restaurants/{restaurant_id}"
    https = {"X-Forwarded-Proto": "https"}
    token = csrf_token(csrf_client.get(page, headers=https).text)
    review = {"reviewer_name": "Bob", "rating": "5", "review_text": "real", "csrf_token": token}

    without_referer = csrf_client.post(f"{page}/reviews", data=review, headers=https)
    assert without_referer.status_code == 400
    other_site = csrf_client.post(f"{page}/reviews", data=review,
                                  headers={**https, "Referer": "https://evil.example/"})
    assert other_site.status_code == 400
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]

    accepted = csrf_client.post(f"{page}/reviews", data=review,
                                headers={**https, "Referer": f"https://localhost{page}"})
    assert accepted.status_code == 303
    assert accepted.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert run_sql("SELECT reviewer_name FROM reviews") == [("Bob",)]


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


def session_cookie(response) -> str:
    return next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")
    )


def test_session_cookie_is_secure_behind_the_https_front_end(client):
    # App Service terminates TLS and forwards plain HTTP with X-Forwarded-Proto: https.
    response = client.post(
        "/restaurants/new",
        data={"name": "Secure", "street_address": "1"},
        headers={"X-Forwarded-Proto": "https"},
    )
    cookie = session_cookie(response)  # the flash message lives in the session
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_the_reused_session_signer_follows_a_changed_secret_key(app):
    interface = app.session_interface
    old_key = app.secret_key
    signed = interface.get_signing_serializer(app).dumps({"csrf_token": "t"})
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app).loads(signed) == {"csrf_token": "t"}

    app.secret_key = "another-secret-key-0123456789"
    with pytest.raises(BadSignature):
        interface.get_signing_serializer(app).loads(signed)

    app.config["SECRET_KEY_FALLBACKS"] = [old_key]  # a key rotation keeps old sessions
    assert interface.get_signing_serializer(app).loads(signed) == {"csrf_token": "t"}


def test_session_cookie_is_not_secure_over_plain_local_http(client):
    response = client.post("/restaurants/new", data={"name": "Local", "street_address": "1"})
    cookie = session_cookie(response)
    assert "Secure" not in cookie
    assert "HttpOnly" in cookie


def test_healthz_is_plain_and_uncached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"
    assert response.headers["Cache-Control"] == "no-store"


def test_no_external_assets_are_referenced(client):
    html = client.get("/").text
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert client.get("/static/style.css").status_code == 200


@pytest.mark.parametrize("referer", [
    "https://localhost:abc/restaurants/new",  # port not a number
    "https://localhost:99999/restaurants/new",  # port out of range
    "https://[::1/restaurants/new",  # unclosed IPv6 bracket
])
def test_a_malformed_referer_over_https_is_a_csrf_400(csrf_client, run_sql, referer):
    https = {"X-Forwarded-Proto": "https"}
    token = csrf_token(csrf_client.get("/restaurants/new", headers=https).text)

    response = csrf_client.post(
        "/restaurants/new", data={"name": "Bad Referer", "street_address": "1",
                                  "csrf_token": token},
        headers={**https, "Referer": referer})

    assert response.status_code == 400
    assert "Form expired" in response.text
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


def test_pages_with_a_csrf_token_are_never_stored_by_a_cache(csrf_client, run_sql):
    [(restaurant_id,)] = run_sql(
        "INSERT INTO restaurants (name, street_address) VALUES ('Cached', '1 A') RETURNING id")

    for page in ("/restaurants/new", f"/restaurants/{restaurant_id}"):
        response = csrf_client.get(page)
        assert 'name="csrf_token"' in response.text
        assert response.headers["Cache-Control"] == "no-store"
    # A page without a form may be kept.
    assert "Cache-Control" not in csrf_client.get("/").headers


# --- Issuing CSRF tokens and session cookies ----------------------------------------------
# The site signs both with its own reusable serializers (webapp/security.py); what they write
# must stay exactly what stock Flask and Flask-WTF read, and the other way round.

OLD_SECRET_KEY = "an-earlier-secret-key-0123456789"  # noqa: S105 - tests only
SESSION_PAYLOADS = {
    "token only": {"csrf_token": "0123456789abcdef0123456789abcdef01234567"},
    "short but compressible": {"note": "x" * 40},
    "with a flash message": {
        "_flashes": [("success", "Thanks! Your review of Chez Test was saved.")],
        "csrf_token": "0123456789abcdef0123456789abcdef01234567",
    },
    "long and random": {"csrf_token": "0123456789abcdef0123456789abcdef01234567",
                        "other": "f3a9c1e07b5d2846" * 8},
}


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


SESSIONS_TO_DUMP = {
    **SESSION_PAYLOADS,
    "a key that reads as a tag": {" t": "x"},
    "a Markup value": {"note": Markup("<b>bold</b>")},
    "not only strings": {"count": 2, "when": datetime(2026, 1, 2, tzinfo=UTC)},
    "non-ASCII text": {"name": "Caf\u00e9 \u2603"},
    "empty": {},
}


@pytest.mark.parametrize("payload", SESSIONS_TO_DUMP.values(), ids=SESSIONS_TO_DUMP.keys())
def test_session_json_is_the_text_flask_writes(signing_app, payload):
    with signing_app.app_context():
        assert (signing_app.session_interface.serializer.dumps(payload)
                == session_json_serializer.dumps(payload))


SESSION_USES = {
    "untouched": lambda session: None,
    "read": lambda session: session.get("csrf_token"),
    "emptied": lambda session: session.clear(),
    "written": lambda session: session.update(csrf_token="0123456789abcdef"),
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
                              .dumps({"csrf_token": "earlier"}))
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


def test_a_session_of_plain_strings_is_dumped_without_the_tagging_walk(signing_app,
                                                                     monkeypatch):
    tagged = []
    monkeypatch.setattr(TaggedJSONSerializer, "tag",
                        lambda _serializer, value: tagged.append(value) or value)
    with signing_app.app_context():
        signing_app.session_interface.serializer.dumps(SESSION_PAYLOADS["token only"])
    assert tagged == []


def test_short_payloads_are_not_compressed_and_stock_flask_still_reads_them(signing_app):
    payload = SESSION_PAYLOADS["short but compressible"]
    ours = signing_app.session_interface.get_signing_serializer(signing_app).dumps(payload)
    stock = stock_session_serializer(signing_app).dumps(payload)

    assert stock.startswith(".")  # what itsdangerous marks as compressed
    assert not ours.startswith(".")
    assert stock_session_serializer(signing_app).loads(ours) == payload


def test_session_cookies_follow_secret_key_fallbacks_like_stock_flask(signing_app):
    payload = SESSION_PAYLOADS["token only"]
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


def tampered(signed: str) -> str:
    # The first character: a base64 string's last one may carry only padding bits.
    return ("B" if signed[0] == "A" else "A") + signed[1:]


def test_a_tampered_session_cookie_is_refused(signing_app):
    forged = tampered(signing_app.session_interface.get_signing_serializer(signing_app).dumps(
        SESSION_PAYLOADS["token only"]))

    for serializer in (signing_app.session_interface.get_signing_serializer(signing_app),
                       stock_session_serializer(signing_app)):
        with pytest.raises(BadSignature):
            serializer.loads(forged)


def test_csrf_tokens_are_exactly_flask_wtf_tokens(signing_app, monkeypatch):
    # Signed in the same second, the site's token and Flask-WTF's are the same string.
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _signer: 1_800_000_000)
    with signing_app.test_request_context():
        ours = security.generate_csrf()
        raw_token = flask.session["csrf_token"]
        stock = URLSafeTimedSerializer(SECRET_KEY, salt="wtf-csrf-token").dumps(raw_token)
        assert ours == stock
        assert security.generate_csrf() == ours  # one per request
    with signing_app.test_request_context():
        flask.session["csrf_token"] = raw_token  # the same session, a later request
        assert flask_wtf.csrf.generate_csrf() == ours


def test_csrf_tokens_validate_with_flask_wtf_and_the_session_keeps_one(signing_app):
    with signing_app.test_request_context():
        token = security.generate_csrf()
        raw_token = flask.session["csrf_token"]
        assert re.fullmatch("[0-9a-f]{40}", raw_token)  # 160 random bits, as Flask-WTF's
        flask_wtf.csrf.validate_csrf(token)
    with signing_app.test_request_context():
        flask.session["csrf_token"] = raw_token
        again = security.generate_csrf()
        assert flask.session["csrf_token"] == raw_token
        flask_wtf.csrf.validate_csrf(again)


def test_csrf_tokens_follow_a_changed_secret_key(signing_app):
    with signing_app.test_request_context():
        old_token = security.generate_csrf()
        raw_token = flask.session["csrf_token"]
    signing_app.secret_key = "another-secret-key-0123456789"
    with signing_app.test_request_context():
        flask.session["csrf_token"] = raw_token
        flask_wtf.csrf.validate_csrf(security.generate_csrf())
        with pytest.raises(ValidationError, match="invalid"):
            flask_wtf.csrf.validate_csrf(old_token)


FORM_PAGE = "/restaurants/new"


NO_SIGNING_WORK = {"serializers": 0, "derived keys": 0, "keyed hmacs": 0, "zlib": 0}


class SigningWork:
    """Counts the signing set-up work done: serializers built, keys derived, HMACs keyed, and
    payloads offered to zlib."""

    def __init__(self, monkeypatch) -> None:
        self.counts = dict(NO_SIGNING_WORK)
        self._count(monkeypatch, Serializer, "__init__", "serializers")
        self._count(monkeypatch, Signer, "derive_key", "derived keys")
        self._count(monkeypatch, hmac, "new", "keyed hmacs")
        self._count(monkeypatch, zlib, "compress", "zlib")

    def _count(self, monkeypatch, owner, name: str, counter: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.counts[counter] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def first_visits_after_a_warm_up(client, page: str, monkeypatch) -> tuple[set[str], dict]:
    """Ten requests without a cookie: the tokens they got and the signing set-up work done."""
    client.get(page)  # builds what is built once per process
    work = SigningWork(monkeypatch)
    tokens = set()
    for _ in range(10):
        response = client.get(page)
        assert response.status_code == 200
        assert session_cookie(response)
        tokens.add(csrf_token(response.text))
    return tokens, work.counts


def test_form_pages_sign_without_rebuilding_serializers_or_keys(csrf_on, app, monkeypatch):
    # The form's token field (Flask-WTF's form CSRF) and the session cookie.
    client = app.test_client(use_cookies=False)
    tokens, work = first_visits_after_a_warm_up(client, FORM_PAGE, monkeypatch)
    assert len(tokens) == 10
    assert work == NO_SIGNING_WORK


def test_the_details_page_signs_without_rebuilding_serializers_or_keys(csrf_on, app, run_sql,
                                                                      monkeypatch):
    # The page joins its token in itself (restaurants.py), not through a form or the global.
    [(restaurant_id,)] = run_sql("INSERT INTO restaurants (name, street_address) "
                                 "VALUES ('Signed', '1 Main Street') RETURNING id")
    client = app.test_client(use_cookies=False)
    tokens, work = first_visits_after_a_warm_up(client, f"/restaurants/{restaurant_id}",
                                                monkeypatch)
    assert len(tokens) == 10
    assert work == NO_SIGNING_WORK


def test_the_csrf_token_template_global_signs_without_rebuilding_anything(signing_app,
                                                                          monkeypatch):
    @signing_app.get("/form")
    def form():
        return flask.render_template_string(
            '<input name="csrf_token" type="hidden" value="{{ csrf_token() }}">')

    client = signing_app.test_client(use_cookies=False)
    tokens, work = first_visits_after_a_warm_up(client, "/form", monkeypatch)
    assert len(tokens) == 10
    assert work == NO_SIGNING_WORK


def test_reading_a_page_skips_the_csrf_check(signing_app, monkeypatch):
    # Exemptions only matter to the methods that are checked.
    @signing_app.route("/page", methods=["GET", "POST"])
    def page():
        return "ok"

    exemption_lookups = []
    monkeypatch.setattr(flask_wtf.csrf.CSRFProtect, "_is_exempt",
                        lambda _csrf: exemption_lookups.append(flask.request.method))
    client = signing_app.test_client()
    assert client.get("/page").status_code == 200
    assert client.post("/page").status_code == 400  # no token
    assert exemption_lookups == ["POST"]


@pytest.mark.parametrize(("seconds_past_the_limit", "status", "saved"),
                         [(-60, 303, 1), (1, 400, 0)])
def test_csrf_tokens_expire_after_the_time_limit(csrf_client, run_sql, monkeypatch, caplog,
                                                 seconds_past_the_limit, status, saved):
    time_limit = csrf_client.application.config["WTF_CSRF_TIME_LIMIT"]
    issued = int(time.time()) - time_limit - seconds_past_the_limit
    with monkeypatch.context() as issued_back_then:
        issued_back_then.setattr(TimestampSigner, "get_timestamp", lambda _signer: issued)
        token = csrf_token(csrf_client.get(FORM_PAGE).text)

    with caplog.at_level(logging.INFO, logger="flask_wtf.csrf"):
        response = csrf_client.post(FORM_PAGE, data={
            "name": "Late", "street_address": "1", "csrf_token": token})
    assert response.status_code == status
    assert ("The CSRF token has expired." in caplog.messages) == (status == 400)
    assert run_sql("SELECT count(*) FROM restaurants WHERE name = 'Late'") == [(saved,)]


def test_a_tampered_csrf_token_or_cookie_is_refused(csrf_client, run_sql, caplog):
    token = csrf_token(csrf_client.get(FORM_PAGE).text)
    form = {"name": "Tampered", "street_address": "1"}
    caplog.set_level(logging.INFO, logger="flask_wtf.csrf")
    assert csrf_client.post(FORM_PAGE,
                            data={**form, "csrf_token": tampered(token)}).status_code == 400
    assert caplog.messages[-1] == "The CSRF token is invalid."

    csrf_client.set_cookie("session", tampered(csrf_client.get_cookie("session").value))
    assert csrf_client.post(FORM_PAGE,
                            data={**form, "csrf_token": token}).status_code == 400
    assert caplog.messages[-1] == "The CSRF session token is missing."
    assert run_sql("SELECT count(*) FROM restaurants WHERE name = 'Tampered'") == [(0,)]


def test_after_a_key_rotation_sessions_survive_and_new_pages_issue_valid_tokens(csrf_on,
                                                                                 run_sql):
    # Flask reads the session through SECRET_KEY_FALLBACKS; Flask-WTF 1.3 checks CSRF tokens
    # with the current key only, so a form rendered before the rotation must be reloaded.
    before = create_app({**csrf_on, "SECRET_KEY": OLD_SECRET_KEY})
    after = create_app({**csrf_on, "SECRET_KEY_FALLBACKS": [OLD_SECRET_KEY]})
    try:
        old_client = before.test_client()
        old_token = csrf_token(old_client.get(FORM_PAGE).text)
        client = after.test_client()
        client.set_cookie("session", old_client.get_cookie("session").value)

        form = {"name": "Rotated", "street_address": "1"}
        assert client.post(FORM_PAGE, data={**form, "csrf_token": old_token}).status_code == 400
        reloaded = client.get(FORM_PAGE)
        assert "Set-Cookie" not in reloaded.headers  # the old session, read with the fallback
        response = client.post(FORM_PAGE, data={**form, "csrf_token": csrf_token(reloaded.text)})
        assert response.status_code == 303
        assert run_sql("SELECT count(*) FROM restaurants WHERE name = 'Rotated'") == [(1,)]
    finally:
        dispose(before)
        dispose(after)
