"""What the workflows promise: OIDC without stored secrets, previews with the policy pack,
approvals before prod and isolated, the package built before deploy, the swap after health."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.ase import ASE_TIMEOUTS
from release.credential_lifetimes import pulumi_commands, resolve, step_name
from review.plan import COMMENT_MARKER

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SWAP_COMMAND = "python3 -m release.swap_slots"


def load(name: str) -> dict:
    # PyYAML reads the `on:` key as True (YAML 1.1); only job bodies are inspected here.
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml", "deploy-stack.yml"])
def test_azure_by_oidc_with_one_stored_secret_for_the_state(name):
    """OIDC and variables for Azure; the one stored secret is the state-only principal's, an
    environment secret (only a job with `environment:` sees it) for GitHub-hosted deploys."""
    text = (WORKFLOWS / name).read_text()
    assert "vars.AZURE_CLIENT_ID" in text
    secrets = re.findall(r"secrets\.[\w-]+", text)
    if name != "deploy-stack.yml":
        assert secrets == [], "use OIDC and vars, not stored secrets"
        return
    assert set(secrets) == {"secrets.PULUMI_STATE_CLIENT_SECRET"}
    job = load(name)["jobs"]["up"]
    assert job["environment"] == "${{ inputs.environment }}"
    # Only the steps running Pulumi hold the secret, not pip's build hooks or other actions.
    assert "secrets." not in json.dumps(job["env"])
    holders = [step_name(step, i) for i, step in enumerate(steps(job))
               if "AZURE_CLIENT_SECRET" in step.get("env", {})]
    assert holders == [step_name(step, i) for i, step in enumerate(steps(job))
                       if pulumi_commands(step)]
    for step in steps(job):
        if "AZURE_CLIENT_SECRET" in step.get("env", {}):
            assert step["env"]["AZURE_CLIENT_SECRET"] == (
                "${{ inputs.azure-auth == 'oidc' && secrets.PULUMI_STATE_CLIENT_SECRET || '' }}")


STATE_CHECK = "The state principal is configured for this environment"


@pytest.mark.parametrize(("auth", "configured", "expected"), [
    ("oidc", {"vars.AZURE_CLIENT_ID": "deploy", "vars.PULUMI_STATE_CLIENT_ID": "state"}, "state"),
    # unset: empty, for the first step to name, never the deploy identity the secret isn't for
    ("oidc", {"vars.AZURE_CLIENT_ID": "deploy"}, ""),
    ("identity", {"vars.AZURE_CLIENT_ID": "deploy", "vars.PULUMI_STATE_CLIENT_ID": "state"},
     "deploy"),
])
def test_the_state_client_id_is_the_state_principal_or_the_runner_identity(auth, configured,
                                                                            expected):
    expression = load("deploy-stack.yml")["jobs"]["up"]["env"]["AZURE_CLIENT_ID"]
    assert resolve(expression, {"azure-auth": auth}, configured) == expected


def state_check(client_id: str, secret_set: str) -> subprocess.CompletedProcess:
    job = load("deploy-stack.yml")["jobs"]["up"]
    step = next(step for step in steps(job) if step.get("name") == STATE_CHECK)
    env = {"PATH": os.environ["PATH"], "ENVIRONMENT": "prod", "AZURE_CLIENT_ID": client_id,
           "STATE_SECRET_SET": secret_set}
    return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True,
                          text=True, check=False, timeout=10)


def test_a_github_hosted_deploy_first_checks_the_state_principal_is_configured():
    job = load("deploy-stack.yml")["jobs"]["up"]
    first = steps(job)[0]
    assert first["name"] == STATE_CHECK and first["if"] == "inputs.azure-auth == 'oidc'"
    assert first["env"]["STATE_SECRET_SET"] == "${{ secrets.PULUMI_STATE_CLIENT_SECRET != '' }}"
    assert state_check("state-app-id", "true").returncode == 0


@pytest.mark.parametrize(("client_id", "secret_set"), [("", "true"), ("state-app-id", "false")])
def test_a_missing_state_principal_stops_the_deploy_naming_what_to_set(client_id, secret_set):
    result = state_check(client_id, secret_set)
    assert result.returncode == 1
    assert result.stdout.startswith("::error::GitHub environment prod needs the variable "
                                    "PULUMI_STATE_CLIENT_ID and the secret "
                                    "PULUMI_STATE_CLIENT_SECRET")


def test_pull_request_runs_checks_then_previews_every_stack_with_policies():
    jobs = load("pull-request.yml")["jobs"]
    commands = [s["run"] for s in steps(jobs["test"]) if "run" in s]
    assert commands == ["make lint", "make test", ".venv/bin/python -m review.synth --check"]
    preview = jobs["preview"]
    assert preview["needs"] == "test"
    assert preview["permissions"]["id-token"] == "write"
    assert preview["permissions"]["pull-requests"] == "write"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod", "isolated"]
    assert uses(preview, "azure/login")
    (pulumi,) = uses(preview, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["diff"] is True and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["policyPackConfigs"] == "policy/config/${{ matrix.stack }}.json"
    # The program hashes the deploy package, so it must exist before the preview runs.
    preview_steps = steps(preview)
    package = next(i for i, s in enumerate(preview_steps) if s.get("run") == "make package")
    assert package < preview_steps.index(pulumi)


def test_pull_request_posts_the_offline_plan_without_cloud_credentials():
    """Forks have no OIDC token, variables or writable token: the plan must not need them."""
    job = load("pull-request.yml")["jobs"]["plan"]
    assert "needs" not in job and "if" not in job  # every PR, forks included
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "id-token" not in job["permissions"] and "env" not in job
    assert not uses(job, "azure/login") and not uses(job, "pulumi/actions")
    assert "vars." not in yaml.safe_dump(job)
    (checkout,) = uses(job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0  # `git show <base>:<snapshot>` needs history
    runs = [s["run"] for s in steps(job) if "run" in s]
    assert runs[0] == "make diff BASE=${{ github.event.pull_request.base.sha }} OUT=plan.md"
    assert 'cat plan.md >> "$GITHUB_STEP_SUMMARY"' in runs
    (artifact,) = uses(job, "actions/upload-artifact")
    assert artifact["with"]["path"] == "plan.md"
    # Only a same-repository PR has a token that can write the comment.
    (comment,) = [s for s in steps(job) if "gh api" in s.get("run", "")]
    assert comment["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert comment["env"]["MARKER"] == "<!-- offline-plan -->"
    assert "--method PATCH" in comment["run"] and "--method POST" in comment["run"]
    # The Makefile target the job calls exists, and the marker is the one the plan prints.
    assert re.search(r"^diff:", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert comment["env"]["MARKER"] == COMMENT_MARKER


def test_main_deploys_dev_then_prod_then_isolated_behind_environments():
    jobs = load("main.yml")["jobs"]
    assert jobs["package"]["needs"] == "test"
    assert [s.get("run") for s in steps(jobs["package"]) if s.get("run")] == ["make package"]
    order = [("deploy-dev", "package"), ("deploy-prod", "deploy-dev"),
             ("deploy-isolated", "deploy-prod")]
    for job, needs in order:
        assert jobs[job]["needs"] == needs
        assert jobs[job]["uses"] == "./.github/workflows/deploy-stack.yml"
        assert jobs[job]["permissions"]["id-token"] == "write"
    assert [jobs[j]["with"]["environment"] for j, _ in order] == ["dev", "prod", "isolated"]
    swaps = [jobs[j]["with"]["swap-slots"] for j, _ in order]
    assert swaps == [False, True, True]
    # isolated probes health only from a runner inside its VNet (the checks go through the ILB);
    # without one it still reaches production, behind App Service's swap warm-up.
    warmup_only = [jobs[j]["with"].get("platform-warmup-only", False) for j, _ in order]
    assert warmup_only == [False, False, "${{ vars.ISOLATED_RUNNER == '' }}"]


def test_every_stack_deploys_from_github_hosted_runners_unless_configured_otherwise():
    """`pulumi up` needs no network of its own (the data-plane steps run inside Azure) and the
    azure-native provider renews its OIDC token itself: self-hosted runners are an option."""
    jobs = load("main.yml")["jobs"]
    dev = jobs["deploy-dev"]["with"]
    assert json.loads(dev["runs-on"]) == ["ubuntu-24.04"] and dev["azure-auth"] == "oidc"
    for stack in ("prod", "isolated"):
        settings = jobs[f"deploy-{stack}"]["with"]
        variable = stack.upper()
        assert settings["runs-on"] == f"${{{{ vars.{variable}_RUNNER || '[\"ubuntu-24.04\"]' }}}}"
        assert settings["azure-auth"] == f"${{{{ vars.{variable}_AZURE_AUTH || 'oidc' }}}}"
    # GitHub-hosted jobs stop at 6 h; a self-hosted runner outlasts the ASE's timeouts.
    ase_hours = int(ASE_TIMEOUTS.create.removesuffix("h"))
    timeout = jobs["deploy-isolated"]["with"]["timeout-minutes"]
    hosted, self_hosted = (int(n) for n in re.findall(r"\b(\d+)\b", timeout)[::-1][:2])
    assert hosted == 360 and self_hosted > ase_hours * 60
    deploy = load("deploy-stack.yml")["jobs"]["up"]
    assert deploy["env"]["ARM_USE_OIDC"] == "${{ inputs.azure-auth == 'oidc' }}"
    logins = [s for s in steps(deploy) if s.get("uses", "").startswith("azure/login")]
    assert {s["if"] for s in logins} == {"inputs.swap-slots && inputs.azure-auth == 'oidc'",
                                         "inputs.swap-slots && inputs.azure-auth == 'identity'"}
    assert [s["with"].get("auth-type") for s in logins if "identity" in s["if"]] == ["IDENTITY"]
    # The az CLI logs in only after `pulumi up`: nothing in the up depends on that login.
    up = next(i for i, s in enumerate(steps(deploy)) if s.get("uses", "").startswith("pulumi/"))
    assert all(steps(deploy).index(login) > up for login in logins)


def test_deploy_installs_the_program_the_way_a_deployer_does():
    job = load("deploy-stack.yml")["jobs"]["up"]
    installs = [s["run"] for s in steps(job)
                if "pip install" in s.get("run", "") or s.get("name", "").startswith("Install")]
    assert installs == ["make deploy-deps"]


def test_deploy_runs_up_in_the_environment_then_swaps_after_health():
    job = load("deploy-stack.yml")["jobs"]["up"]
    assert job["environment"] == "${{ inputs.environment }}"
    names = [s.get("uses", s.get("name", "")) for s in steps(job)]
    package = next(i for i, s in enumerate(steps(job)) if "download-artifact" in s.get("uses", ""))
    up = next(i for i, s in enumerate(steps(job)) if s.get("uses", "").startswith("pulumi/"))
    swap = next(i for i, s in enumerate(steps(job)) if SWAP_COMMAND in s.get("run", ""))
    assert package < up < swap, names
    assert steps(job)[up]["with"]["command"] == "up"
    assert steps(job)[up]["with"]["policyPacks"] == "policy"
    # A stack made here would keep its Key Vault-wrapped data key only on the runner: stacks are
    # made once, by hand, and their Pulumi.<stack>.yaml committed (release/README.md).
    assert "upsert" not in steps(job)[up]["with"]
    assert steps(job)[swap]["if"] == "inputs.swap-slots"
    # Without a network path to the sites the swap skips the runner's probes, and only then.
    assert steps(job)[swap]["env"]["PLATFORM_WARMUP_ONLY"] == "${{ inputs.platform-warmup-only }}"
    assert 'if [ "$PLATFORM_WARMUP_ONLY" = "true" ]; then mode="--platform-warmup-only"' in \
        steps(job)[swap]["run"]
    # The command the workflow calls is the repository's own swap module.
    assert (ROOT / "release" / "swap_slots.py").is_file()
