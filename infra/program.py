"""Entry point shared by `pulumi up` (infra/__main__.py) and the offline mocks."""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from infra import config, deploy, tiers


def run(locate_package: Callable[[config.StackConfig], deploy.PackageRef] = deploy.locate_package,
        ) -> dict:
    """Validates the whole config (and finds the package) first, then declares the stack."""
    cfg = config.load()
    package = locate_package(cfg)
    return tiers.build(cfg, package)


def main() -> None:
    for name, value in run().items():
        pulumi.export(name, value)
