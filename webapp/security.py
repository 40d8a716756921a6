"""Security headers, proxy awareness, cookie flags, and signing cookies and CSRF tokens.

On App Service, TLS ends at the front end, which forwards plain HTTP with X-Forwarded-Proto and
X-Forwarded-For. ProxyFix applies them, so request.is_secure is true for HTTPS visitors and the
session cookie is marked Secure for them (and HSTS is sent).

Behind an Application Gateway (TRUSTED_PROXY_HOPS=2, set by infra/gateway.py's stacks) there are
two proxies, and infra/gateway.py's rewrite rule set makes the gateway send:
  X-Forwarded-For   the client's own list plus the address the gateway saw (ports removed); the
                    App Service front end appends the gateway instance, so the client is the
                    second entry from the right, and anything further left is the client's word;
  X-Forwarded-Host  the host the visitor typed, replacing anything the client sent; the gateway
                    itself talks to the app by its own host name, and the front end passes this
                    header on untouched, so URLs, the session cookie and Flask-WTF's same-origin
                    Referer check all see the public host;
  X-Forwarded-Proto https; the front end in turn sets the scheme of its own hop, also https.
With App Service alone the Host header already is the public host, so X-Forwarded-Host is not
trusted at all (a visitor could otherwise choose it).
"""

from __future__ import annotations

import hmac
import zlib

import flask_wtf.csrf
from flask import Flask, Response, current_app, g, has_request_context, request, session
from flask import json as flask_json
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, want_bytes
from itsdangerous.signer import HMACAlgorithm
from werkzeug.middleware.proxy_fix import ProxyFix

from . import tokens

# Everything the site needs comes from itself: no CDNs, no inline scripts or styles.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self'",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000"
_SECURITY_HEADERS_BY_KEY = [(name.lower(), (name, value))
                            for name, value in SECURITY_HEADERS.items()]
_HTTPS_HEADERS_BY_KEY = [*_SECURITY_HEADERS_BY_KEY,
                         ("strict-transport-security", ("Strict-Transport-Security", HSTS))]


# Flask-WTF signs its CSRF tokens with this salt (a literal inside flask_wtf.csrf).
CSRF_TOKEN_SALT = "wtf-csrf-token"  # noqa: S105 - a salt, not a secret
# Payloads shorter than this are not offered to zlib: the common ones (a session holding only
# the CSRF token, the token itself) are mostly random hex that never shrinks, and trying costs
# a zlib stream per signature. At worst a cookie is a few dozen bytes longer than it could be.
COMPRESS_FROM_BYTES = 64


class PreparedHmacAlgorithm(HMACAlgorithm):
    """itsdangerous's HMAC, keyed once per key: each signature copies the keyed state."""

    def __init__(self, digest_method=None) -> None:
        super().__init__(digest_method)
        self._keyed: dict[bytes, hmac.HMAC] = {}

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = self._keyed[key] = hmac.new(key, digestmod=self.digest_method)
        mac = keyed.copy()
        mac.update(value)
        return mac.digest()


class ReusableKeySigner(TimestampSigner):
    """itsdangerous's TimestampSigner, deriving each secret key's signing key once.

    The stock signer derives it again for every signature (an extra HMAC or hash each time),
    and keys a new HMAC with it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._derived_keys: dict[bytes, bytes] = {}
        if type(self.algorithm) is HMACAlgorithm:  # the default, not one passed in
            self.algorithm = PreparedHmacAlgorithm(self.digest_method)

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived = self._derived_keys.get(secret)
        if derived is None:
            derived = self._derived_keys[secret] = super().derive_key(secret)
        return derived


class ReusableSignerSerializer(URLSafeTimedSerializer):
    """URLSafeTimedSerializer that keeps one signer, and skips zlib for short payloads.

    What it writes, the stock serializer with the same keys and salt reads, and the other way
    round: its signer derives keys the same way, and an uncompressed payload is one that the
    stock serializer also writes when compressing would not save anything.
    """

    default_signer = ReusableKeySigner

    def make_signer(self, salt: str | bytes | None = None) -> TimestampSigner:
        if salt is not None and want_bytes(salt) != self.salt:
            return super().make_signer(salt)
        signer = self.__dict__.get("_signer")
        if signer is None:
            signer = self._signer = super().make_signer()
        return signer

    def dump_payload(self, obj) -> bytes:
        serialized = want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs))
        if len(serialized) < COMPRESS_FROM_BYTES:
            return base64_encode(serialized)
        compressed = zlib.compress(serialized)
        if len(compressed) < len(serialized) - 1:  # the stock rule for when it pays
            return b"." + base64_encode(compressed)
        return base64_encode(serialized)


class PlainSessionSerializer(TaggedJSONSerializer):
    """Flask's session serializer, without its tagging walk for a session of plain strings.

    A first visit's session holds only the CSRF token. Tagging leaves such a session as it is
    (no value has a type it tags, and no key reads as a tag), so its JSON is dumped directly:
    the same text Flask's serializer writes.
    """

    def dumps(self, value) -> str:
        if type(value) is dict and all(
            type(key) is str and key not in self.tags and type(item) is str
            for key, item in value.items()
        ):
            return flask_json.dumps(value, separators=(",", ":"))
        return super().dumps(value)


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure whenever the visitor came over HTTPS.

    A fixed SESSION_COOKIE_SECURE=True would break the plain-HTTP local loop; False would send
    the cookie unprotected in Azure. Cookies are written as Flask writes them, at less cost
    (see `get_signing_serializer` and `PlainSessionSerializer`).
    """

    serializer = PlainSessionSerializer()

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = super().get_cookie_secure(app)
        return configured or (has_request_context() and request.is_secure)

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        # Without a Cookie header there is no session cookie to read: Flask would parse the
        # missing header into an empty mapping to find that out.
        if "HTTP_COOKIE" in request.environ or self.get_signing_serializer(app) is None:
            return super().open_session(app, request)
        return self.session_class()

    def save_session(self, app: Flask, session, response: Response) -> None:
        """Flask's headers, at less cost: Vary is added once, without parsing and rewriting it
        twice, and a visitor whose session holds nothing and was not changed costs no cookie
        attribute at all (Flask works each one out first)."""
        if not session and session.modified:  # emptied: Flask deletes the cookie
            super().save_session(app, session, response)
            return
        if session.accessed:
            _vary_on_cookie(response)
        if session and self.should_set_cookie(app, session):
            response.set_cookie(
                self.get_cookie_name(app),
                self.get_signing_serializer(app).dumps(dict(session)),
                expires=self.get_expiration_time(app, session),
                httponly=self.get_cookie_httponly(app),
                domain=self.get_cookie_domain(app),
                path=self.get_cookie_path(app),
                secure=self.get_cookie_secure(app),
                partitioned=self.get_cookie_partitioned(app),
                samesite=self.get_cookie_samesite(app),
            )
            if not session.accessed:
                _vary_on_cookie(response)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask builds this for every request (twice when a cookie is set); build it once.

        Building one serialises a probe value to check the serializer's type, and each of its
        signatures derives the signing key again: a measurable share of a cheap request in
        `make bench`. Flask's own serializer says which keys, salt and signer options to use;
        it is rebuilt if the keys change.
        """
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = getattr(self, "_serializer", None)
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, self._reusable_serializer(app))
        return cached[1]

    def _reusable_serializer(self, app: Flask) -> ReusableSignerSerializer | None:
        stock = super().get_signing_serializer(app)
        if stock is None:
            return None
        return ReusableSignerSerializer(
            stock.secret_keys, salt=stock.salt, serializer=stock.serializer,
            signer_kwargs=stock.signer_kwargs,
        )


def _vary_on_cookie(response: Response) -> None:
    """What `response.vary.add("Cookie")` does, without parsing and rewriting a header that
    is not there (as on most pages)."""
    if "Vary" in response.headers:
        response.vary.add("Cookie")
    else:
        response.headers["Vary"] = "Cookie"


class SameOriginCsrf(CSRFProtect):
    """Flask-WTF's CSRF check, refusing an unreadable Referer or Host as a failed check.

    Over HTTPS it compares the Referer's scheme, host and port with the request's; a port that
    is not a number from 0 to 65535 (or a malformed IPv6 host) makes urllib raise ValueError,
    which any client could otherwise turn into a server error.

    Tokens are issued through `generate_csrf` below (the templates' `csrf_token()` and the
    forms' token fields, see webapp/forms.py); checking them is left to Flask-WTF.
    """

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        self._token_serializers: dict[str | bytes, ReusableSignerSerializer] = {}
        app.jinja_env.globals["csrf_token"] = generate_csrf
        # Flask-WTF also offers its generate_csrf through a context processor, which would
        # take precedence over the global in every template.
        processors = app.template_context_processors[None]
        processors[:] = [p for p in processors if not _offers_stock_csrf_token(p)]

    def token_serializer(self, secret_key: str | bytes) -> ReusableSignerSerializer:
        """The signer of CSRF tokens for this key, built once (Flask-WTF builds one per call)."""
        serializer = self._token_serializers.get(secret_key)
        if serializer is None:
            serializer = ReusableSignerSerializer(secret_key, salt=CSRF_TOKEN_SALT)
            self._token_serializers[secret_key] = serializer
        return serializer

    def protect(self, apply_exemptions: bool = False) -> None:
        # Flask-WTF looks up the view's exemptions before the method; a GET needs neither.
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        try:
            super().protect(apply_exemptions)
        except ValueError:
            self._error_response("The referrer or host header is malformed.")


def _offers_stock_csrf_token(processor) -> bool:
    return getattr(processor, "__module__", None) == flask_wtf.csrf.__name__


def generate_csrf(secret_key: str | bytes | None = None, token_key: str | None = None) -> str:
    """Flask-WTF's `generate_csrf`, signing with the app's one serializer per key.

    Same token as Flask-WTF's: a random value kept in the session under the field name, signed
    with the secret key and Flask-WTF's salt, once per request (kept in `g`), so Flask-WTF's
    `validate_csrf` checks it as its own.
    """
    app = current_app._get_current_object()  # one context lookup, not one per use
    field_name = token_key or app.config["WTF_CSRF_FIELD_NAME"]
    token = g.get(field_name)
    if token is None:
        secret_key = secret_key or app.config.get("WTF_CSRF_SECRET_KEY", app.secret_key)
        if not secret_key:
            raise RuntimeError("A secret key is required to use CSRF.")
        raw_token = session.get(field_name)
        if not isinstance(raw_token, str):
            raw_token = session[field_name] = tokens.token_hex(20)  # Flask-WTF's length
        token = app.extensions["csrf"].token_serializer(secret_key).dumps(raw_token)
        setattr(g, field_name, token)
    return token


def init_app(app: Flask, proxy_hops: int = 1) -> None:
    # ProxyFix first: it decides whether the request came over HTTPS (HSTS).
    app.wsgi_app = proxy_fix(SecurityHeaders(app.wsgi_app), proxy_hops)
    app.session_interface = HttpsAwareSessionInterface()
    SameOriginCsrf(app)
    app.after_request(keep_forms_out_of_shared_caches)


def proxy_fix(wsgi_app, proxy_hops: int) -> ProxyFix:
    """Trusts the X-Forwarded-* entries our `proxy_hops` proxies wrote (see the module doc)."""
    # The last hop (App Service's front end) always sets the scheme of the connection it got.
    return ProxyFix(wsgi_app, x_for=proxy_hops, x_proto=1, x_host=1 if proxy_hops > 1 else 0)


class SecurityHeaders:
    """WSGI middleware: every response gets SECURITY_HEADERS (and HSTS over HTTPS) that it does
    not set itself, error pages included. Appending ready-made pairs to the WSGI header list
    costs a fraction of setting them through the response object, which checks each value."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        added = (_HTTPS_HEADERS_BY_KEY if environ.get("wsgi.url_scheme") == "https"
                 else _SECURITY_HEADERS_BY_KEY)

        def start_with_security_headers(status, headers, exc_info=None):
            present = {name.lower() for name, _value in headers}
            headers = [*headers, *(pair for key, pair in added if key not in present)]
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_security_headers)


def keep_forms_out_of_shared_caches(response: Response) -> Response:
    """A page that rendered a CSRF token belongs to one visitor's session: never stored.

    Flask-WTF keeps the token it rendered in `g` under the form field's name.
    """
    if current_app.config["WTF_CSRF_FIELD_NAME"] in g:
        response.headers["Cache-Control"] = "no-store"
    return response
