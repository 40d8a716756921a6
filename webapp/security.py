"""Security headers, proxy awareness, cookie flags, signing cookies, and refusing forms sent
from other sites.

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
                    header on untouched, so URLs, the session cookie and the cross-origin
                    check's Origin comparison all see the public host;
  X-Forwarded-Proto https; the front end in turn sets the scheme of its own hop, also https.
With App Service alone the Host header already is the public host, so X-Forwarded-Host is not
trusted at all (a visitor could otherwise choose it).

Forms sent from other sites are refused by the browser's own word: every current browser says
where a request came from in Sec-Fetch-Site, and older ones in Origin (modern-csrf decides, as
Go's CrossOriginProtection does). The site has no sign-in, so this guards one thing: a foreign
page posting reviews through a visitor's browser. It needs no token, so reading a page costs no
session cookie and a visitor who blocks cookies can still post.
"""

from __future__ import annotations

import hmac
import logging
import zlib

from flask import Flask, Response, g, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, want_bytes
from itsdangerous.signer import HMACAlgorithm
from modern_csrf.base import should_accept_request
from werkzeug.exceptions import Forbidden
from werkzeug.middleware.proxy_fix import ProxyFix

logger = logging.getLogger(__name__)

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


# Payloads shorter than this are not offered to zlib: they seldom shrink, and trying costs a
# zlib stream per signature. At worst a cookie is a few dozen bytes longer than it could be.
COMPRESS_FROM_BYTES = 64
# Set in `g` by a page that rendered a form's submission token (see webapp/forms.py).
PAGE_HAS_A_FORM = "page_has_a_form"


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


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure whenever the visitor came over HTTPS.

    A fixed SESSION_COOKIE_SECURE=True would break the plain-HTTP local loop; False would send
    the cookie unprotected in Azure. Cookies are written as Flask writes them, at less cost
    (see `get_signing_serializer`).
    """

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


class CrossOriginRequest(Forbidden):
    """A form sent from another site (the browser said so): refused before it is read."""

    description = ("This form was sent from another website. The site accepts forms only from "
                   "its own pages: open the page here and send the form from there.")


def refuse_cross_origin_forms() -> None:
    """Refuse a POST that a browser says came from another origin (see the module doc).

    Sec-Fetch-Site decides when the browser sends it. Without it, Origin must name the host
    the request was sent to (the public host, after ProxyFix); without either, the client is
    not a browser, and CSRF is an attack through browsers only.
    """
    # Straight from the WSGI environ: this runs on every request, reads included.
    environ = request.environ
    origin, sec_fetch_site = environ.get("HTTP_ORIGIN"), environ.get("HTTP_SEC_FETCH_SITE")
    if should_accept_request(method=request.method, origin=origin, sec_fetch_site=sec_fetch_site,
                             host=request.host, trusted_origins=()):
        return
    # The sending site's address is the attacker's, not a visitor's data.
    logger.warning("Refused a %s to %s sent from another site (Sec-Fetch-Site: %s, Origin: %s)",
                   request.method, request.path, sec_fetch_site or "-", origin or "-")
    raise CrossOriginRequest()


def init_app(app: Flask, proxy_hops: int = 1) -> None:
    # ProxyFix first: it decides whether the request came over HTTPS (HSTS).
    app.wsgi_app = proxy_fix(SecurityHeaders(app.wsgi_app), proxy_hops)
    app.session_interface = HttpsAwareSessionInterface()
    app.before_request(refuse_cross_origin_forms)
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
    """A page with a form is never stored by a cache: its submission token is one visitor's.

    Two visitors served one cached copy would send the same token, and the second review would
    be taken for a repeat of the first and dropped (webapp/forms.py, SubmissionForm).
    """
    if PAGE_HAS_A_FORM in g:
        response.headers["Cache-Control"] = "no-store"
    return response
