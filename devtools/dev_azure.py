"""`make dev-azure STACK=dev`: this checkout's site on 127.0.0.1, against a deployed stack's data.

The seed's Test step: the same code, unchanged, run on the developer's machine against the
PostgreSQL server and photo container the dev stack already has. The site gets the settings App
Service gives it (SITE_SETTINGS: each one's local source), read from `pulumi stack output`, and
its DefaultAzureCredential signs in with the developer's own `az login`. The stack must grant
the developers' Entra group access (config developerGroupObjectId/developerGroupName and
developerIpRanges: infra/README.md, "Developer access"); PostgreSQL's user name is then the
group's name, which is how Azure signs in a group's members.

Nothing secret is written: tokens stay in memory (the site asks `az` for them), and SECRET_KEY is
a local throwaway kept in .local/secret_key like `make dev`'s, never the deployed site's key.
The site does not run migrations: the database's schema belongs to the deployed release.

    .venv/bin/python -m devtools.dev_azure [--stack dev] [--port 8000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from devtools.dev import DEFAULT_SITE_PORT, persistent_secret, serve_until_stopped, start_site
from devtools.readiness import NotReadyError
from devtools.services import REPO_ROOT, port_is_open

POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
STORAGE_SCOPE = "https://storage.azure.com/.default"
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class StackOutput:
    """The value is the stack output `key`."""

    key: str


@dataclass(frozen=True)
class Declared:
    """The value the program declares for the site (the same for every deployment)."""


@dataclass(frozen=True)
class LocalThrowaway:
    """A value of this machine's own, kept in the data folder (never the deployed one)."""

    file_name: str


@dataclass(frozen=True)
class AppServiceOnly:
    """Not set locally; `why` says what App Service does with it that a laptop must not."""

    why: str


# Every app setting the program declares for the site (infra/app.py app_settings), by where a
# local run takes it from. The test suite checks this table against the program under mocks.
SITE_SETTINGS: dict[str, StackOutput | Declared | LocalThrowaway | AppServiceOnly] = {
    "AZURE_POSTGRESQL_HOST": StackOutput("databaseHost"),
    "AZURE_POSTGRESQL_DATABASE": StackOutput("databaseName"),
    # Members of an Entra group sign in with the group's name and their own token.
    "AZURE_POSTGRESQL_USER": StackOutput("developerGroupName"),
    "AZURE_POSTGRESQL_PORT": Declared(),
    "AZURE_POSTGRESQL_SSLMODE": Declared(),
    "AZURE_STORAGE_ACCOUNT_URL": StackOutput("storageAccountUrl"),
    "AZURE_STORAGE_CONTAINER": StackOutput("photoContainer"),
    "SECRET_KEY": LocalThrowaway("secret_key"),
    "AZURE_CLIENT_ID": AppServiceOnly(
        "picks the site's managed identity; locally DefaultAzureCredential uses `az login`"),
    "APPLICATIONINSIGHTS_CONNECTION_STRING": AppServiceOnly(
        "a laptop's requests would mix with the deployed site's telemetry and alerts"),
    "SCM_DO_BUILD_DURING_DEPLOYMENT": AppServiceOnly("steers App Service's deployment build"),
    "TRUSTED_PROXY_HOPS": AppServiceOnly("counts the proxies in front of the deployed site"),
    "WEBSITE_SWAP_WARMUP_PING_PATH": AppServiceOnly("the platform's slot-swap warm-up"),
    "WEBSITE_SWAP_WARMUP_PING_STATUSES": AppServiceOnly("the platform's slot-swap warm-up"),
}
# Values of the Declared settings, as the program declares them (checked by the same test).
DECLARED_VALUES = {"AZURE_POSTGRESQL_PORT": "5432", "AZURE_POSTGRESQL_SSLMODE": "require"}


class DevAzureError(RuntimeError):
    """`make dev-azure` cannot start; the one-line message names the fix."""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return run(args.stack, args.port, args.data_dir.resolve(), args.rehearsal_postgres_port)
    except (DevAzureError, NotReadyError) as failure:
        print(f"make dev-azure: {failure}", file=sys.stderr, flush=True)
        return 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.dev_azure",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"),
                        help="the deployed stack whose resources the site uses (default: dev)")
    parser.add_argument("--port", type=int,
                        default=os.environ.get("DEV_PORT", str(DEFAULT_SITE_PORT)),
                        help="the site's port on 127.0.0.1 (default: $DEV_PORT or 8000)")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".local",
                        help="where the local SECRET_KEY persists (default: .local)")
    # The offline rehearsal's PostgreSQL cannot listen on 5432; nothing else differs.
    parser.add_argument("--rehearsal-postgres-port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(stack: str, port: int, data_dir: Path, rehearsal_postgres_port: int | None = None) -> int:
    if port_is_open(port):
        raise DevAzureError(f"port {port} on 127.0.0.1 is already in use: stop that process or "
                            f"pick another port (make dev-azure DEV_PORT={port + 1})")
    outputs = stack_outputs(stack)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = site_settings(stack, outputs, data_dir)
    if rehearsal_postgres_port is not None:
        settings["AZURE_POSTGRESQL_PORT"] = str(rehearsal_postgres_port)
    account = signed_in_account()
    check_postgres(stack, settings)
    check_photo_container(stack, settings)

    def start(started: contextlib.ExitStack) -> subprocess.Popen:
        site = start_site(started, settings, port)
        _print_banner(stack, port, account, settings)
        return site

    return serve_until_stopped(start)


# the stack ---------------------------------------------------------------------------------


def stack_outputs(stack: str) -> dict:
    """`pulumi stack output --json` for `stack`, or a one-line error naming the fix."""
    if shutil.which("pulumi") is None:
        raise DevAzureError("the Pulumi CLI is not installed (pulumi not found on PATH): install "
                            "it (https://www.pulumi.com/docs/install/) and `pulumi login`")
    result = _run(["pulumi", "stack", "output", "--json", "--stack", stack], cwd=REPO_ROOT)
    if result.returncode != 0:
        raise DevAzureError(f"could not read stack {stack!r}'s outputs ({_first_line(result)}): "
                            f"`pulumi login` to its backend, then deploy it with "
                            f"`pulumi up --stack {stack}`")
    try:
        outputs = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        raise DevAzureError(f"`pulumi stack output --json --stack {stack}` did not print JSON: "
                            "upgrade the Pulumi CLI") from None
    if not outputs:
        raise DevAzureError(f"stack {stack!r} has no outputs (not deployed yet?): run "
                            f"`pulumi up --stack {stack}`")
    return outputs


def site_settings(stack: str, outputs: Mapping, data_dir: Path) -> dict[str, str]:
    """The environment App Service gives the site, with the local sources of SITE_SETTINGS."""
    if "developerGroupName" not in outputs:
        raise DevAzureError(
            f"stack {stack!r} grants no developer access (no developerGroupName output): set "
            "developerGroupObjectId, developerGroupName and developerIpRanges in "
            f"Pulumi.{stack}.yaml (infra/README.md, \"Developer access\") and `pulumi up`")
    missing = sorted(source.key for source in SITE_SETTINGS.values()
                     if isinstance(source, StackOutput) and source.key not in outputs)
    if missing:
        raise DevAzureError(f"stack {stack!r}'s outputs lack {', '.join(missing)}: deploy this "
                            f"checkout's program with `pulumi up --stack {stack}`")
    settings = {}
    for name, source in SITE_SETTINGS.items():
        if isinstance(source, StackOutput):
            settings[name] = str(outputs[source.key])
        elif isinstance(source, Declared):
            settings[name] = DECLARED_VALUES[name]
        elif isinstance(source, LocalThrowaway):
            settings[name] = persistent_secret(data_dir / source.file_name)
    return settings


# the developer's sign-in -------------------------------------------------------------------


def signed_in_account() -> str:
    """Who `az` is signed in as (DefaultAzureCredential will use that sign-in)."""
    if shutil.which("az") is None:
        raise DevAzureError("the Azure CLI is not installed (az not found on PATH): install it "
                            "and run `az login`")
    result = _run(["az", "account", "show", "--output", "json"])
    if result.returncode != 0:
        raise DevAzureError("you are not signed in to Azure (az account show failed): run "
                            "`az login`")
    try:
        account = json.loads(result.stdout)
        return f"{account['user']['name']} ({account['name']})"
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DevAzureError("`az account show` printed no account: run `az login` "
                            "again") from None


def _credential():
    # Imported on demand, like the site does: nothing else here needs azure-identity.
    from azure.identity import AzureCliCredential

    return AzureCliCredential()


def _token(scope: str) -> str:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    try:
        return _credential().get_token(scope).token
    except (ClientAuthenticationError, CredentialUnavailableError) as failure:
        reason = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
        raise DevAzureError(f"`az` gave no token for {scope} ({reason}): run `az login` "
                            "again") from None


# the stack's services ----------------------------------------------------------------------

# Azure's message when the server firewall admits no rule for the client's address.
_FIREWALL_REFUSAL = re.compile(r'no pg_hba\.conf entry for host "([^"]+)"')


def check_postgres(stack: str, settings: Mapping[str, str]) -> None:
    """Sign in to PostgreSQL as the site will, so a refusal is explained before it starts."""
    group = settings["AZURE_POSTGRESQL_USER"]
    try:
        connection = psycopg2.connect(
            host=settings["AZURE_POSTGRESQL_HOST"], port=settings["AZURE_POSTGRESQL_PORT"],
            dbname=settings["AZURE_POSTGRESQL_DATABASE"], user=group,
            password=_token(POSTGRES_SCOPE), sslmode=settings["AZURE_POSTGRESQL_SSLMODE"],
            connect_timeout=15)
    except psycopg2.OperationalError as failure:
        raise postgres_refusal(stack, group, str(failure)) from None
    connection.close()


def postgres_refusal(stack: str, group: str, message: str) -> DevAzureError:
    firewall = _FIREWALL_REFUSAL.search(message)
    if firewall:
        return DevAzureError(
            f"the PostgreSQL firewall of stack {stack!r} does not admit your address "
            f"{firewall.group(1)}: add a range holding it to developerIpRanges in "
            f"Pulumi.{stack}.yaml and `pulumi up`")
    if "password authentication failed" in message:
        return DevAzureError(
            f"PostgreSQL refused your token for {group!r}: you are not a member of the Entra "
            f"group {group!r} (ask its owner to add you, then `az login` again)")
    first_line = message.strip().splitlines()[0] if message.strip() else "no answer"
    return DevAzureError(f"could not reach PostgreSQL of stack {stack!r} ({first_line}): check "
                         "your network, then `pulumi up` if the server was stopped or removed")


def check_photo_container(stack: str, settings: Mapping[str, str]) -> None:
    """List one blob with the developer's token: a 403 means no role on the container."""
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import ContainerClient

    container = settings["AZURE_STORAGE_CONTAINER"]
    client = ContainerClient(settings["AZURE_STORAGE_ACCOUNT_URL"], container,
                             credential=_credential(), retry_total=0)
    try:
        with client:
            next(iter(client.list_blobs(results_per_page=1).by_page()), None)
    except HttpResponseError as failure:
        if failure.status_code is None:  # the credential failed, not the service
            raise DevAzureError(f"`az` gave no token for Blob Storage ({failure.message}): run "
                                "`az login` again") from None
        raise blob_refusal(stack, settings["AZURE_POSTGRESQL_USER"], container,
                           failure.status_code) from None


def blob_refusal(stack: str, group: str, container: str, status: int | None) -> DevAzureError:
    if status in (401, 403):
        return DevAzureError(
            f"Blob Storage refused you the {container!r} container of stack {stack!r}: you are "
            f"not a member of the Entra group {group!r} (ask its owner to add you; a new "
            "membership takes a few minutes, then `az login` again)")
    return DevAzureError(f"Blob Storage of stack {stack!r} answered HTTP {status}: check your "
                         "network, then `pulumi up` if the account was removed")


# helpers -----------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DevAzureError(f"`{' '.join(args)}` did not answer in {COMMAND_TIMEOUT:.0f}s: "
                            "check your network and try again") from None


def _first_line(result: subprocess.CompletedProcess) -> str:
    text = (result.stderr or result.stdout or "").strip()
    return text.splitlines()[0] if text else f"exit status {result.returncode}"


def _print_banner(stack: str, port: int, account: str, settings: Mapping[str, str]) -> None:
    print("\n".join([
        "",
        f"  Site:        http://127.0.0.1:{port}  (this checkout's code)",
        f"  Stack:       {stack}",
        f"  Signed in:   {account}, as {settings['AZURE_POSTGRESQL_USER']!r}",
        f"  PostgreSQL:  {settings['AZURE_POSTGRESQL_HOST']}"
        f"/{settings['AZURE_POSTGRESQL_DATABASE']}",
        f"  Photos:      {settings['AZURE_STORAGE_ACCOUNT_URL']}"
        f"/{settings['AZURE_STORAGE_CONTAINER']}",
        "  This is the stack's real data. Ctrl-C stops the site.",
        "",
    ]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
