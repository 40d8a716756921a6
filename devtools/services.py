"""Real local services for development, tests, the benchmark and the boot test.

PostgreSQL comes from Debian's server binaries and Azurite from the npm lockfile: both are the
real thing, started as child processes on 127.0.0.1 with their data in a folder the caller owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
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


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL server installation (initdb, pg_ctl, postgres)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if not candidates:
        raise ServiceError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "run `make deps` (it apt-installs the 'postgresql' package)"
        )
    return Path(candidates[-1]).parent


class PostgresCluster:
    """A PostgreSQL cluster of our own: created on first start, reused afterwards.

    The superuser `postgres` is trusted on loopback; every other role must present its real
    password (scram-sha-256), which is what lets the managed-identity test prove that a token
    is accepted as a password rather than ignored.
    """

    SUPERUSER = "postgres"

    def __init__(self, data_dir: Path | str, port: int = 0, durable: bool = True):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.durable = durable
        self._bin = postgres_bin_dir()
        self._os_user = _unprivileged_user_for_postgres()

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
    """PostgreSQL refuses to run as root; when we are root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as missing:
        raise ServiceError(
            "running as root, PostgreSQL needs the unprivileged 'postgres' user that Debian's "
            "postgresql package creates: run `make deps`"
        ) from missing


def _make_reachable_by(data_dir: Path, user: pwd.struct_passwd) -> None:
    """Hand the data folder to `user` and check it can walk down to it."""
    shutil.chown(data_dir, user.pw_name, user.pw_gid)
    blocked = [parent for parent in data_dir.parents if not os.stat(parent).st_mode & 0o001]
    if blocked:
        raise ServiceError(
            f"PostgreSQL runs as '{user.pw_name}' and cannot reach {data_dir}: "
            f"{blocked[0]} is not searchable by other users "
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
        executable = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
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
