"""The `make package` zip: where it is, its hash, and the command that deploys it.

`az webapp deploy --type zip` calls the App Service deployment API with a Microsoft Entra token
(the deployer identity's, inside a deployment script: infra/deployer.py), so basic-auth
publishing stays disabled. The deploy is keyed on the package's sha256: an unchanged package is
not redeployed.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi

from infra.config import StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


class PackageError(pulumi.RunError, FileNotFoundError):
    """The deploy package the stack wants is missing (a RunError: Pulumi prints just the line)."""


@dataclass(frozen=True)
class PackageRef:
    path: str
    sha256: str


def default_package_path(cfg: StackConfig) -> str:
    return cfg.package_path or f"dist/webapp-py{cfg.python_version}.zip"


def locate_package(cfg: StackConfig, repo_root: Path = REPO_ROOT) -> PackageRef:
    """Finds the package (relative paths are from the repo root) and hashes it."""
    path = Path(default_package_path(cfg))
    if not path.is_absolute():
        path = repo_root / path
    if not path.is_file():
        raise PackageError(
            f"deploy package {path} not found: run `make package` first "
            f"(`PACKAGE_PYTHON_VERSION={cfg.python_version} make package` builds "
            f"dist/webapp-py{cfg.python_version}.zip for pythonVersion {cfg.python_version}), "
            "or point config 'packagePath' at an existing zip"
        )
    digest = hashlib.sha256()
    with path.open("rb") as package:
        for block in iter(lambda: package.read(1 << 20), b""):
            digest.update(block)
    return PackageRef(path=str(path), sha256=digest.hexdigest())


def deploy_command(resource_group: str, app_name: str, slot: str | None, subscription: str,
                   package_path: str) -> str:
    args = ["az", "webapp", "deploy", "--subscription", subscription,
            "--resource-group", resource_group, "--name", app_name]
    if slot:
        args += ["--slot", slot]
    # --clean: files of an older release must not stay importable next to the new one.
    args += ["--src-path", package_path, "--type", "zip", "--clean", "true", "--restart", "true"]
    return shlex.join(args)
