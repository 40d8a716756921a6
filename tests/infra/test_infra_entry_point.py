"""infra/__main__.py, the file `pulumi up` runs, driven under the same mocks."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings

from infra.deploy import PackageError
from review.mocks import (
    PROJECT,
    AzureMocks,
    CapturingMonitor,
    as_pulumi_config,
    load_stack_config,
)

MAIN = Path(__file__).resolve().parents[2] / "infra" / "__main__.py"


def run_entry_point(config: dict) -> CapturingMonitor:
    monitor = CapturingMonitor(AzureMocks())
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config(*as_pulumi_config(config))
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack="dev", preview=False,
                             monitor=monitor)
    def program() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")

    saved_path = list(sys.path)
    try:
        pulumi.runtime.test(program)()
    finally:
        sys.path[:] = saved_path  # __main__.py edits sys.path the way `pulumi up` needs
    return monitor


def test_entry_point_deploys_the_configured_package(tmp_path):
    package = tmp_path / "webapp.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    config = {**load_stack_config("dev"), "restaurant-review:packagePath": str(package)}
    monitor = run_entry_point(config)
    blob = next(r for r in monitor.captured if r.name == "deployer-package")
    assert blob.inputs["source"]["path"] == str(package)  # uploaded for the deploy script
    assert len(monitor.captured) > 20


def test_entry_point_without_a_package_says_to_run_make_package():
    config = {**load_stack_config("dev"),
              "restaurant-review:packagePath": "dist/does-not-exist.zip"}
    with pytest.raises(PackageError, match="run `make package` first"):
        run_entry_point(config)
