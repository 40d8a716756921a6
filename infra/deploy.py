"""Ships the `make package` zip to the app (basic) or its staging slot inside `pulumi up`.

`az webapp deploy --type zip` calls the App Service deployment API with the deployer's
Microsoft Entra token from `az login`, so basic-auth publishing stays disabled. The command is
keyed on the package's sha256: an unchanged package is not redeployed.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
from pulumi_command import local

from infra.config import StackConfig
from infra.context import Context

if TYPE_CHECKING:  # infra.app deploys the package from inside the Site it targets
    from infra.app import Site

REPO_ROOT = Path(__file__).resolve().parent.parent


class PackageError(FileNotFoundError):
    """The deploy package the stack wants is missing."""


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


def deploy_package(ctx: Context, site: Site, package: PackageRef,
                   depends_on: list[pulumi.Resource]) -> local.Command:
    """Deploys to `site` (a child of it); depends_on carries what must exist first (role
    assignments, DB role)."""
    command = pulumi.Output.all(ctx.rg_name, site.app_name, ctx.subscription_id).apply(
        lambda values: deploy_command(values[0], values[1], site.slot, values[2], package.path)
    )
    return local.Command(
        f"deploy-{site.key}",
        create=command,
        # The package hash is what makes a new deploy; the site id redeploys into a replaced app.
        triggers=[package.sha256, site.resource.id],
        opts=pulumi.ResourceOptions(parent=site,
                                    depends_on=[site.resource, *site.hardening, *depends_on]),
    )
