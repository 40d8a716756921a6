"""infra/__main__.py, the file `pulumi up` runs, driven under the same mocks."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings

from infra.site_package import PackageError
from review.mocks import (
    PROJECT,
    AzureMocks,
    CapturingMonitor,
    as_pulumi_config,
    load_stack_config,
)

MAIN = Path(__file__).resolve().parents[2] / "infra" / "__main__.py"


# What a deployer puts in place of the committed stand-ins (config.placeholders).
REAL_VALUES = {f"{PROJECT}:alertEmail": "ops@contoso.com",
               f"{PROJECT}:postgresAdminObjectId": "0f3c2a9e-6b1d-4c8e-9a57-2d4e6f8a1b3c"}


def deployable(stack: str, **changes: str) -> dict:
    """The committed stack file with the placeholders replaced, as a deployer would."""
    return {**load_stack_config(stack), **REAL_VALUES,
            **{f"{PROJECT}:{key}": value for key, value in changes.items()}}


def run_entry_point(config: dict, stack: str = "dev") -> CapturingMonitor:
    monitor = CapturingMonitor(AzureMocks())
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config(*as_pulumi_config(config))
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False,
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
    monitor = run_entry_point(deployable("dev", packagePath=str(package)))
    blob = next(r for r in monitor.captured if r.name == "deployer-package")
    assert blob.inputs["source"]["path"] == str(package)  # uploaded for the deploy script
    assert len(monitor.captured) > 20


def test_entry_point_without_a_package_says_to_run_make_package():
    config = deployable("dev", packagePath="dist/does-not-exist.zip")
    with pytest.raises(PackageError, match="run `make package` first") as raised:
        run_entry_point(config)
    assert isinstance(raised.value, pulumi.RunError)  # Pulumi prints the line, no traceback


@pytest.mark.parametrize("stack", ["dev", "prod", "isolated"])
def test_a_real_run_refuses_the_committed_placeholders(stack):
    """Accepted offline (the snapshots render them), refused where `pulumi up` would fail."""
    with pytest.raises(pulumi.RunError) as raised:
        run_entry_point(load_stack_config(stack), stack)
    message = str(raised.value)
    assert "\n" not in message
    assert "config 'alertEmail': 'alerts@example.com' is a placeholder" in message
    assert ("config 'postgresAdminObjectId': '11111111-2222-3333-4444-555555555555' is a "
            "placeholder, set the object id of your Entra group") in message
    assert "az ad group show --group <name> --query id --output tsv" in message
    assert message.endswith(f"then run `make synth` and commit Pulumi.{stack}.yaml")


@pytest.mark.parametrize("address", ["ops@example.com", "me@mail.example.org", "a@b.test"])
def test_a_real_run_refuses_alert_mail_to_reserved_domains(address):
    with pytest.raises(pulumi.RunError, match=rf"^config 'alertEmail': '{address}' is a "
                                              r"placeholder, set an address that reads"):
        run_entry_point(deployable("dev", alertEmail=address))


def test_a_config_error_reaches_pulumi_as_a_run_error():
    with pytest.raises(pulumi.RunError, match=r"^Pulumi\.dev\.yaml: config 'pythonVersion': "
                                              r"'3.1' .*quote it in the stack file, \"3.10\"\)$"):
        run_entry_point(deployable("dev", pythonVersion="3.1"))


@pytest.mark.parametrize(("certificate", "announced"), [(None, True), ("reviews-tls", False)])
def test_a_self_signed_listener_is_announced(monkeypatch, tmp_path, certificate, announced):
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs:
                        warnings.append(message))
    package = tmp_path / "webapp.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    changes = {"packagePath": str(package)}
    if certificate:
        changes["applicationGatewayCertificateName"] = certificate
    run_entry_point(deployable("isolated", **changes), "isolated")
    self_signed = [w for w in warnings if "self-signed certificate" in w]
    assert bool(self_signed) is announced
    assert all("applicationGatewayCertificateName" in w for w in self_signed)
