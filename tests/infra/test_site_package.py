"""The `make package` zip as the program finds it (infra/site_package.py)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from infra import config as infra_config
from infra.site_package import PackageError, PackageRef, locate_package
from review.mocks import SUBSCRIPTION_ID, offline_package


def test_offline_package_is_stable_and_follows_python_version(valid_config):
    cfg = infra_config.parse_config("dev", {**valid_config, "pythonVersion": "3.12"}.get,
                                    "westeurope", SUBSCRIPTION_ID)
    assert offline_package(cfg) == offline_package(cfg)
    assert offline_package(cfg).path == "dist/webapp-py3.12.zip"


def test_missing_package_tells_you_to_run_make_package(tmp_path, valid_config):
    cfg = infra_config.parse_config("dev", valid_config.get, "westeurope", SUBSCRIPTION_ID)
    with pytest.raises(PackageError, match=r"webapp-py3\.11\.zip not found: run `make package`"):
        locate_package(cfg, repo_root=tmp_path)


def test_package_is_hashed_from_its_bytes(tmp_path, valid_config):
    cfg = infra_config.parse_config("dev", valid_config.get, "westeurope", SUBSCRIPTION_ID)
    package = tmp_path / "dist" / "webapp-py3.11.zip"
    package.parent.mkdir()
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    found = locate_package(cfg, repo_root=tmp_path)
    assert found == PackageRef(str(package), hashlib.sha256(package.read_bytes()).hexdigest())
    custom = tmp_path / "elsewhere.zip"
    custom.write_bytes(b"other")
    overridden = locate_package(replace(cfg, package_path=str(custom)), repo_root=tmp_path)
    assert overridden.sha256 == hashlib.sha256(b"other").hexdigest()
