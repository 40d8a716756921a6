"""Build the App Service deploy package: dist/webapp-py<version>.zip.

    .venv/bin/python -m release.build [--python-version 3.11] [--dist dist] [--cache build]
    .venv/bin/python -m release.build --lock      # `make package-lock`: re-pin after a change

The zip's root holds `startup.py` (the App Service startup command is `python startup.py`),
`webapp/` (sources, templates, static files, migrations) and `vendor/` (every runtime dependency
from webapp/requirements.txt, installed from manylinux x86_64 wheels for the target Python), so
the site starts with nothing but a bare interpreter: no Oryx build, no pip at start-up.

What is vendored comes from release/requirements-py<version>.txt, a hash-pinned requirements
file that `uv pip compile --generate-hashes` resolves for the target platform and Python; pip
installs it with --require-hashes, so every wheel is the one that was locked.

The zip is byte-for-byte reproducible: entries sorted, one fixed timestamp (SOURCE_DATE_EPOCH
or 1980-01-01), fixed permissions, no bytecode. The vendored set is cached under build/ keyed
by everything that decides its content, so only the first build pays for pip.
"""

from __future__ import annotations

import argparse
import collections
import email.parser
import fnmatch
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_SCRIPT = Path(__file__).resolve().parent / "startup.py"

# App Service's runtime stack is PYTHON|3.11; override with --python-version or
# PACKAGE_PYTHON_VERSION (not PYTHON_VERSION: Python's Docker images set that to e.g. 3.11.9).
DEFAULT_PYTHON_VERSION = "3.11"

# App Service's Python images run on Debian (glibc >= 2.28), so any manylinux wheel up to
# glibc 2.28 runs there. pip does not expand `manylinux_2_X` tags to older ones by itself.
MANYLINUX_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + [
    "manylinux2014_x86_64"
]

# What `uv pip compile` resolves the lock for: the newest of the platforms above.
LOCK_PLATFORM = "x86_64-manylinux_2_28"

# Bump when the vendoring steps change, so older caches are not reused.
VENDOR_CACHE_FORMAT = "3"

ZIP_EPOCH_FLOOR = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can carry
FILE_MODE = 0o100644  # regular file, rw-r--r--: nothing in the package needs an exec bit

# Never shipped from webapp/: bytecode, tests, editor and OS droppings, local state.
EXCLUDED_DIR_NAMES = {"__pycache__", "tests", "test", "node_modules", "instance"}
EXCLUDED_FILE_PATTERNS = [
    "*.pyc",
    "*.pyo",
    "*~",
    "*.swp",
    "*.orig",
    "*.rej",
    "*.log",
    "test_*.py",
    "*_test.py",
    "conftest.py",
    "*.sqlite",
    "*.sqlite3",
    "*.db",
]

# Names that mean credentials or local state. Hidden files and folders (.env, .git, .local) are
# never collected; anything else matching these makes the build fail loudly rather than ship
# it: a key file in the source tree is a mistake someone has to look at.
SECRET_FILE_PATTERNS = [
    ".env",
    ".env.*",
    "*.env",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    "*.key",
    "*.pfx",
    "*.p12",
    "*.jks",
    "id_rsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "local.settings.json",
]
SECRET_DIR_NAMES = {".git", ".local", ".venv", ".azure", ".pulumi", ".ssh"}


class BuildError(RuntimeError):
    """The package cannot be built as asked; the message names the problem."""


@dataclass(frozen=True)
class BuildSettings:
    source_root: Path  # holds webapp/ and webapp/requirements.txt
    dist_dir: Path
    cache_dir: Path
    python_version: str
    source_date_epoch: int
    lock_file: Path  # hash-pinned requirements: every vendored distribution, see --lock

    @property
    def webapp_dir(self) -> Path:
        return self.source_root / "webapp"

    @property
    def requirements(self) -> Path:
        return self.webapp_dir / "requirements.txt"

    @property
    def zip_path(self) -> Path:
        return self.dist_dir / f"webapp-py{self.python_version}.zip"


def build_package(settings: BuildSettings) -> Path:
    """Build the zip and return its path."""
    check_python_version(settings.python_version)
    if not settings.requirements.is_file():
        raise BuildError(f"runtime requirements not found: {settings.requirements}")
    entries = [("startup.py", STARTUP_SCRIPT)]
    entries += prefixed("webapp", webapp_files(settings.webapp_dir))
    vendor_dir = vendor_dependencies(
        settings.requirements, settings.python_version, settings.cache_dir, settings.lock_file
    )
    entries += prefixed("vendor", vendor_files(vendor_dir))
    check_no_secrets(name for name, _ in entries)
    settings.dist_dir.mkdir(parents=True, exist_ok=True)
    write_reproducible_zip(entries, settings.zip_path, settings.source_date_epoch)
    return settings.zip_path


def check_python_version(version: str) -> None:
    parts = version.split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts) or parts[0] != "3":
        raise BuildError(f"the package's Python version must look like 3.11, got {version!r}")


# --- vendored dependencies -------------------------------------------------------------------


def vendor_dependencies(
    requirements: Path, python_version: str, cache_dir: Path, lock: Path
) -> Path:
    """The vendor/ tree for these requirements, installed once and then reused from cache."""
    check_lock_is_current(lock, requirements)
    key = vendor_cache_key(python_version, lock)
    prefix = f"vendor-py{python_version}-"
    target = cache_dir / f"{prefix}{key}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Install next to the final place and rename, so an interrupted build never leaves a
    # half-filled directory that a later build would trust.
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=cache_dir))
    try:
        pip_install_wheels(lock, python_version, staging)
        strip_vendor_tree(staging)
        check_matches_lock(vendored_distributions(staging), lock)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            # A concurrent build filled the same key first: same inputs, same content.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    prune_stale_caches(cache_dir, prefix, keep=target)
    return target


def vendor_cache_key(python_version: str, lock: Path) -> str:
    # The lock alone decides what is installed (webapp/requirements.txt is checked against it).
    digest = hashlib.sha256()
    for part in (
        VENDOR_CACHE_FORMAT,
        python_version,
        " ".join(MANYLINUX_PLATFORMS),
        importlib.metadata.version("pip"),
        lock.read_text(encoding="utf-8"),
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def pip_install_wheels(lock: Path, python_version: str, target: Path) -> None:
    """Install exactly the locked wheels; pip refuses any file whose sha256 is not in the lock
    and any dependency the lock does not pin."""
    abi = "cp" + python_version.replace(".", "")
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python_version,
        "--abi", abi, "--abi", "abi3", "--abi", "none",
        *[arg for platform in MANYLINUX_PLATFORMS for arg in ("--platform", platform)],
        "--target", str(target),
        "--require-hashes", "--requirement", str(lock),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    print(f"vendoring {lock} for CPython {python_version} (manylinux x86_64)")
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BuildError(
            f"pip could not install the locked manylinux wheels for Python {python_version} "
            f"from {lock} (a hash that does not match, or a lock written for another platform? "
            f"refresh it with `{LOCK_COMMAND}`):\n{result.stderr.strip()}"
        )


def strip_vendor_tree(vendor: Path) -> None:
    """Drop what is machine-specific or regenerated at run time."""
    # Console scripts carry this machine's interpreter path in their shebang; the package
    # starts everything with `python -m`, so they are dead weight at best.
    shutil.rmtree(vendor / "bin", ignore_errors=True)
    # Bytecode is rebuilt on the server; libraries' own test suites are never run there.
    for name in ("__pycache__", "tests"):
        for folder in sorted(vendor.glob(f"*/**/{name}"), reverse=True):
            shutil.rmtree(folder, ignore_errors=True)
    for record in vendor.glob("*.dist-info/RECORD"):
        drop_record_lines_for_missing_files(record, vendor)


def drop_record_lines_for_missing_files(record: Path, vendor: Path) -> None:
    """Forget what was deleted above, so each RECORD lists only files the package holds."""
    lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [
        line
        for line in lines
        if not line.startswith("../") and (vendor / line.split(",", 1)[0]).exists()
    ]
    if kept != lines:
        record.write_text("".join(kept), encoding="utf-8")


def prune_stale_caches(cache_dir: Path, prefix: str, keep: Path) -> None:
    for stale in cache_dir.glob(f"{prefix}*"):
        if stale != keep and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def vendor_files(vendor: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(vendor.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path.relative_to(vendor).as_posix(), path


# --- the lock: every vendored distribution pinned, with its hashes ------------------------------
#
# webapp/requirements.txt pins what the site imports; what those pull in would float to the
# newest release on every cold build. The lock is uv's standard hash-pinned requirements file
# for the target platform and Python: the same sources give the same package next month too,
# and pip installs nothing whose sha256 was not locked.

LOCK_DIR = Path(__file__).resolve().parent
LOCK_COMMAND = "make package-lock"
# Lock lines look like `name==version \` (continued by --hash lines), or `name[extra]==version`.
LOCK_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def default_lock_path(python_version: str) -> Path:
    return LOCK_DIR / f"requirements-py{python_version}.txt"


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """canonical name -> version of every `name==version` line (hashes, comments skipped)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        pin = LOCK_PIN.match(line)
        if pin:
            pins[canonical_name(pin.group(1))] = pin.group(2)
    return pins


def read_lock(lock: Path) -> dict[str, str]:
    return read_pins(lock)


def check_lock_is_current(lock: Path, requirements: Path) -> None:
    """Every pin of webapp/requirements.txt is in the lock at that version."""
    if not lock.is_file():
        raise BuildError(f"lock file {lock} not found: create it with `{LOCK_COMMAND}`")
    unpinned = [line.strip() for line in requirements.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")
                and not LOCK_PIN.match(line.strip())]
    if unpinned:
        raise BuildError(f"{requirements} must pin exact versions (name==version): "
                         f"{', '.join(unpinned)}")
    locked = read_lock(lock)
    stale = sorted(
        f"{name}=={version} (locked: {locked.get(name, 'nothing')})"
        for name, version in read_pins(requirements).items()
        if locked.get(name) != version
    )
    if stale:
        raise BuildError(
            f"{requirements} changed since {lock.name} was written: {', '.join(stale)}; "
            f"refresh the lock with `{LOCK_COMMAND}` and commit both"
        )


def vendored_distributions(vendor: Path) -> dict[str, str]:
    """canonical name -> version of every distribution installed in a vendor tree."""
    found = {}
    for metadata_file in vendor.glob("*.dist-info/METADATA"):
        metadata = email.parser.HeaderParser().parsestr(metadata_file.read_text("utf-8"))
        found[canonical_name(metadata["Name"])] = metadata["Version"]
    return found


def check_matches_lock(installed: dict[str, str], lock: Path) -> None:
    pinned = read_lock(lock)
    if installed == pinned:
        return
    differences = sorted(
        f"{name} (locked {pinned.get(name, 'nothing')}, got {installed.get(name, 'nothing')})"
        for name in installed.keys() | pinned.keys()
        if installed.get(name) != pinned.get(name)
    )
    raise BuildError(
        f"the vendored set differs from {lock.name}: {', '.join(differences)}; "
        f"refresh it with `{LOCK_COMMAND}`"
    )


def lock_command(python_version: str, lock: Path) -> list[str]:
    """`uv pip compile` for App Service's platform and Python, with every file's hash."""
    return [
        sys.executable, "-m", "uv", "pip", "compile", "webapp/requirements.txt",
        "--python-version", python_version, "--python-platform", LOCK_PLATFORM,
        "--only-binary", ":all:", "--generate-hashes",
        "--custom-compile-command", LOCK_COMMAND,
        "--output-file", str(lock), "--quiet",
    ]  # fmt: skip


def write_lock(source_root: Path, python_version: str, lock: Path) -> Path:
    """Resolve webapp/requirements.txt afresh and write the hash-pinned lock."""
    # Run from the source root, so the lock names `webapp/requirements.txt` wherever it is.
    result = subprocess.run(  # noqa: S603
        lock_command(python_version, lock), cwd=source_root, capture_output=True,
        text=True, check=False,
    )
    if result.returncode != 0:
        raise BuildError(
            f"uv could not lock webapp/requirements.txt for CPython {python_version} on "
            f"{LOCK_PLATFORM}:\n{(result.stderr or result.stdout).strip()}"
        )
    return lock


# --- site sources ----------------------------------------------------------------------------


def webapp_files(webapp: Path) -> Iterator[tuple[str, Path]]:
    """The site's files, minus tests, bytecode, hidden files and local droppings."""
    if not (webapp / "__init__.py").is_file():
        raise BuildError(f"{webapp} is not the webapp package (no __init__.py)")
    for root, dirs, files in os.walk(webapp):
        dirs[:] = sorted(name for name in dirs if is_shipped_dir(name))
        for name in sorted(files):
            path = Path(root, name)
            if is_shipped_file(name):
                yield path.relative_to(webapp).as_posix(), path


def is_shipped_dir(name: str) -> bool:
    return not (name.startswith(".") or name in EXCLUDED_DIR_NAMES or name.endswith(".egg-info"))


def is_shipped_file(name: str) -> bool:
    if name.startswith("."):
        return False
    return not any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_FILE_PATTERNS)


def is_secret_name(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SECRET_FILE_PATTERNS)


def check_no_secrets(archive_names: Iterable[str]) -> None:
    offending = [
        name
        for name in archive_names
        if is_secret_name(PurePosixPath(name).name)
        or SECRET_DIR_NAMES.intersection(PurePosixPath(name).parts)
    ]
    if offending:
        raise BuildError(
            "refusing to package files that look like secrets or local state: "
            + ", ".join(offending)
            + " (move them out of webapp/)"
        )


def prefixed(prefix: str, entries: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    # A list, so a generator's errors (no webapp package) surface before pip runs.
    return [(f"{prefix}/{name}", path) for name, path in entries]


# --- the zip ---------------------------------------------------------------------------------


def write_reproducible_zip(entries: list[tuple[str, Path]], dest: Path, epoch: int) -> None:
    """Same entries in, same bytes out: sorted names, one timestamp, one mode, one level.

    Level 1 deflate: three times faster than the default 6 for a package ~12% larger, which
    costs nothing worth noticing on upload.
    """
    counts = collections.Counter(name for name, _ in entries)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise BuildError(f"two files map to the same zip entry: {', '.join(duplicates)}")
    date_time = time.gmtime(max(epoch, ZIP_EPOCH_FLOOR))[:6]
    partial = dest.with_name(dest.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.external_attr = FILE_MODE << 16
            info.create_system = 3  # Unix, whatever OS builds it
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=1)
    partial.replace(dest)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[BuildSettings, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m release.build",
        description="Build the reproducible App Service deploy zip; prints its path last.",
    )
    parser.add_argument(
        "--python-version",
        default=os.environ.get("PACKAGE_PYTHON_VERSION", DEFAULT_PYTHON_VERSION),
        help="target CPython version (env PACKAGE_PYTHON_VERSION; default %(default)s)",
    )
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="folder holding webapp/")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist", help="output folder")
    parser.add_argument(
        "--cache", type=Path, default=REPO_ROOT / "build", help="vendored-wheels cache folder"
    )
    parser.add_argument(
        "--lock",
        action="store_true",
        help="re-resolve webapp/requirements.txt and rewrite release/requirements-py<ver>.txt",
    )
    args = parser.parse_args(argv)
    check_python_version(args.python_version)
    settings = BuildSettings(
        source_root=args.source.resolve(),
        dist_dir=args.dist.resolve(),
        cache_dir=args.cache.resolve(),
        python_version=args.python_version,
        source_date_epoch=source_date_epoch(),
        lock_file=default_lock_path(args.python_version),
    )
    return settings, args.lock


def source_date_epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return ZIP_EPOCH_FLOOR
    if not raw.isdigit():
        raise BuildError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {raw!r}")
    return int(raw)


def main(argv: list[str] | None = None) -> int:
    try:
        settings, lock_only = parse_args(argv)
        if lock_only:
            print(write_lock(settings.source_root, settings.python_version, settings.lock_file))
            return 0
        zip_path = build_package(settings)
    except BuildError as error:
        print(f"package build failed: {error}", file=sys.stderr)
        return 1
    size_mib = zip_path.stat().st_size / (1 << 20)
    print(f"sha256 {sha256_of(zip_path)}  {size_mib:.1f} MiB")
    print(zip_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
