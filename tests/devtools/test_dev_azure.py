"""`make dev-azure` rehearsed offline: the dev stack's resources stood in for by local services.

A stand-in `pulumi` prints the stack's outputs; a stand-in `az` answers `az account show` and
`az account get-access-token` (what azure-identity's AzureCliCredential runs) with tokens from
devtools.identity_endpoint, issued to the developer's user. PostgreSQL plays the flexible server
(tests/azure_postgres.py): TLS on, the developers' group role made by the deployer's real SQL
step (infra/sql/app_role.sql, principal type `group`) and taking only a member's current token as
its password (as Azure checks Entra tokens and group membership), and pg_hba.conf admitting the
app database only, so a connection the firewall would drop gets Azure's own refusal text ("no
pg_hba.conf entry for host ..."). Azurite in OAuth mode over HTTPS plays the photo container,
and the site trusts the test CA as it trusts Azure's. The real entry point starts the real site,
which then walks create-restaurant -> review with photo -> photo served.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from devtools import dev_azure
from devtools.identity_endpoint import (
    API_VERSION,
    POSTGRES_RESOURCE,
    ManagedIdentity,
    ManagedIdentityEndpoint,
    PostgresRolePassword,
)
from devtools.readiness import wait_for_http_ok
from devtools.services import REPO_ROOT, AzuriteServer, PostgresCluster, free_port
from devtools.site_setup import migrate_site
from devtools.tls import LocalCertificates, create_local_certificates
from review.mocks import load_stack_config, run_stack
from tests.azure_postgres import admin_az, dress_like_azure, run_sql_step
from tests.site_pages import png_photo

GROUP = "rr-dev-developers"
GROUP_OBJECT_ID = "7f3c2a1e-5b4d-4c3b-9a2f-1e0d9c8b7a65"
DATABASE = "restaurant_review_dev"
OWNER = f"{DATABASE}_owner"  # infra/db_role.py owner_role
# A database pg_hba.conf has no line for: the server answers as Azure's firewall does.
FIREWALLED_DATABASE = "behind_the_firewall"
DEVELOPER = "dev@contoso.example"
SITE_START_TIMEOUT = 30.0
RUN_TIMEOUT = 30


# the stand-in flexible server and storage account ------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> LocalCertificates:
    return create_local_certificates(tmp_path_factory.mktemp("tls"))


def _serve_tls_like_azure(cluster: PostgresCluster, certificates: LocalCertificates) -> None:
    """TLS on; the app database (and `postgres`, for the SQL step) reachable over TLS by
    password (token) only."""
    data = cluster.data_dir
    for source, name in ((certificates.cert, "server.crt"), (certificates.key, "server.key")):
        shutil.copyfile(source, data / name)
        (data / name).chmod(0o600)
    (data / "pg_hba.conf").write_text(
        f"local all {cluster.SUPERUSER} trust\n"
        f"host all {cluster.SUPERUSER} 127.0.0.1/32 trust\n"
        f"hostssl postgres,{DATABASE} all 127.0.0.1/32 scram-sha-256\n")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
    owner = data.stat()
    for name in ("server.crt", "server.key", "pg_hba.conf"):
        os.chown(data / name, owner.st_uid, owner.st_gid)


@pytest.fixture(scope="module")
def flexible_server(services_dir, certificates) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(services_dir / "dev-azure-postgres", durable=False).start()
    try:
        cluster.stop()
        _serve_tls_like_azure(cluster, certificates)
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def photo_account(certificates) -> Iterator[AzuriteServer]:
    server = AzuriteServer(data_dir=None, cert=certificates.cert, key=certificates.key,
                           oauth=True).start()
    yield server
    server.stop()


@dataclass(frozen=True)
class DevStack:
    postgres: PostgresCluster
    azurite: AzuriteServer
    identity: ManagedIdentityEndpoint
    member: ManagedIdentity
    outsider: ManagedIdentity
    certificates: LocalCertificates

    def outputs(self, **changes) -> dict:
        """`pulumi stack output --json` of the deployed dev stack (None drops a key)."""
        outputs = {"tier": "basic", "databaseHost": "127.0.0.1", "databaseName": DATABASE,
                   "storageAccountUrl": self.azurite.blob_endpoint, "photoContainer": "photos",
                   "developerGroupName": GROUP, "appName": "app-rr-dev-abc123"}
        outputs.update(changes)
        return {key: value for key, value in outputs.items() if value is not None}


@pytest.fixture(scope="module")
def dev_stack(flexible_server, photo_account, certificates, tmp_path_factory
              ) -> Iterator[DevStack]:
    """The deployed dev stack: the group's role made by the deployer's SQL step, the schema
    migrated by a release, the photo container made by the program."""
    dress_like_azure(flexible_server, DATABASE)
    step = run_sql_step(flexible_server, admin_az(tmp_path_factory.mktemp("deployer-az")),
                        GROUP, GROUP_OBJECT_ID, database=DATABASE, owner=OWNER,
                        principal_type="group", sslmode="require")
    assert step.returncode == 0, step.stderr
    # The stand-in binds the role to "token-for-<object id>" until the first real token.
    migrate_site({"DATABASE_URL": flexible_server.url(DATABASE, GROUP,
                                                      f"token-for-{GROUP_OBJECT_ID}"),
                  "AZURE_STORAGE_CONNECTION_STRING": photo_account.connection_string,
                  "SECRET_KEY": "release-migrations-secret-key"})
    with BlobServiceClient.from_connection_string(
            photo_account.connection_string, connection_verify=str(certificates.ca_bundle),
            retry_total=0) as service:
        service.create_container("photos")  # as the stack's BlobContainer resource did
    member, outsider = ManagedIdentity.random(), ManagedIdentity.random()
    endpoint = ManagedIdentityEndpoint(identities=(member, outsider))
    # Only a member's token is the group role's password: an outsider's is refused.
    endpoint.on_issue(POSTGRES_RESOURCE,
                      PostgresRolePassword(flexible_server, GROUP, object_id=member.object_id))
    with endpoint:
        yield DevStack(flexible_server, photo_account, endpoint, member, outsider, certificates)


# the stand-in CLIs -------------------------------------------------------------------------

AZ = '''\
#!{python} -I
"""Stand-in `az`: account show, and account get-access-token as AzureCliCredential calls it."""
import json, sys, urllib.parse, urllib.request
SIGNED_IN, ENDPOINT, HEADER, CLIENT_ID = {signed_in!r}, {endpoint!r}, {header!r}, {client_id!r}
AUDIENCES = {audiences!r}
args = sys.argv[1:]
if not SIGNED_IN:
    sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
    sys.exit(1)
if args[:2] == ["account", "show"]:
    print(json.dumps({{"name": "rr-dev", "id": "00000000-0000-0000-0000-000000000001",
                      "user": {{"name": {developer!r}, "type": "user"}}}}))
elif args[:4] == ["account", "get-access-token", "--output", "json"] and "--resource" in args:
    resource = args[args.index("--resource") + 1].rstrip("/")
    query = urllib.parse.urlencode({{"api-version": {api_version!r},
                                    "resource": AUDIENCES.get(resource, resource),
                                    "client_id": CLIENT_ID}})
    request = urllib.request.Request(ENDPOINT + "?" + query,
                                     headers={{"X-IDENTITY-HEADER": HEADER}})
    token = json.load(urllib.request.urlopen(request))
    print(json.dumps({{"accessToken": token["access_token"], "expires_on": int(token["expires_on"]),
                      "tokenType": "Bearer"}}))
else:
    sys.stderr.write("unexpected az call: %s\\n" % args)
    sys.exit(2)
'''

PULUMI = '''\
#!/bin/sh
if [ "$*" != "stack output --json --stack dev" ]; then
  echo "unexpected pulumi call: $*" >&2; exit 2
fi
{answer}
'''


@dataclass(frozen=True)
class Developer:
    """A developer's machine: which `az` sign-in and which `pulumi` answer it has."""

    signed_in: bool = True
    member: bool = True
    outputs: dict | None = None  # None: the stack is not deployed
    pulumi_installed: bool = True
    # Storage tokens for another audience: Azurite refuses them, as Azure refuses a
    # non-member's request to the container.
    storage_refused: bool = False


def machine(tmp_path: Path, stack: DevStack, developer: Developer) -> dict[str, str]:
    """The environment `make dev-azure` runs in on that machine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    identity = stack.member if developer.member else stack.outsider
    audiences = ({"https://storage.azure.com": "https://vault.azure.net"}
                 if developer.storage_refused else {})
    _executable(bin_dir / "az", AZ.format(
        python=sys.executable, signed_in=developer.signed_in, endpoint=stack.identity.url,
        header=stack.identity.secret, client_id=identity.client_id, developer=DEVELOPER,
        api_version=API_VERSION, audiences=audiences))
    if developer.pulumi_installed:
        answer = ('echo "error: no stack named \'dev\' found" >&2; exit 255'
                  if developer.outputs is None
                  else f"cat <<'JSON'\n{json.dumps(developer.outputs)}\nJSON")
        _executable(bin_dir / "pulumi", PULUMI.format(answer=answer))
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
            # The site trusts the stand-in services' CA as it trusts Azure's public CAs.
            "REQUESTS_CA_BUNDLE": str(stack.certificates.ca_bundle),
            "SSL_CERT_FILE": str(stack.certificates.ca_bundle)}


def _executable(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)


def dev_azure_command(stack: DevStack, port: int, data_dir: Path) -> list[str]:
    # What `make dev-azure STACK=dev` runs, with the rehearsal's PostgreSQL port.
    return [sys.executable, "-m", "devtools.dev_azure", "--stack", "dev", "--port", str(port),
            "--data-dir", str(data_dir), "--rehearsal-postgres-port", str(stack.postgres.port)]


def run_dev_azure(tmp_path: Path, stack: DevStack, developer: Developer
                  ) -> subprocess.CompletedProcess:
    return subprocess.run(dev_azure_command(stack, free_port(), tmp_path / ".local"),
                          cwd=REPO_ROOT, env=machine(tmp_path, stack, developer),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("make dev-azure: ")
    return lines[0]


# the site against the dev stack ------------------------------------------------------------


@pytest.fixture
def running_site(tmp_path, dev_stack) -> Iterator[str]:
    port = free_port()
    env = machine(tmp_path, dev_stack, Developer(outputs=dev_stack.outputs()))
    log = tmp_path / "dev-azure.log"  # a file, not a pipe nobody reads while the site runs
    with log.open("w") as output:
        process = subprocess.Popen(dev_azure_command(dev_stack, port, tmp_path / ".local"),
                                   cwd=REPO_ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for_http_ok(process, f"http://127.0.0.1:{port}/healthz", SITE_START_TIMEOUT)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=RUN_TIMEOUT)
        assert process.returncode == 0, log.read_text()


def test_the_site_runs_against_the_dev_stack_with_the_developers_sign_in(running_site, dev_stack,
                                                                         tmp_path):
    browser = requests.Session()
    created = browser.post(f"{running_site}/restaurants/new", allow_redirects=False, timeout=10,
                           data={"name": "Cloud Cantina", "street_address": "1 Dev Stack Road",
                                 "description": "Local code, dev's data."})
    assert created.status_code == 303, created.text
    detail_url = requests.compat.urljoin(running_site, created.headers["Location"])
    photo = png_photo()
    reviewed = browser.post(f"{detail_url}/reviews", allow_redirects=False, timeout=10,
                            data={"reviewer_name": "Dev", "rating": "4",
                                  "review_text": "Signed in as the group."},
                            files={"photo": ("dish.png", photo, "image/png")})
    assert reviewed.status_code == 303, reviewed.text
    page = browser.get(detail_url, timeout=10).text
    photo_url = re.search(r'<img class="review__photo" src="([^"]+)"', page).group(1)
    served = browser.get(requests.compat.urljoin(running_site, photo_url), timeout=10)

    assert "Cloud Cantina" in page and "Signed in as the group." in page
    assert served.status_code == 200 and served.content == photo
    # The rows are the dev stack's, written by the group's role acting as the app's owner role.
    rows = dev_stack.postgres.execute("SELECT name FROM restaurants WHERE name = 'Cloud Cantina'",
                                      database=DATABASE)
    assert rows == [("Cloud Cantina",)]
    owners = dev_stack.postgres.execute("SELECT DISTINCT tableowner FROM pg_tables "
                                        "WHERE schemaname = 'public'", database=DATABASE)
    assert owners == [(OWNER,)]
    # Nothing secret on disk: only the local throwaway SECRET_KEY.
    assert sorted(path.name for path in (tmp_path / ".local").iterdir()) == ["secret_key"]
    assert (tmp_path / ".local" / "secret_key").stat().st_mode & 0o077 == 0


# the errors, each naming its fix -----------------------------------------------------------


def test_not_signed_in_says_az_login(tmp_path, dev_stack):
    error = one_line_error(run_dev_azure(tmp_path, dev_stack, Developer(
        signed_in=False, outputs=dev_stack.outputs())))
    assert "you are not signed in to Azure" in error and "run `az login`" in error


def test_not_a_member_of_the_group_says_so(tmp_path, dev_stack):
    error = one_line_error(run_dev_azure(tmp_path, dev_stack, Developer(
        member=False, outputs=dev_stack.outputs())))
    assert f"not a member of the Entra group {GROUP!r}" in error
    assert "ask its owner to add you" in error


def test_an_address_outside_the_firewall_says_which_config_to_change(tmp_path, dev_stack):
    error = one_line_error(run_dev_azure(tmp_path, dev_stack, Developer(
        outputs=dev_stack.outputs(databaseName=FIREWALLED_DATABASE))))
    assert "firewall of stack 'dev' does not admit your address 127.0.0.1" in error
    assert "developerIpRanges in Pulumi.dev.yaml" in error


def test_a_refused_photo_container_says_the_group_is_missing(tmp_path, dev_stack):
    error = one_line_error(run_dev_azure(tmp_path, dev_stack, Developer(
        storage_refused=True, outputs=dev_stack.outputs())))
    assert "Blob Storage refused you the 'photos' container" in error
    assert f"not a member of the Entra group {GROUP!r}" in error


@pytest.mark.parametrize(("developer", "expected"), [
    (Developer(pulumi_installed=False), "the Pulumi CLI is not installed"),
    (Developer(outputs=None), "could not read stack 'dev''s outputs (error: no stack named "
                              "'dev' found): `pulumi login` to its backend"),
    (Developer(outputs={}), "stack 'dev' has no outputs (not deployed yet?): run "
                            "`pulumi up --stack dev`"),
])
def test_missing_stack_outputs_say_what_to_do(tmp_path, dev_stack, developer, expected):
    assert expected in one_line_error(run_dev_azure(tmp_path, dev_stack, developer))


def test_outputs_of_an_older_program_name_the_missing_keys(tmp_path, dev_stack):
    outputs = dev_stack.outputs(photoContainer=None, databaseHost=None)
    error = one_line_error(run_dev_azure(tmp_path, dev_stack, Developer(outputs=outputs)))
    assert "outputs lack databaseHost, photoContainer: deploy this checkout's program" in error


def test_a_stack_without_developer_access_names_the_config_keys(tmp_path, dev_stack):
    outputs = dev_stack.outputs(developerGroupName=None)
    error = one_line_error(run_dev_azure(tmp_path, dev_stack, Developer(outputs=outputs)))
    assert "grants no developer access" in error
    assert "developerGroupObjectId, developerGroupName and developerIpRanges" in error


# the settings are App Service's ------------------------------------------------------------


def declared_site_settings(run) -> dict[str, str]:
    app = next(r for r in run.resources if r.type == "azure-native:web:WebApp")
    return {pair["name"]: pair["value"] for pair in app.inputs["siteConfig"]["appSettings"]}


def test_the_settings_table_covers_exactly_what_the_program_declares_for_the_site():
    config = {**load_stack_config("dev"),
              "restaurant-review:developerGroupObjectId": GROUP_OBJECT_ID,
              "restaurant-review:developerGroupName": GROUP}
    dev = run_stack("dev", config=config)
    gateway = {**load_stack_config("prod"), "restaurant-review:ingress": "applicationGateway"}
    # Every setting any tier declares: dev's, plus the slot warm-up and the gateway's hops.
    dev_settings = declared_site_settings(dev)
    declared = {**declared_site_settings(run_stack("prod", config=gateway)), **dev_settings}

    assert set(dev_azure.SITE_SETTINGS) == set(declared)
    constants = {name for name, source in dev_azure.SITE_SETTINGS.items()
                 if isinstance(source, dev_azure.Declared)}
    assert constants == set(dev_azure.DECLARED_VALUES)
    for name, value in dev_azure.DECLARED_VALUES.items():
        assert declared[name] == value
    from_outputs = {name: source.key for name, source in dev_azure.SITE_SETTINGS.items()
                    if isinstance(source, dev_azure.StackOutput)}
    # The output holds what App Service gets, except the user: members sign in as the group.
    assert dev.outputs[from_outputs.pop("AZURE_POSTGRESQL_USER")] == GROUP
    for name, key in from_outputs.items():
        assert dev.outputs[key] == dev_settings[name], name
    assert declared["SECRET_KEY"].startswith("@Microsoft.KeyVault(")  # never copied locally


@pytest.mark.parametrize(("variables", "stack"), [([], "dev"), (["STACK=dev"], "dev"),
                                                  (["STACK=staging"], "staging")])
def test_make_dev_azure_runs_this_entry_point(variables, stack):
    # --no-print-directory: under `make test` this make is a sub-make, which would say so last.
    steps = subprocess.run(["make", "-n", "--no-print-directory", "dev-azure", *variables],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                           timeout=30).stdout
    assert f"-m devtools.dev_azure --stack {stack}" in steps.splitlines()[-1]
