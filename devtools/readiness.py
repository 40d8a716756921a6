"""Waiting for a child server process to answer HTTP, shared by `make dev` and `make bench`."""

from __future__ import annotations

import subprocess
import time

import requests


class NotReadyError(RuntimeError):
    """The server exited or did not answer in time; the message says which."""


def wait_for_http_ok(process: subprocess.Popen, url: str, timeout: float) -> None:
    """Return once `url` answers 200; fail early if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReadyError(
                f"the server exited during start-up (exit code {process.returncode}); "
                "its error is printed above"
            )
        if _answers_ok(url):
            return
        time.sleep(0.2)
    raise NotReadyError(f"{url} did not answer within {timeout:.0f} s")


def _answers_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
