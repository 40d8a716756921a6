"""once_per_run: what the release fixtures build, xdist's workers build once and share."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.release.package_builds import once_per_run


class WorkerTemp:
    """tmp_path_factory as an xdist worker sees it: its own folder inside the run's."""

    def __init__(self, run_folder: Path, worker: str) -> None:
        self.folder = run_folder / worker
        self.folder.mkdir()

    def getbasetemp(self) -> Path:
        return self.folder


@pytest.fixture
def worker(tmp_path, monkeypatch) -> WorkerTemp:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    return WorkerTemp(tmp_path, "gw0")


def test_the_folder_is_filled_once_and_then_reused(worker):
    fills: list[Path] = []
    first = once_per_run(worker, "build", fills.append)
    second = once_per_run(WorkerTemp(worker.folder.parent, "gw1"), "build", fills.append)
    assert first == second == fills[0]
    assert len(fills) == 1


def test_without_xdist_the_folder_is_in_the_sessions_own(worker, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert once_per_run(worker, "build", lambda _folder: None).parent == worker.folder


def test_workers_asking_at_once_fill_it_once(worker):
    fills: list[Path] = []

    def fill(folder: Path) -> None:
        fills.append(folder)
        (folder / "built").write_text("once")

    threads = [threading.Thread(target=once_per_run, args=(worker, "build", fill))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(fills) == 1


def test_a_fill_that_failed_half_way_is_started_again_from_empty(worker):

    def fail(folder: Path) -> None:
        (folder / "half").write_text("")
        raise RuntimeError("pip failed")

    with pytest.raises(RuntimeError):
        once_per_run(worker, "build", fail)
    folder = once_per_run(worker, "build", lambda folder: (folder / "whole").touch())
    assert sorted(path.name for path in folder.iterdir()) == ["whole"]
