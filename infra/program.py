"""Entry point shared by `pulumi up` (infra/__main__.py) and the offline mocks."""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from infra import config, site_package, tiers


def run(locate_package: Callable[[config.StackConfig], site_package.PackageRef]
        = site_package.locate_package, *, deploying: bool = False) -> dict:
    """Validates the whole config (and finds the package) first, then declares the stack.

    deploying: a real `pulumi up` or `preview` (main), where the committed stand-in values are
    refused; the offline callers (review/mocks.py) render the committed stack files as they are.
    """
    cfg = config.load()
    if deploying:
        config.refuse_placeholders(cfg)
        _warn_about_a_self_signed_listener(cfg)
    package = locate_package(cfg)
    return tiers.build(cfg, package)


def _warn_about_a_self_signed_listener(cfg: config.StackConfig) -> None:
    if cfg.ingress is not None and cfg.ingress.certificate_name is None:
        pulumi.log.warn(
            "the Application Gateway serves a self-signed certificate (browsers warn): import "
            "yours into the stack's Key Vault and set applicationGatewayCertificateName "
            "(infra/README.md, 'The listener certificate')")


def main() -> None:
    for name, value in run(deploying=True).items():
        pulumi.export(name, value)
