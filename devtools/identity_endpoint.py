"""A local App Service managed identity endpoint, so the site's Azure code path runs offline.

On App Service the platform sets IDENTITY_ENDPOINT and IDENTITY_HEADER, and azure-identity's
ManagedIdentityCredential (inside DefaultAzureCredential) calls

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>
    X-IDENTITY-HEADER: {IDENTITY_HEADER}

and reads {"access_token", "expires_on" (epoch seconds, a string), "resource", "token_type"}.
This server answers the same request with JWTs whose audience, issuer and expiry are what the
real services check (Azurite's OAuth mode checks exactly those, not signatures).

A site may hold several user-assigned identities; a client picks one with `client_id=<id>`
(azure-identity does when AZURE_CLIENT_ID is set). Like App Service, the endpoint serves only
the identities the site holds and answers any other client id with HTTP 400; a request naming
none gets the first identity (the site's default).

For PostgreSQL it also plays Entra's part: Azure Database for PostgreSQL accepts the current
token as the role's password, so `PostgresRolePassword` sets the app role's password to each
token it issues (valid until the token expires). A connection that presents a stale or made-up
password fails, as it would in Azure; so does one with another identity's token when the role
is bound to an object id (as pgaadauth_create_principal_with_oid binds it).
"""

from __future__ import annotations

import datetime
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import jwt
import psycopg2
from psycopg2 import sql
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devtools.services import PostgresCluster

API_VERSION = "2019-08-01"
ENDPOINT_PATH = "/msi/token"
POSTGRES_RESOURCE = "https://ossrdbms-aad.database.windows.net"
STORAGE_RESOURCE = "https://storage.azure.com"
DEFAULT_TOKEN_LIFETIME = 3600.0


# App Service's answer when the request names an identity the site does not hold.
UNKNOWN_IDENTITY_MESSAGE = ("No User Assigned or Delegated Managed Identity found for specified "
                            "ClientId/ResourceId/PrincipalId.")


@dataclass(frozen=True)
class ManagedIdentity:
    """A user-assigned identity as a site holds it: its client id and its service principal."""

    client_id: str
    object_id: str

    @classmethod
    def random(cls) -> ManagedIdentity:
        return cls(client_id=str(uuid.uuid4()), object_id=str(uuid.uuid4()))


@dataclass(frozen=True)
class IssuedToken:
    resource: str
    access_token: str
    expires_on: int  # epoch seconds, as App Service reports it
    object_id: str  # the identity it was issued to (its "oid" claim)


TokenListener = Callable[[IssuedToken], None]


class TokenIssueError(RuntimeError):
    """A listener could not apply a freshly issued token (e.g. PostgreSQL refused ALTER ROLE)."""


class UnknownIdentityError(LookupError):
    """The request names a client id the site holds no identity for."""


class ManagedIdentityEndpoint:
    """A threaded HTTP server on 127.0.0.1 speaking App Service's managed identity protocol.

    `token_lifetime` (seconds) may be changed while the server runs; `issued` counts the
    tokens handed out per resource, which is how tests see whether the client caches them.
    `identities` are the ones the site holds (default: one, made up); the first is the default.
    """

    def __init__(self, token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
                 tenant_id: str | None = None,
                 identities: Sequence[ManagedIdentity] = ()) -> None:
        self.token_lifetime = token_lifetime
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.identities = tuple(identities) or (ManagedIdentity.random(),)
        self.resource_id = (  # the site's Azure resource, which a real token names
            f"/subscriptions/{uuid.uuid4()}/resourcegroups/rg-restaurant-review-local"
            "/providers/Microsoft.Web/sites/app-restaurant-review-local"
        )
        self.secret = secrets.token_urlsafe(32)  # what App Service puts in IDENTITY_HEADER
        # Azurite checks no signatures; a random HMAC key still makes the tokens real JWTs.
        self._signing_key = secrets.token_bytes(32)
        self._listeners: dict[str, list[TokenListener]] = defaultdict(list)
        self._issued: Counter[str] = Counter()
        self._latest: dict[str, IssuedToken] = {}
        # Issuing and notifying listeners happen as one step, so the last token counted is
        # the one PostgreSQL holds as the password.
        self._issue_lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> ManagedIdentityEndpoint:
        self._server = make_server("127.0.0.1", 0, self._wsgi_app, threaded=True,
                                   request_handler=_QuietRequestHandler)
        # shutdown() waits for the loop's next poll: 0.05 s instead of the default 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="identity-endpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ManagedIdentityEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # what clients and tests use ----------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._server:
            raise RuntimeError("the identity endpoint is not started")
        return f"http://127.0.0.1:{self._server.server_port}{ENDPOINT_PATH}"

    def environment(self) -> dict[str, str]:
        """What App Service sets for a site with a managed identity."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}

    @property
    def client_id(self) -> str:
        """The default identity's client id."""
        return self.identities[0].client_id

    @property
    def object_id(self) -> str:
        """The default identity's service principal (object) id."""
        return self.identities[0].object_id

    def identity(self, client_id: str | None = None) -> ManagedIdentity:
        """The held identity with `client_id` (None: the default one)."""
        if client_id is None:
            return self.identities[0]
        for held in self.identities:
            if held.client_id.lower() == client_id.strip().lower():
                return held
        raise UnknownIdentityError(UNKNOWN_IDENTITY_MESSAGE)

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def issued(self, resource: str) -> int:
        """How many tokens were issued for `resource` (no trailing slash)."""
        with self._issue_lock:
            return self._issued[resource.rstrip("/")]

    def latest(self, resource: str) -> IssuedToken | None:
        """The token issued last for `resource`, if any."""
        with self._issue_lock:
            return self._latest.get(resource.rstrip("/"))

    def on_issue(self, resource: str, listener: TokenListener) -> None:
        """Call `listener` with every token issued for `resource`, before it is returned."""
        self._listeners[resource.rstrip("/")].append(listener)

    def issue(self, resource: str, client_id: str | None = None) -> IssuedToken:
        """Mint a token for `resource` as the held identity `client_id` (None: the default),
        apply it (listeners) and count it."""
        resource = resource.rstrip("/")
        identity = self.identity(client_id)
        with self._issue_lock:
            token = self._mint(resource, identity)
            for listener in self._listeners[resource]:
                listener(token)
            self._issued[resource] += 1
            self._latest[resource] = token
        return token

    # internals -------------------------------------------------------------------------------

    def _mint(self, resource: str, identity: ManagedIdentity) -> IssuedToken:
        now = int(time.time())
        expires_on = now + max(1, round(self.token_lifetime))
        claims = {
            "aud": resource,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "oid": identity.object_id,
            "sub": identity.object_id,
            "tid": self.tenant_id,
            "appid": identity.client_id,
            "idtyp": "app",
            # Like a real Entra token's claims; they also bring it to a realistic size
            # (PostgreSQL must take a ~1 KB password).
            "xms_mirid": self.resource_id,
            "uti": secrets.token_urlsafe(16),  # unique per token, even within one second
            "ver": "1.0",
        }
        access_token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        return IssuedToken(resource=resource, access_token=access_token, expires_on=expires_on,
                           object_id=identity.object_id)

    @Request.application
    def _wsgi_app(self, request: Request) -> Response:
        if request.path.rstrip("/") != ENDPOINT_PATH:
            return _error(404, f"no such path; tokens are served at {ENDPOINT_PATH}")
        if request.method != "GET":
            return _error(405, "only GET is supported")
        presented = request.headers.get("X-IDENTITY-HEADER")
        if presented is None:
            return _error(400, "the X-IDENTITY-HEADER header is missing")
        if not hmac.compare_digest(presented.encode(), self.secret.encode()):
            return _error(401, "the X-IDENTITY-HEADER header does not match IDENTITY_HEADER")
        if request.args.get("api-version") != API_VERSION:
            return _error(400, f"api-version must be {API_VERSION}")
        resource = request.args.get("resource", "").strip()
        if not resource:
            return _error(400, "the resource query parameter is missing")
        try:
            identity = self.identity(request.args.get("client_id"))
            token = self.issue(resource, identity.client_id)
        except UnknownIdentityError as failure:
            return _error(400, str(failure))
        except TokenIssueError as failure:
            return _error(500, str(failure))
        return _json(200, {
            "access_token": token.access_token,
            "expires_on": str(token.expires_on),
            "resource": token.resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        })


class PostgresRolePassword:
    """Entra's part for Azure Database for PostgreSQL: the role's password is the current token.

    SCRAM stores only a hash of the password, so a JWT of any realistic length is accepted;
    VALID UNTIL makes PostgreSQL itself refuse the token once it has expired. A role bound to
    `object_id` takes only that identity's tokens; another identity's token changes nothing,
    so it is refused as a wrong password.
    """

    def __init__(self, cluster: PostgresCluster, role: str, object_id: str | None = None) -> None:
        self.cluster = cluster
        self.role = role
        self.object_id = object_id

    def __call__(self, token: IssuedToken) -> None:
        if self.object_id is not None and token.object_id != self.object_id:
            return
        valid_until = datetime.datetime.fromtimestamp(token.expires_on, datetime.UTC)
        statement = sql.SQL("ALTER ROLE {} PASSWORD {} VALID UNTIL {}").format(
            sql.Identifier(self.role), sql.Literal(token.access_token),
            sql.Literal(valid_until.isoformat()),
        )
        try:
            self.cluster.execute(statement)
        except psycopg2.Error as failure:
            # The server's own message only: the statement carries the token.
            reason = failure.diag.message_primary or type(failure).__name__
            raise TokenIssueError(
                f"could not set the password of PostgreSQL role {self.role!r}: {reason}"
            ) from None


@contextmanager
def managed_identity_for(cluster: PostgresCluster, role: str,
                         token_lifetime: float = DEFAULT_TOKEN_LIFETIME
                         ) -> Iterator[ManagedIdentityEndpoint]:
    """A started endpoint whose PostgreSQL tokens are the password of `role` in `cluster`."""
    endpoint = ManagedIdentityEndpoint(token_lifetime=token_lifetime)
    endpoint.on_issue(POSTGRES_RESOURCE, PostgresRolePassword(cluster, role))
    with endpoint:
        yield endpoint


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: the endpoint runs inside tests and `make dev`, where it would be noise."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, message: str) -> Response:
    # App Service's error shape; MSAL reads statusCode and message into its error description.
    return _json(status, {"statusCode": status, "message": message})
