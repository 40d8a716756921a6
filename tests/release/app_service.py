"""Starting the deploy package the way App Service starts it: a bare interpreter, the platform's
variables, `python startup.py` in an extracted wwwroot (tests/release/test_boot.py and
test_swap_rehearsal.py)."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

BOOT_TIMEOUT_SECONDS = 90
SITE_NAME = "app-rr-dev-boot"


def python_version_of(interpreter: str) -> str | None:
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    result = subprocess.run(
        [interpreter, "-c", probe], env=bare_env(), capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def can_import_flask(interpreter: str) -> bool:
    result = subprocess.run([interpreter, "-c", "import flask"], env=bare_env(), check=False,
                            capture_output=True)  # fmt: skip
    return result.returncode == 0


def bare_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}



@dataclass
class RunningSite:
    process: subprocess.Popen
    base_url: str
    log: Path
    started_at: float

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def extract(package: Path, folder: Path) -> Path:
    folder.mkdir()
    assert not any(folder.iterdir()), "App Service extracts into an empty wwwroot"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


def app_service_environment(port: int, home: Path, python_on_path: Path,
                            site_name: str = SITE_NAME, sku: str = "Basic") -> dict[str, str]:
    """What the platform sets in every Linux web app container (no app settings yet)."""
    home.mkdir(exist_ok=True)
    return {
        "PATH": f"{python_on_path}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "WEBSITES_PORT": str(port),
        "WEBSITE_HOSTNAME": f"{site_name}.azurewebsites.net",
        "WEBSITE_SITE_NAME": site_name,
        "WEBSITE_INSTANCE_ID": secrets.token_hex(32),
        "WEBSITE_ROLE_INSTANCE_ID": "0",
        "WEBSITE_RESOURCE_GROUP": "rg-rr-dev",
        "WEBSITE_OWNER_NAME": f"{uuid.uuid4()}+rg-rr-dev-westeuropewebspace-Linux",
        "WEBSITE_SKU": sku,
        "WEBSITE_AUTH_ENABLED": "False",
    }


def start_site(wwwroot: Path, command_line: str, env: dict[str, str]) -> RunningSite:
    log = wwwroot.parent / "site.log"
    started_at = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(  # the same argv App Service runs: `python startup.py`
            shlex.split(command_line), cwd=wwwroot, env=env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return RunningSite(process, f"http://127.0.0.1:{env['PORT']}", log, started_at)


def stop(site: RunningSite) -> int:
    if site.process.poll() is None:
        site.process.send_signal(signal.SIGTERM)
        try:
            return site.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(site.process.pid, signal.SIGKILL)
            site.process.wait()
            pytest.fail(f"the site ignored SIGTERM:\n{site.output()}")
    return site.process.returncode
