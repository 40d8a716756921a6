"""The deploy zip: reproducible, sensitive to its sources, and free of dev files and secrets."""

from __future__ import annotations

import email.parser
import re
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from release.build import (
    DEFAULT_PYTHON_VERSION,
    LOCK_PIN,
    BuildError,
    build_package,
    check_lock_is_current,
    check_matches_lock,
    default_lock_path,
    read_lock,
    sha256_of,
    vendor_dependencies,
    vendored_distributions,
    write_lock,
)
from tests.release.package_builds import REPO_ROOT, build_settings, copy_sources

DEV_DIR_NAMES = {"tests", "__pycache__", ".git", ".local", ".venv", "node_modules"}


def names_in(package: Path) -> list[str]:
    with zipfile.ZipFile(package) as archive:
        return archive.namelist()


def test_build_prints_the_zip_path_last(build_output):
    package, stdout = build_output
    assert stdout.splitlines()[-1] == str(package)
    assert package.is_file()


def test_two_builds_are_byte_identical(package, package_from_fresh_cache):
    assert sha256_of(package) == sha256_of(package_from_fresh_cache)


def test_another_checkout_with_local_droppings_gives_the_same_hash(
    package, source_snapshot, tmp_path
):
    """Location, hidden files, tests and bytecode in the tree change nothing; a template does."""
    source = copy_sources(source_snapshot, tmp_path / "checkout")
    droppings = [".env", ".env.local", "tests/test_extra.py", "conftest.py",
                 "__pycache__/db.cpython-311.pyc", "stray.pyc", ".git/config"]  # fmt: skip
    for relative in droppings:
        (source / "webapp" / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / "webapp" / relative).write_text("SECRET_KEY=do-not-ship\n")
    same = build_package(build_settings(source, tmp_path / "dist-same"))
    assert sha256_of(same) == sha256_of(package)

    template = sorted((source / "webapp" / "templates").rglob("*.html"))[0]
    template.write_text(template.read_text() + "\n{# a one-line edit #}\n")
    edited = build_package(build_settings(source, tmp_path / "dist-edited"))
    assert sha256_of(edited) != sha256_of(package)


def test_layout_is_startup_webapp_vendor(package):
    names = names_in(package)
    assert {PurePosixPath(name).parts[0] for name in names} == {"startup.py", "webapp", "vendor"}
    for required in ("webapp/__init__.py", "webapp/db.py", "vendor/flask/__init__.py",
                     "vendor/gunicorn/__init__.py", "vendor/psycopg2/__init__.py"):  # fmt: skip
        assert required in names
    assert any(name.startswith("webapp/templates/") for name in names)
    assert any(name.startswith("webapp/migrations/versions/") for name in names)


def test_vendor_holds_linux_x86_64_binaries_for_the_target_python(package):
    extensions = [name for name in names_in(package) if name.endswith(".so")]
    assert extensions, "compiled dependencies (psycopg2-binary, pillow, ...) must be vendored"
    for name in extensions:
        file_name = PurePosixPath(name).name
        # Either built for CPython 3.11 on Linux x86-64, the stable ABI, or a bundled C library.
        assert (
            "cpython-311-x86_64-linux-gnu" in file_name or ".abi3." in file_name or ".libs/" in name
        ), name


def test_no_dev_files_bytecode_or_scripts(package):
    for name in names_in(package):
        path = PurePosixPath(name)
        assert not DEV_DIR_NAMES.intersection(path.parts), name
        assert path.suffix not in {".pyc", ".pyo"}, name
        assert not path.name.startswith("."), name
        assert not name.startswith("vendor/bin/"), name  # shebangs of the build machine


def test_entries_have_fixed_time_and_mode(package):
    with zipfile.ZipFile(package) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}


@pytest.mark.parametrize("secret", ["certs/server.key", "signing.pfx", "deploy/id_rsa"])
def test_secret_looking_files_fail_the_build(source_snapshot, tmp_path, secret):
    source = copy_sources(source_snapshot, tmp_path / "checkout")
    (source / "webapp" / secret).parent.mkdir(parents=True, exist_ok=True)
    (source / "webapp" / secret).write_text("-----BEGIN PRIVATE KEY-----\n")

    with pytest.raises(BuildError, match=f"webapp/{secret}"):
        build_package(build_settings(source, tmp_path / "dist"))

    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_bad_python_version_and_missing_sources_are_named(tmp_path):
    with pytest.raises(BuildError, match="Python version must look like 3.11"):
        build_package(build_settings(REPO_ROOT, tmp_path, python_version="311"))
    (tmp_path / "empty" / "webapp").mkdir(parents=True)
    with pytest.raises(BuildError, match="requirements not found"):
        build_package(build_settings(tmp_path / "empty", tmp_path / "dist"))


def test_committed_lock_matches_the_runtime_requirements():
    # Fails when webapp/requirements.txt changes without `make package-lock`.
    check_lock_is_current(
        default_lock_path(DEFAULT_PYTHON_VERSION), REPO_ROOT / "webapp" / "requirements.txt"
    )


def test_committed_lock_is_uvs_hash_pinned_requirements_file():
    lock = default_lock_path(DEFAULT_PYTHON_VERSION)
    lines = lock.read_text().splitlines()
    assert lines[:2] == ["# This file was autogenerated by uv via the following command:",
                         "#    make package-lock"]  # fmt: skip
    pins = [index for index, line in enumerate(lines) if LOCK_PIN.match(line)]
    assert len(pins) == len(read_lock(lock)) > 10
    for index in pins:  # every pin is followed by its hashes
        assert lines[index].endswith(" \\"), lines[index]
        assert lines[index + 1].strip().startswith("--hash=sha256:"), lines[index]
    assert read_lock(lock)["psycopg2-binary"] == "2.9.13"
    assert "psycopg" not in read_lock(lock)  # no psycopg 3 left


def test_package_vendors_exactly_the_locked_versions(package):
    with zipfile.ZipFile(package) as archive:
        metadata = [archive.read(name).decode() for name in archive.namelist()
                    if re.fullmatch(r"vendor/[^/]+\.dist-info/METADATA", name)]  # fmt: skip
    vendored = {}
    for text in metadata:
        headers = email.parser.HeaderParser().parsestr(text)
        vendored[re.sub(r"[-_.]+", "-", headers["Name"]).lower()] = headers["Version"]
    assert vendored == read_lock(default_lock_path(DEFAULT_PYTHON_VERSION))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda text: text + "humanize==4.12.3\n", r"humanize==4\.12\.3 \(locked: nothing\)"),
        (lambda text: text.replace("Flask==3.1.3", "Flask==3.1.4"),
         r"flask==3\.1\.4 \(locked: 3\.1\.3\)"),
    ],
)
def test_requirements_changed_without_a_new_lock_is_refused(source_snapshot, tmp_path, change,
                                                            named):
    source = copy_sources(source_snapshot, tmp_path / "checkout")
    requirements = source / "webapp" / "requirements.txt"
    requirements.write_text(change(requirements.read_text()))

    stale = rf"changed since requirements-py3\.11\.txt was written: {named}.*`make package-lock`"
    with pytest.raises(BuildError, match=stale):
        build_package(build_settings(source, tmp_path / "dist"))


def test_an_unpinned_requirement_is_refused(source_snapshot, tmp_path):
    source = copy_sources(source_snapshot, tmp_path / "checkout")
    requirements = source / "webapp" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "humanize>=4\n")

    with pytest.raises(BuildError, match=r"must pin exact versions.*humanize>=4"):
        build_package(build_settings(source, tmp_path / "dist"))


def small_site_requirements(root: Path) -> Path:
    """A source root whose webapp/requirements.txt pins one small pure-Python wheel."""
    requirements = root / "webapp" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("itsdangerous==2.2.0\n")
    return requirements


def test_make_package_lock_writes_a_lock_that_installs_with_require_hashes(tmp_path):
    requirements = small_site_requirements(tmp_path / "source")
    lock = write_lock(tmp_path / "source", DEFAULT_PYTHON_VERSION, tmp_path / "lock.txt")

    assert read_lock(lock) == {"itsdangerous": "2.2.0"}
    assert "--hash=sha256:" in lock.read_text()
    assert "# via -r webapp/requirements.txt" in lock.read_text()  # no machine-specific path
    vendor = vendor_dependencies(requirements, DEFAULT_PYTHON_VERSION, tmp_path / "cache", lock)
    assert vendored_distributions(vendor) == {"itsdangerous": "2.2.0"}


def test_a_wheel_whose_hash_is_not_locked_is_refused(tmp_path):
    requirements = small_site_requirements(tmp_path / "source")
    lock = tmp_path / "lock.txt"
    lock.write_text("itsdangerous==2.2.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")

    with pytest.raises(BuildError, match=r"(?s)locked manylinux wheels.*HASHES"):
        vendor_dependencies(requirements, DEFAULT_PYTHON_VERSION, tmp_path / "cache", lock)
    assert not any((tmp_path / "cache").glob("vendor-*")), "nothing half-installed is cached"


def test_a_vendored_set_that_drifts_from_the_lock_is_named(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# comment\nflask==3.1.3 \\\n    --hash=sha256:00\n    # via -r x\n"
                    "MarkupSafe==3.0.4 \\\n    --hash=sha256:11\n")
    check_matches_lock({"flask": "3.1.3", "markupsafe": "3.0.4"}, lock)

    with pytest.raises(BuildError, match=r"flask \(locked 3\.1\.3, got 3\.2\.0\)"):
        check_matches_lock({"flask": "3.2.0", "markupsafe": "3.0.4"}, lock)
    with pytest.raises(BuildError, match=r"blinker \(locked nothing, got 1\.9\.0\)"):
        check_matches_lock({"flask": "3.1.3", "markupsafe": "3.0.4", "blinker": "1.9.0"}, lock)
