"""Security headers, proxy awareness and cookie flags.

On App Service, TLS ends at the front end, which forwards plain HTTP with X-Forwarded-Proto and
X-Forwarded-For. ProxyFix applies them, so request.is_secure is true for HTTPS visitors and the
session cookie is marked Secure for them (and HSTS is sent).
"""

from __future__ import annotations

from flask import Flask, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
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


def init_app(app: Flask) -> None:
    # One proxy hop (App Service's front end) is trusted for the scheme and client address.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)
    app.session_interface = HttpsAwareSessionInterface()
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    # Like headers.setdefault() for each, in one pass: setdefault scans all headers every call.
    present = {name.lower() for name in response.headers.keys()}  # noqa: SIM118 - Headers
    response.headers.extend(
        [(name, value) for key, name, value in _SECURITY_HEADERS_BY_KEY if key not in present]
    )
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response
