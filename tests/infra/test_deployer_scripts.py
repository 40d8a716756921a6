"""The deployment scripts' shell, run for real with a stand-in `az` (infra/deployer.py).

ARM runs these in a container with the deployer identity; here /bin/sh runs them with an `az`
that answers like Azure would, and psql against the local PostgreSQL the SQL tests use.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from devtools.services import postgres_bin_dir
from infra.app import sni_bind_script
from infra.db_role import SQL_SCRIPT, psql_command
from infra.deployer import PSQL_PACKAGE, database_roles_script, deploy_script
from tests.azure_postgres import ADMIN, ADMIN_TOKEN, DATABASE, OWNER, cursor_as

# /bin/sh runs each script with the local PostgreSQL's binaries (psql) on PATH.
pytestmark = pytest.mark.slow

PACKAGE = b"PK\x05\x06" + bytes(18)


def _fake_az(folder: Path, body: str) -> Path:
    az = folder / "az"
    az.write_text("#!/bin/sh\n" + body)
    az.chmod(0o755)
    return folder


def _run(script: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = f"{folder}:{postgres_bin_dir()}:{os.environ['PATH']}"
    return subprocess.run(["/bin/sh", "-c", script], env={**os.environ, "PATH": path, **env},
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def deploy_bin(tmp_path: Path) -> Path:
    """An `az` that serves the package, records deploys and reports production's history."""
    record = tmp_path / "deploys.log"
    return _fake_az(tmp_path, f"""
case "$*" in
  "storage blob download "*) printf 'PK\\005\\006%018d' 0 | tr 0 '\\000' > package.zip ;;
  "webapp show "*) ;;
  "webapp log deployment list "*)
    [ -z "${{DEPLOYMENT_LIST_FAILS:-}}" ] || {{ echo "ERROR: forbidden" >&2; exit 1; }}
    echo "${{PRODUCTION_DEPLOYMENTS:-1}}" ;;
  "webapp deploy "*) echo "$*" >> {record} ;;
  *) echo "unexpected az call: $*" >&2; exit 2 ;;
esac
""")


def _deploys(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "deploys.log").read_text().splitlines()
    return [dict(zip(args[2::2], args[3::2], strict=True))
            for args in (shlex.split(line) for line in lines)]


def test_deploy_downloads_checks_and_deploys_the_package(deploy_bin):
    script = deploy_script("rg-rr-prod", "app-rr-prod-abc123", "staging", "sub-id")
    env = {"PACKAGE_ACCOUNT": "strrproddepabc123", "PACKAGE_BLOB": "webapp-1.zip",
           "PACKAGE_SHA256": hashlib.sha256(PACKAGE).hexdigest()}
    result = _run(script, deploy_bin, env)
    assert result.returncode == 0, result.stderr
    (flags,) = _deploys(deploy_bin)  # production already runs a release: staging only
    assert flags["--name"] == "app-rr-prod-abc123" and flags["--slot"] == "staging"
    assert flags["--resource-group"] == "rg-rr-prod" and flags["--type"] == "zip"
    assert flags["--src-path"] == "package.zip" and flags["--clean"] == "true"


def test_the_first_release_also_fills_the_empty_production_app(deploy_bin):
    script = deploy_script("rg-rr-prod", "app-rr-prod-abc123", "staging", "sub-id")
    env = {"PACKAGE_ACCOUNT": "a", "PACKAGE_BLOB": "b", "PRODUCTION_DEPLOYMENTS": "0",
           "PACKAGE_SHA256": hashlib.sha256(PACKAGE).hexdigest()}
    result = _run(script, deploy_bin, env)
    assert result.returncode == 0, result.stderr
    staging, production = _deploys(deploy_bin)
    assert staging["--slot"] == "staging" and "--slot" not in production
    assert production["--name"] == "app-rr-prod-abc123"


def test_a_failing_look_at_productions_history_fails_the_script(deploy_bin):
    script = deploy_script("rg-rr-prod", "app-rr-prod-abc123", "staging", "sub-id")
    env = {"PACKAGE_ACCOUNT": "a", "PACKAGE_BLOB": "b", "DEPLOYMENT_LIST_FAILS": "1",
           "PACKAGE_SHA256": hashlib.sha256(PACKAGE).hexdigest()}
    result = _run(script, deploy_bin, env)
    # Not a silent success that leaves production empty.
    assert result.returncode != 0
    assert "ERROR: forbidden" in result.stderr
    (staging,) = _deploys(deploy_bin)
    assert staging["--slot"] == "staging"


def test_a_package_with_the_wrong_hash_is_never_deployed(deploy_bin):
    script = deploy_script("rg-rr-dev", "app-rr-dev-abc123", None, "sub-id")
    env = {"PACKAGE_ACCOUNT": "a", "PACKAGE_BLOB": "b", "PACKAGE_SHA256": "0" * 64}
    result = _run(script, deploy_bin, env)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
    assert not (deploy_bin / "deploys.log").exists()


TOKEN_AZ = """
[ "$*" = "account get-access-token --resource-type oss-rdbms --query accessToken --output tsv" ] \
  && echo "$ADMIN_TOKEN" && exit 0
echo "unexpected az call: $*" >&2; exit 2
"""


def _roles_env(cluster) -> dict[str, str]:
    return {"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": ADMIN,
            "PGDATABASE": "postgres", "PGSSLMODE": "disable", "ADMIN_TOKEN": ADMIN_TOKEN}


def test_database_roles_run_one_after_the_other_for_every_identity(azure_like_server, tmp_path):
    cluster, _ = azure_like_server
    folder = _fake_az(tmp_path, TOKEN_AZ)
    app, slot = ("app-rr-script", str(uuid.uuid4())), ("app-rr-script-staging", str(uuid.uuid4()))
    commands = [psql_command(role, object_id, OWNER, DATABASE) for role, object_id in (app, slot)]
    script = database_roles_script(SQL_SCRIPT.read_text(), commands)
    result = _run(script, folder, _roles_env(cluster))
    assert result.returncode == 0, result.stderr
    for role, object_id in (app, slot):
        with cursor_as(cluster, role, object_id) as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (OWNER,)


def test_psql_comes_from_the_client_package_and_says_its_version(azure_like_server, tmp_path):
    """Like the azure-cli image: no psql until tdnf installs it. As in Azure Linux, psql comes
    with the client-only `postgresql-libs`; `postgresql` is the server, whose install scripts
    need groupadd, absent from the image (microsoft/azurelinux#10385)."""
    cluster, _ = azure_like_server
    folder = _fake_az(tmp_path, TOKEN_AZ)
    for tool in ("cat", "date", "mktemp", "sleep"):  # what the script needs besides psql
        (folder / tool).symlink_to(shutil.which(tool))
    tdnf = folder / "tdnf"
    tdnf.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/tdnf.log
case "$*" in
  "install -y postgresql-libs") {shutil.which("ln")} -s {shutil.which("psql")} {folder}/psql ;;
  "install -y postgresql") echo "groupadd: command not found" >&2; exit 1 ;;
  *) echo "Error(1011) : No matching packages" >&2; exit 1 ;;
esac
""")
    tdnf.chmod(0o755)
    script = database_roles_script(SQL_SCRIPT.read_text(), [
        psql_command("app-rr-installed", str(uuid.uuid4()), OWNER, DATABASE)])
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                            env={"PATH": str(folder), **_roles_env(cluster)},
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tdnf.log").read_text().split() == ["install", "-y", PSQL_PACKAGE]
    assert result.stdout.startswith("psql (PostgreSQL) ")  # before the first connection


def test_the_sign_in_is_retried_until_the_new_administrator_applies(azure_like_server,
                                                                      tmp_path):
    """The first token is refused (the Entra administrator is not applied yet); `sleep` is where
    the script waits, so the stand-in `sleep` is when it applies."""
    cluster, _ = azure_like_server
    applied = tmp_path / "applied"
    folder = _fake_az(tmp_path, f"""
[ -e {applied} ] && echo "$ADMIN_TOKEN" || echo not-yet
""")
    (folder / "sleep").write_text(f"#!/bin/sh\ntouch {applied}\n")
    (folder / "sleep").chmod(0o755)
    script = database_roles_script(SQL_SCRIPT.read_text(), [
        psql_command("app-rr-waited", str(uuid.uuid4()), OWNER, DATABASE)])
    result = _run(script, folder, _roles_env(cluster))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("password authentication failed") == 1


def test_a_failing_statement_fails_at_once_without_retrying(azure_like_server, tmp_path):
    cluster, _ = azure_like_server
    folder = _fake_az(tmp_path, TOKEN_AZ)
    (folder / "sleep").write_text(f"#!/bin/sh\ntouch {tmp_path}/slept\n")
    (folder / "sleep").chmod(0o755)
    script = database_roles_script(SQL_SCRIPT.read_text(), [
        psql_command("app-rr-nodb", str(uuid.uuid4()), OWNER, "rr_missing")])
    result = _run(script, folder, _roles_env(cluster))
    assert result.returncode == 3  # psql: a statement failed under ON_ERROR_STOP
    assert result.stderr.count('database "rr_missing" does not exist') == 1
    assert not (tmp_path / "slept").exists()


def test_the_sql_may_not_end_the_heredoc_early():
    with pytest.raises(ValueError, match="heredoc marker"):
        database_roles_script("SELECT 1;\nSQL\nrm -rf /\n", ["psql"])


BINDING_ID = ("/subscriptions/s/resourceGroups/rg-rr-dev/providers/Microsoft.Web/sites/"
              "app-rr-dev/hostNameBindings/www.example.com")


def test_the_sni_switch_is_retried_until_the_website_contributor_grant_applies(tmp_path):
    """ARM refuses the PUT while the deployer's Website Contributor, made minutes earlier, is not
    applied yet; the stand-in `sleep` is when it applies."""
    applied, puts = tmp_path / "applied", tmp_path / "puts.log"
    folder = _fake_az(tmp_path, f"""
[ "$1 $2 $3" = "rest --method put" ] || {{ echo "unexpected az call: $*" >&2; exit 2; }}
echo "$*" >> {puts}
[ -e {applied} ] || {{ echo "ERROR: (AuthorizationFailed) not yet" >&2; exit 1; }}
""")
    (folder / "sleep").write_text(f"#!/bin/sh\ntouch {applied}\n")
    (folder / "sleep").chmod(0o755)
    result = _run(sni_bind_script(BINDING_ID, "A" * 40), folder, {})
    assert result.returncode == 0, result.stderr
    assert len(puts.read_text().splitlines()) == 2  # refused once, then through
    assert result.stderr.count("AuthorizationFailed") == 1


def test_the_sni_switch_gives_up_when_the_grant_never_applies(tmp_path):
    folder = _fake_az(tmp_path, 'echo "ERROR: (AuthorizationFailed)" >&2; exit 1\n')
    (folder / "sleep").write_text("#!/bin/sh\n")
    (folder / "sleep").chmod(0o755)
    # A clock past the deadline after the first refusal: no real waiting.
    (folder / "date").write_text('#!/bin/sh\n[ -e "$0.late" ] && echo 9999999999 || '
                                 '{ touch "$0.late"; echo 0; }\n')
    (folder / "date").chmod(0o755)
    result = _run(sni_bind_script(BINDING_ID, "A" * 40), folder, {})
    assert result.returncode == 1
    assert "switching the binding to SNI still failing" in result.stderr
