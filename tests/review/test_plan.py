"""The offline plan: crafted snapshot pairs through the pure planner, then one real git change."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from review import plan as planner
from review.stacks import REPO_ROOT

RG = "rg-rr-dev"
STORAGE = "azure-native:storage:StorageAccount"
WEB_APP = "azure-native:web:WebApp"
ROLE = "azure-native:authorization:RoleAssignment"
TAGS = {"project": "restaurant-review", "stack": "dev"}


def resource(type_: str, name: str, inputs: dict, parent: str | None = None,
             protect: bool = False, **extra) -> dict:
    """One resource as a snapshot document records it."""
    return {"type": type_, "name": name, "parent": parent, "protect": protect,
            "retainOnDelete": protect, "deleteBeforeReplace": False, "ignoreChanges": [],
            "dependsOn": [], "customTimeouts": None, "inputs": inputs, **extra}


def storage(**inputs) -> dict:
    return resource(STORAGE, "storage", {
        "accountName": "strrdev", "resourceGroupName": RG, "location": "westeurope",
        "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "publicNetworkAccess": "Disabled",
        "tags": dict(TAGS), **inputs}, protect=True)


def web_app(**inputs) -> dict:
    return resource(WEB_APP, "web-app", {
        "name": "app-rr-dev", "resourceGroupName": RG, "location": "westeurope",
        "kind": "app,linux", "httpsOnly": True, "tags": dict(TAGS),
        "siteConfig": {"appSettings": [
            {"name": "DATABASE_HOST", "value": "psql.example"},
            {"name": "DB_PASSWORD", "value": "hunter2-old"},
        ]}, **inputs})


def role_assignment(principal: str = "principal-1") -> dict:
    return resource(ROLE, "app-blob-data-contributor", {
        "principalId": principal, "principalType": "ServicePrincipal",
        "roleAssignmentName": "ecbe7592", "roleDefinitionId": "/roles/blob-contributor",
        "scope": f"/subscriptions/s/resourceGroups/{RG}/providers/Microsoft.Storage/"
                 "storageAccounts/strrdev"})


def document(*resources: dict, outputs: dict | None = None) -> dict:
    return {"stack": "dev", "resourceCount": len(resources), "resources": list(resources),
            "outputs": outputs or {}}


def plan_of(old: list[dict], new: list[dict]) -> planner.StackPlan:
    return planner.plan_stack("dev", document(*old), document(*new))


def only(stack_plan: planner.StackPlan) -> planner.ResourcePlan:
    (single,) = stack_plan.resources
    return single


def markdown(stack_plan: planner.StackPlan) -> str:
    return planner.render([stack_plan], "HEAD~1")


# --- the planner on crafted pairs ---------------------------------------------------------------

def test_unchanged_says_no_changes_and_nothing_else():
    before = [storage(), web_app(), role_assignment()]
    result = plan_of(before, copy.deepcopy(before))
    assert result.unchanged and not result.dangers
    text = markdown(result)
    assert text == (f"{planner.COMMENT_MARKER}\n## Offline plan: `HEAD~1` → this change\n\n"
                    "No changes.\n")


def test_an_unchanged_stack_beside_a_changed_one_says_no_changes():
    changed = plan_of([storage()], [storage(tags={})])
    quiet = planner.plan_stack("prod", document(web_app()), document(web_app()))
    text = planner.render([changed, quiet], "main")
    assert "| prod | 0 | 0 | 0 | 0 | 0 | 0 |" in text
    assert text.endswith("### prod\n\nNo infrastructure changes.\n")


def test_tag_change_is_an_update_with_path_and_old_and_new_values():
    result = plan_of([storage()], [storage(tags={**TAGS, "stack": "dev2"})])
    change = only(result)
    assert change.action == "update" and change.replace_reasons == []
    assert [(c.path, c.old, c.new) for c in change.changes] == [("tags.stack", "dev", "dev2")]
    assert not result.dangers
    text = markdown(result)
    assert "| dev | 0 | 1 | 0 | 0 | 0 | 0 |" in text
    assert '- `tags.stack`: `"dev"` → `"dev2"`' in text


def test_azure_name_change_is_a_replace_because_the_arm_id_changes():
    change = only(plan_of([storage()], [storage(accountName="strrdev2")]))
    assert change.action == "replace"
    (reason,) = change.replace_reasons
    assert "ARM id" in reason and "strrdev2" in reason


def test_logical_rename_is_delete_plus_create_with_an_alias_hint():
    renamed = storage()
    renamed["name"] = "photos-storage"
    result = plan_of([storage()], [renamed])
    actions = {(r.action, r.name) for r in result.resources}
    assert actions == {("delete", "storage"), ("create", "photos-storage")}
    created = next(r for r in result.resources if r.action == "create")
    assert any('pulumi.Alias(name="storage")' in note for note in created.notes)
    assert any("stateful" in d for r, d in result.dangers if r.action == "delete")


def test_location_change_is_a_replace_but_spelling_is_not():
    change = only(plan_of([web_app()], [web_app(location="northeurope")]))
    assert change.action == "replace"
    assert "`location` is fixed at creation" in change.replace_reasons
    assert plan_of([web_app()], [web_app(location="West Europe")]).unchanged


def test_armid_field_is_used_when_the_snapshot_records_it():
    old, new = storage(), storage()  # same inputs: only the recorded ids differ
    old["armId"] = f"/subscriptions/s/resourceGroups/{RG}/providers/Microsoft.Storage/a/old"
    new["armId"] = f"/subscriptions/s/resourceGroups/{RG}/providers/Microsoft.Storage/a/new"
    change = only(plan_of([old], [new]))
    assert change.action == "replace"
    assert change.replace_reasons[0] == "its ARM id changes (`…/a/old` → `…/a/new`)"


@pytest.mark.parametrize(("before", "after", "action"), [
    (web_app(), web_app(kind="app"), "replace"),  # Linux -> Windows
    (web_app(), web_app(kind="app,linux,container"), "update"),
    (storage(kind="Storage"), storage(kind="StorageV2"), "update"),  # the in-place upgrade
    (storage(), storage(kind="BlobStorage"), "replace"),
    (storage(), storage(sku={"name": "Premium_LRS"}), "replace"),
    (storage(), storage(sku={"name": "Standard_GRS"}), "update"),
])
def test_properties_that_cannot_change_in_place(before, after, action):
    assert only(plan_of([before], [after])).action == action


def test_postgres_major_downgrade_replaces_and_upgrade_updates():
    def server(version: str) -> dict:
        return resource("azure-native:dbforpostgresql:Server", "postgres", {
            "serverName": "psql-rr", "resourceGroupName": RG, "location": "westeurope",
            "version": version}, protect=True)
    downgrade = only(plan_of([server("16")], [server("15")]))
    assert downgrade.action == "replace"
    assert any("downgraded" in d for d in downgrade.replace_reasons)
    assert any("stateful, protected resource replaced" in d for d in downgrade.dangers)
    assert only(plan_of([server("15")], [server("16")])).action == "update"


def test_ignore_changes_paths_are_not_planned():
    def plan(capacity: int, tier: str, subnet: str = "a") -> dict:
        return resource("azure-native:web:AppServicePlan", "plan", {
            "name": "asp", "resourceGroupName": RG, "sku": {"name": tier, "capacity": capacity},
            "subnets": [{"id": subnet}]}, ignoreChanges=["sku.capacity", "subnets[*]"])
    assert plan_of([plan(2, "P1v3")], [plan(3, "P1v3", "b")]).unchanged  # owned elsewhere
    change = only(plan_of([plan(2, "P1v3")], [plan(3, "P2v3", "b")]))
    assert [c.path for c in change.changes] == ["sku.name"]


def test_protect_removed_is_flagged():
    unprotected = storage()
    unprotected["protect"] = False
    result = plan_of([storage()], [unprotected])
    change = only(result)
    assert change.action == "update" and change.changes == []
    assert "resource options only: nothing changes in Azure" in change.notes
    assert "`protect` removed" in change.dangers
    text = markdown(result)
    assert "> [!CAUTION]" in text and "`protect` removed" in text
    assert "`options.protect`: `true` → `false`" in text


def test_secrets_are_masked_whatever_the_change():
    old = web_app(tags={"token": "abc-old"})
    new = web_app(tags={"token": "abc-new"})
    new["inputs"]["siteConfig"]["appSettings"][1]["value"] = "hunter2-new"
    new["inputs"]["siteConfig"]["appSettings"].append(
        {"name": "APPLICATIONINSIGHTS_CONNECTION_STRING", "value": "InstrumentationKey=k1"})
    new["inputs"]["siteConfig"]["appSettings"].append({"name": "SEALED", "value": "[secret]"})
    result = plan_of([old], [new])
    text = markdown(result)
    for leaked in ("hunter2", "abc-old", "abc-new", "InstrumentationKey=k1"):
        assert leaked not in text
    paths = {c.path: (c.old, c.new) for c in only(result).changes}
    assert paths["siteConfig.appSettings[DB_PASSWORD].value"] == ("[masked]", "[masked]")
    assert paths["siteConfig.appSettings[SEALED].value"][1] == "[secret]"
    assert paths["tags.token"] == ("[masked]", "[masked]")
    assert ("`siteConfig.appSettings[DB_PASSWORD].value`: [masked] → [masked] (value changed)"
            in text)


def test_settings_about_secrets_stay_visible():
    old = resource("azure-native:dbforpostgresql:Server", "postgres", {
        "serverName": "psql", "resourceGroupName": RG,
        "authConfig": {"passwordAuth": "Disabled"}, "allowSharedKeyAccess": False})
    new = copy.deepcopy(old)
    new["inputs"]["authConfig"]["passwordAuth"] = "Enabled"
    new["inputs"]["allowSharedKeyAccess"] = True
    change = only(plan_of([old], [new]))
    assert {(c.path, c.old, c.new) for c in change.changes} == {
        ("authConfig.passwordAuth", "Disabled", "Enabled"),
        ("allowSharedKeyAccess", False, True)}


def test_key_vault_secret_value_is_masked_by_type():
    def secret(value: str) -> dict:
        return resource("azure-native:keyvault:Secret", "flask-secret-key", {
            "vaultName": "kv", "secretName": "flask", "resourceGroupName": RG,
            "properties": {"value": value}})
    text = markdown(plan_of([secret("plain-old")], [secret("plain-new")]))
    assert "plain-old" not in text and "plain-new" not in text and "[masked]" in text


@pytest.mark.parametrize(("old", "new", "action"), [
    ([], [role_assignment()], "create"),
    ([role_assignment()], [], "delete"),
    ([role_assignment()], [role_assignment("principal-2")], "replace"),
])
def test_every_role_assignment_change_is_flagged(old, new, action):
    result = plan_of(old, new)
    assert only(result).action == action
    (danger,) = [d for _, d in result.dangers]
    assert danger.startswith(f"role assignment {action}d")


def test_role_assignment_principal_change_replaces():
    change = only(plan_of([role_assignment()], [role_assignment("principal-2")]))
    assert any("principal can't change" in reason for reason in change.replace_reasons)


@pytest.mark.parametrize(("before", "after", "path"), [
    (storage(), storage(publicNetworkAccess="Enabled"), "publicNetworkAccess"),
    (web_app(), web_app(httpsOnly=False), "httpsOnly"),
    (storage(), storage(networkRuleSet={"defaultAction": "Allow"}),
     "networkRuleSet.defaultAction"),
])
def test_public_access_changes_are_flagged(before, after, path):
    result = plan_of([before], [after])
    assert only(result).action == "update"
    assert [d for _, d in result.dangers] == [f"network exposure: `{path}`"]


def test_new_firewall_rule_is_flagged():
    rule = resource("azure-native:dbforpostgresql:FirewallRule", "allow-all", {
        "serverName": "psql", "resourceGroupName": RG, "firewallRuleName": "all",
        "startIpAddress": "0.0.0.0", "endIpAddress": "255.255.255.255"})
    result = plan_of([], [rule])
    assert [d for _, d in result.dangers] == ["network exposure: FirewallRule created"]


def waf_policy(mode: str) -> dict:
    return resource("azure-native:network:WebApplicationFirewallPolicy", "waf-policy", {
        "policyName": "waf-rr-dev", "resourceGroupName": RG, "location": "westeurope",
        "policySettings": {"state": "Enabled", "mode": mode}, "tags": dict(TAGS)})


def test_waf_policy_leaving_prevention_mode_is_flagged():
    result = plan_of([waf_policy("Prevention")], [waf_policy("Detection")])
    assert only(result).action == "update"
    assert [d for _, d in result.dangers] == [
        "network exposure: WebApplicationFirewallPolicy updated"]


@pytest.mark.parametrize("type_", ["network:ApplicationGateway", "network:VirtualNetworkPeering",
                                   "privatedns:VirtualNetworkLink"])
def test_gateway_peering_and_dns_link_changes_are_flagged(type_):
    before = resource(f"azure-native:{type_}", "thing", {"resourceGroupName": RG, "x": 1})
    after = resource(f"azure-native:{type_}", "thing", {"resourceGroupName": RG, "x": 2})
    kind = type_.rsplit(":", 1)[1]
    assert [d for _, d in plan_of([], [after]).dangers] == [f"network exposure: {kind} created"]
    assert [d for _, d in plan_of([before], [after]).dangers] == [
        f"network exposure: {kind} updated"]


def test_subnet_service_endpoint_change_is_flagged():
    def subnet(endpoints: list[dict]) -> dict:
        return resource("azure-native:network:Subnet", "snet-gateway", {
            "subnetName": "snet-gateway", "resourceGroupName": RG, "virtualNetworkName": "vnet",
            "addressPrefix": "10.40.3.0/24", "serviceEndpoints": endpoints})

    result = plan_of([subnet([])], [subnet([{"service": "Microsoft.Web"}])])
    assert [d for _, d in result.dangers] == ["network exposure: `serviceEndpoints[0].service`"]


def test_deleted_stateful_resource_is_flagged_loudly():
    result = plan_of([storage(), web_app()], [web_app()])
    change = only(result)
    assert change.action == "delete"
    assert change.dangers == ["stateful, protected resource deleted: its data is lost unless "
                              "restored; `pulumi up` refuses while `protect` is set"]
    text = markdown(result)
    caution = text.index("> [!CAUTION]")
    assert caution < text.index("- **delete** `azure-native:storage:StorageAccount::storage`")
    assert "| dev | 0 | 0 | 0 | 1 | 0 | **1** |" in text


def test_parent_change_is_a_move_that_would_need_an_alias():
    parent = "restaurant-review:data:DataServices::data"
    moved = storage()
    moved["parent"] = parent
    result = plan_of([storage()], [moved])
    change = only(result)
    assert change.action == "move" and change.old_parent == "the stack"
    assert any("alias" in d for d in change.dangers)  # stateful: a URN change recreates it
    text = markdown(result)
    assert "| dev | 0 | 0 | 0 | 0 | 1 | **1** |" in text
    assert (f"- **move** `{STORAGE}::storage` (under `{parent}`)\n"
            "  - moved from under `the stack`") in text
    assert "1 resource(s) moved to another parent: a URN change" in text


def test_moved_role_assignment_is_not_a_role_change():
    moved = role_assignment()
    moved["parent"] = "restaurant-review:app:Site::app"
    result = plan_of([role_assignment()], [moved])
    assert only(result).action == "move" and not result.dangers


def test_moved_resource_with_a_changed_input_counts_once_as_update():
    moved = web_app(tags={**TAGS, "stack": "dev2"})
    moved["parent"] = "restaurant-review:app:Site::site"
    change = only(plan_of([web_app()], [moved]))
    assert change.action == "update" and change.moved


def test_new_stack_creates_everything_and_removed_stack_deletes_everything():
    created = planner.plan_stack("qa", None, document(web_app(), storage()))
    assert [r.action for r in created.resources] == ["create", "create"]
    assert created.note == "New stack: every resource is created."
    removed = planner.plan_stack("qa", document(web_app(), storage()), None)
    assert sorted(r.action for r in removed.resources) == ["delete", "delete"]
    assert any("stateful" in d for _, d in removed.dangers)


@pytest.mark.parametrize(("type_", "old", "new", "reason"), [
    ("time:index/sleep:Sleep", {"createDuration": "12m", "triggers": {"principalId": "a"}},
     {"createDuration": "12m", "triggers": {"principalId": "b"}}, "a changed trigger waits again"),
    ("random:index/randomString:RandomString", {"length": 4}, {"length": 5},
     "any argument change generates a new string"),
    ("tls:index/privateKey:PrivateKey", {"algorithm": "RSA", "rsaBits": 2048},
     {"algorithm": "RSA", "rsaBits": 4096}, "any argument change generates a new key"),
    ("tls:index/selfSignedCert:SelfSignedCert", {"dnsNames": ["rr.example.net"]},
     {"dnsNames": ["rv.example.net"]}, "a changed certificate argument issues a new certificate"),
])
def test_other_providers_replacements_are_predicted(type_, old, new, reason):
    change = only(plan_of([resource(type_, "r", old)], [resource(type_, "r", new)]))
    assert change.action == "replace"
    assert any(reason in text for text in change.replace_reasons)


def test_a_new_wait_duration_alone_is_an_update():
    old = resource("time:index/sleep:Sleep", "wait", {"createDuration": "10m"})
    new = resource("time:index/sleep:Sleep", "wait", {"createDuration": "12m"})
    assert only(plan_of([old], [new])).action == "update"


def test_a_certificate_renewing_earlier_alone_is_an_update():
    type_ = "tls:index/selfSignedCert:SelfSignedCert"
    old = resource(type_, "cert", {"dnsNames": ["rr.example.net"], "earlyRenewalHours": 720})
    new = resource(type_, "cert", {"dnsNames": ["rr.example.net"], "earlyRenewalHours": 360})
    assert only(plan_of([old], [new])).action == "update"


def test_long_values_are_cut_around_the_difference():
    script = "x" * 300
    old = resource("command:local:Command", "db-role", {"create": script + "old"})
    new = resource("command:local:Command", "db-role", {"create": script + "new"})
    text = markdown(plan_of([old], [new]))
    line = next(line for line in text.splitlines() if line.startswith("  - `create`"))
    assert "…" in line and "old" in line and "new" in line and len(line) < 320


def test_output_changes_are_listed():
    result = planner.plan_stack("dev", document(outputs={"siteUrl": "https://a"}),
                                document(outputs={"siteUrl": "https://b"}))
    assert '- `siteUrl`: `"https://a"` → `"https://b"`' in markdown(result)


# --- the command line ---------------------------------------------------------------------------

def test_an_unknown_base_is_a_clear_error(capsys):
    assert planner.main(["--base", "no-such-ref-anywhere"]) == 2
    assert "'no-such-ref-anywhere' is not a commit" in capsys.readouterr().err


def test_a_program_that_rejects_its_config_is_a_clear_error():
    from infra.config import ConfigError

    def broken(stack):
        raise ConfigError("config 'alertEmail': 'nope' is not allowed")
    with pytest.raises(planner.PlanError, match="fails for stack dev: config 'alertEmail'"):
        planner.build_plans("HEAD", ["dev"], current=broken)


def test_an_unknown_stack_is_a_clear_error():
    with pytest.raises(planner.PlanError, match="no stack qa at HEAD or in the working tree"):
        planner.build_plans("HEAD", ["qa"])


def test_fail_on_danger_exits_3_only_when_something_is_flagged(monkeypatch, capsys):
    flagged = plan_of([role_assignment()], [])
    calm = plan_of([storage()], [storage(tags={"a": "b"})])
    monkeypatch.setattr(planner, "build_plans", lambda base, stacks: [calm, flagged])
    assert planner.main(["--base", "HEAD"]) == 0
    assert planner.main(["--base", "HEAD", "--fail-on-danger"]) == 3
    monkeypatch.setattr(planner, "build_plans", lambda base, stacks: [calm])
    assert planner.main(["--base", "HEAD", "--fail-on-danger"]) == 0
    assert "role assignment deleted" in capsys.readouterr().out


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=test", "-c",
                    "user.email=test@example.com", "-c", "commit.gpgsign=false", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """This working tree's files (tracked and new, nothing ignored) as a fresh one-commit repo."""
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached",
                             "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    repo = tmp_path / "repo"
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git(repo, "init", "--quiet")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", "base")
    return repo


@pytest.mark.slow  # make, git and the program in a copy of the repository
def test_make_diff_prints_the_plan_of_a_real_commit(repo_copy):
    stack_file = repo_copy / "Pulumi.dev.yaml"
    text = stack_file.read_text()
    assert "alertEmail: alerts@example.com" in text
    stack_file.write_text(text.replace("alertEmail: alerts@example.com",
                                       "alertEmail: oncall@example.com"))
    _git(repo_copy, "commit", "--quiet", "--all", "-m", "dev alerts go to on-call")

    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        # This checkout's virtualenv is already installed: PY_DEPS= skips the install step.
        ["make", "--no-print-directory", "-C", str(repo_copy), "diff", "BASE=HEAD~1",
         "STACK=dev", f"VENV={venv}", f"PY={sys.executable}", "PY_DEPS="],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith(planner.COMMENT_MARKER)
    assert "## Offline plan: `HEAD~1` → this change" in out
    assert "| dev | 0 | 1 | 0 | 0 | 0 | 0 |" in out
    assert "**update** `azure-native:monitor:ActionGroup::alerts-action-group`" in out
    assert ('`emailReceivers[on-call].emailAddress`: `"alerts@example.com"` → '
            '`"oncall@example.com"`') in out
    assert "[!CAUTION]" not in out
