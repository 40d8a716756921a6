"""Every step that runs Pulumi or az has, for each of provider, backend, secrets provider and
CLI, a credential that lasts as long as the step may run (release/credential_lifetimes.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from release.credential_lifetimes import (
    CREDENTIALS,
    RENEWS_ITSELF,
    ROLES,
    credential_uses,
    main,
    steps_without_timeout,
)

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
UP = "pulumi up (deploys the package to staging, or to the app on dev)"
SWAP = "Swap staging into production after its health check"


def uses_by(workflows: Path = WORKFLOWS, **match) -> dict[str, tuple[str, int]]:
    """role -> (credential, minutes needed) for the uses matching every given field."""
    found = {}
    for use in credential_uses(workflows):
        if all(match[field] in getattr(use, field) for field in match):
            found[use.role] = (use.credential, use.needed_minutes)
    return found


def test_every_pulumi_and_az_step_sets_its_timeout():
    assert steps_without_timeout(WORKFLOWS) == []


def test_no_credential_expires_before_its_step_can_end():
    uses = credential_uses(WORKFLOWS)
    assert {use.role for use in uses} == set(ROLES)
    expiring = [str(use) for use in uses if use.expires_early]
    assert expiring == [], "\n".join(expiring)


def test_the_isolated_up_names_its_credentials_for_its_longest_run():
    """The job may run 360 min (GitHub-hosted) or 480 (self-hosted); which runner is a
    repository variable, so every auth mode is checked against the longer."""
    hosted = uses_by(job="up", step=UP, variant="deploy-isolated, azure-auth=oidc")
    assert hosted == {"provider": ("github-oidc", 480), "backend": ("client-secret", 480),
                      "secrets provider": ("client-secret", 480)}
    self_hosted = uses_by(job="up", step=UP, variant="deploy-isolated, azure-auth=identity")
    assert set(self_hosted.values()) == {("managed-identity", 480)}


def test_the_swap_logs_the_cli_in_just_before_it_runs():
    swap = uses_by(step=SWAP, variant="deploy-prod, azure-auth=oidc")
    credential, minutes = swap["CLI"]
    assert credential == "az-cli-oidc"
    assert minutes <= CREDENTIALS["az-cli-oidc"].lifetime_minutes  # login step + swap step


def test_pull_request_previews_run_on_a_cli_login_shorter_than_its_lifetime():
    preview = uses_by(job="preview")
    assert preview["provider"][0] == "github-oidc"
    assert preview["backend"][0] == preview["secrets provider"][0] == "az-cli-oidc"
    assert preview["backend"][1] <= CREDENTIALS["az-cli-oidc"].lifetime_minutes


def test_every_credential_kind_is_sourced_and_short_ones_have_a_lifetime():
    for name, credential in CREDENTIALS.items():
        assert credential.source and credential.description, name
        assert credential.lifetime_minutes is RENEWS_ITSELF or credential.lifetime_minutes >= 0
    assert {use.credential for use in credential_uses(WORKFLOWS)} <= set(CREDENTIALS)


def broken_copy(tmp_path: Path, needle: str, replacement: str,
                workflow: str = "deploy-stack.yml") -> Path:
    copy = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, copy)
    path = copy / workflow
    text = path.read_text()
    assert needle in text
    path.write_text(text.replace(needle, replacement, 1))
    return copy


@pytest.mark.parametrize(("needle", "replacement", "expected"), [
    # ARM_* alone: the backend and the secrets provider have no login at all
    ("          AZURE_CLIENT_SECRET:", "          UNUSED_CLIENT_SECRET:",
     "backend uses nothing"),
    # a GitHub token written to a file once: expired after an hour of a 6-hour up
    ("          AZURE_CLIENT_SECRET:",
     "          AZURE_FEDERATED_TOKEN_FILE: /tmp/token\n          UNUSED:",
     "backend uses a GitHub OIDC token written to AZURE_FEDERATED_TOKEN_FILE (lasts 60 min), "
     "needed for 480 min"),
    # a swap allowed longer than the CLI login it depends on
    ("        timeout-minutes: 45", "        timeout-minutes: 90",
     "CLI uses an az CLI login from a GitHub OIDC token (azure/login) (lasts 60 min), "
     "needed for 95 min"),
])
def test_the_check_fails_a_broken_copy(tmp_path, needle, replacement, expected):
    expiring = [str(use) for use in credential_uses(broken_copy(tmp_path, needle, replacement))
                if use.expires_early]
    assert any(expected in line for line in expiring), "\n".join(expiring)


def test_a_caller_that_passes_no_secrets_leaves_the_state_without_a_login(tmp_path):
    """The environment's secret reaches deploy-stack.yml only through the caller's `secrets`."""
    copy = broken_copy(tmp_path, "    secrets: inherit # as in deploy-dev\n", "",
                       workflow="main.yml")
    expiring = {(use.variant, use.role, use.credential)
                for use in credential_uses(copy) if use.expires_early}
    assert ("main.yml deploy-prod, azure-auth=oidc", "backend", "none") in expiring
    assert not any("deploy-dev" in variant for variant, _, _ in expiring)


def test_a_step_without_a_timeout_is_named(tmp_path):
    copy = broken_copy(tmp_path, "        timeout-minutes: 45\n", "")
    assert steps_without_timeout(copy) == [f"deploy-stack.yml up / {SWAP}"]


def test_the_module_prints_every_use_and_exits_zero(capsys):
    assert main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(credential_uses(WORKFLOWS)) and all(
        line.startswith("ok ") for line in lines)
