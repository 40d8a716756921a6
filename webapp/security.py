"""Security headers, proxy awareness and cookie flags.

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

from flask import Flask, Response, current_app, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from werkzeug.middleware.proxy_fix import ProxyFix

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
_SECURITY_HEADERS_BY_KEY = [(name.lower(), name, value) for name, value in SECURITY_HEADERS.items()]


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure whenever the visitor came over HTTPS.

    A fixed SESSION_COOKIE_SECURE=True would break the plain-HTTP local loop; False would send
    the cookie unprotected in Azure.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = super().get_cookie_secure(app)
        return configured or (has_request_context() and request.is_secure)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask builds this for every request (twice when a cookie is set); build it once.

        Building one serialises a probe value to check the serializer's type, a measurable
        share of a cheap request in `make bench`. It is rebuilt if the keys change.
        """
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = getattr(self, "_serializer", None)
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, super().get_signing_serializer(app))
        return cached[1]


class SameOriginCsrf(CSRFProtect):
    """Flask-WTF's CSRF check, refusing an unreadable Referer or Host as a failed check.

    Over HTTPS it compares the Referer's scheme, host and port with the request's; a port that
    is not a number from 0 to 65535 (or a malformed IPv6 host) makes urllib raise ValueError,
    which any client could otherwise turn into a server error.
    """

    def protect(self, apply_exemptions: bool = False) -> None:
        try:
            super().protect(apply_exemptions)
        except ValueError:
            self._error_response("The referrer or host header is malformed.")


def init_app(app: Flask, proxy_hops: int = 1) -> None:
    app.wsgi_app = proxy_fix(app.wsgi_app, proxy_hops)
    app.session_interface = HttpsAwareSessionInterface()
    SameOriginCsrf(app)
    app.after_request(add_security_headers)
    app.after_request(keep_forms_out_of_shared_caches)


def proxy_fix(wsgi_app, proxy_hops: int) -> ProxyFix:
    """Trusts the X-Forwarded-* entries our `proxy_hops` proxies wrote (see the module doc)."""
    # The last hop (App Service's front end) always sets the scheme of the connection it got.
    return ProxyFix(wsgi_app, x_for=proxy_hops, x_proto=1, x_host=1 if proxy_hops > 1 else 0)


def add_security_headers(response: Response) -> Response:
    # Like headers.setdefault() for each, in one pass: setdefault scans all headers every call.
    present = {name.lower() for name in response.headers.keys()}  # noqa: SIM118 - Headers
    response.headers.extend(
        [(name, value) for key, name, value in _SECURITY_HEADERS_BY_KEY if key not in present]
    )
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def keep_forms_out_of_shared_caches(response: Response) -> Response:
    """A page that rendered a CSRF token belongs to one visitor's session: never stored.

    Flask-WTF keeps the token it rendered in `g` under the form field's name.
    """
    if current_app.config["WTF_CSRF_FIELD_NAME"] in g:
        response.headers["Cache-Control"] = "no-store"
    return response
