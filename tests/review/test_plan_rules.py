"""The plan's resilience warnings, a create's key inputs, the package line and the size budget."""

from __future__ import annotations

import json
import subprocess

import pytest

from review import plan as planner
from review import plan_render
from review.plan_rules import IMMUTABLE_RULES, RESILIENCE_RULES
from review.stacks import SNAPSHOT_DIR
from tests.review.test_plan import RG, ROLE, document, plan_of, resource, storage

POSTGRES = "azure-native:dbforpostgresql:Server"
BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
VAULT = "azure-native:keyvault:Vault"
PEERING = "azure-native:network:VirtualNetworkPeering"
HUB_VNET = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-hub/"
            "providers/Microsoft.Network/virtualNetworks/vnet-hub")


def postgres(**inputs) -> dict:
    settings = {"storage": {"storageSizeGB": 128, "autoGrow": "Enabled"},
                "highAvailability": {"mode": "ZoneRedundant"},
                "backup": {"backupRetentionDays": 35, "geoRedundantBackup": "Enabled"}}
    for key, value in inputs.items():
        settings[key] = {**settings.get(key, {}), **value}
    return resource(POSTGRES, "postgres", {"serverName": "psql-rr", "resourceGroupName": RG,
                                           "location": "westeurope", **settings}, protect=True)


def blob_service(**inputs) -> dict:
    return resource(BLOB_SERVICE, "storage-blob-service", {
        "accountName": "strrdev", "blobServicesName": "default", "resourceGroupName": RG,
        "deleteRetentionPolicy": {"enabled": True, "days": 30},
        "containerDeleteRetentionPolicy": {"enabled": True, "days": 30},
        "isVersioningEnabled": True, **inputs})


def vault(**properties) -> dict:
    return resource(VAULT, "key-vault", {"vaultName": "kv-rr", "resourceGroupName": RG,
                                         "properties": {"enableSoftDelete": True,
                                                        "enablePurgeProtection": True,
                                                        **properties}}, protect=True)


def warnings(old: dict, new: dict) -> list[str]:
    return [d for _, d in plan_of([old], [new]).dangers]


# --- resilience -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "expected"), [
    (postgres(), postgres(storage={"storageSizeGB": 64}),
     "PostgreSQL storage shrinks: Azure refuses"),
    (postgres(), postgres(highAvailability={"mode": "Disabled"}), "high availability lowered"),
    (postgres(), postgres(highAvailability={"mode": "SameZone"}), "high availability lowered"),
    (postgres(), postgres(backup={"geoRedundantBackup": "Disabled"}),
     "geo-redundant backup off"),
    (postgres(), postgres(backup={"backupRetentionDays": 7}), "backup retention shortened"),
    (storage(sku={"name": "Standard_GZRS"}), storage(sku={"name": "Standard_LRS"}),
     "fewer copies survive a zone or region outage (loses region, zones)"),
    (storage(sku={"name": "Standard_RAGRS"}), storage(sku={"name": "Standard_GRS"}),
     "fewer copies survive a zone or region outage (loses read)"),
    (blob_service(), blob_service(deleteRetentionPolicy={"enabled": False}),
     "blob soft delete off"),
    (blob_service(), blob_service(deleteRetentionPolicy={"enabled": True, "days": 7}),
     "blob soft-delete retention shortened"),
    (blob_service(), blob_service(containerDeleteRetentionPolicy={"enabled": False}),
     "container soft delete off"),
    (blob_service(), blob_service(isVersioningEnabled=False), "blob versioning off"),
    (vault(), vault(enableSoftDelete=False), "Key Vault soft delete off"),
    (vault(), vault(enablePurgeProtection=False), "purge protection off"),
])
def test_each_resilience_reduction_is_a_warning_with_its_values_and_source(old, new, expected):
    (danger,) = [d for d in warnings(old, new) if expected in d]
    assert "([why](https://learn.microsoft.com/" in danger
    assert " → " in danger


def test_a_setting_taken_out_falls_back_to_off_and_is_a_warning():
    """An input the program stops sending takes Azure's default: no standby, no geo-backup."""
    old = postgres()
    new = postgres()
    del new["inputs"]["highAvailability"]
    new["inputs"]["backup"].pop("geoRedundantBackup")
    found = warnings(old, new)
    assert any("high availability lowered" in d and "→ (unset)" in d for d in found), found
    assert any("geo-redundant backup off" in d and "→ (unset)" in d for d in found), found


def test_resilience_warnings_on_protected_data_say_so():
    (danger,) = warnings(postgres(), postgres(storage={"storageSizeGB": 64}))
    assert danger.startswith("protected data: PostgreSQL storage shrinks")
    assert "`storage.storageSizeGB` `128` → `64`" in danger


@pytest.mark.parametrize(("old", "new"), [
    (postgres(), postgres(storage={"storageSizeGB": 256})),
    (postgres(highAvailability={"mode": "Disabled"}), postgres()),
    (postgres(), postgres(backup={"backupRetentionDays": 35})),
    (storage(sku={"name": "Standard_LRS"}), storage(sku={"name": "Standard_ZRS"})),
    (storage(sku={"name": "Standard_GRS"}), storage(sku={"name": "Standard_RAGZRS"})),
    (blob_service(isVersioningEnabled=False), blob_service()),
])
def test_growing_or_strengthening_is_no_warning(old, new):
    assert warnings(old, new) == []


def test_every_resilience_rule_names_a_documentation_source():
    assert all(rule.source.startswith("https://learn.microsoft.com/")
               for rule in RESILIENCE_RULES)


# --- what a create exposes ------------------------------------------------------------------------

def test_a_new_hub_peering_shows_its_remote_vnet_subscription_and_gateway_transit():
    peering = resource(PEERING, "hub-peering", {
        "virtualNetworkPeeringName": "peer-to-vnet-hub", "virtualNetworkName": "vnet-rr",
        "resourceGroupName": RG, "remoteVirtualNetwork": {"id": HUB_VNET},
        "allowGatewayTransit": False, "useRemoteGateways": True, "allowForwardedTraffic": True})
    result = plan_of([storage()], [storage(), peering])
    (danger,) = [d for _, d in result.dangers]
    assert danger.startswith("network exposure: VirtualNetworkPeering created")
    assert ("`remoteVirtualNetwork.id`: `…/virtualNetworks/vnet-hub` (outside this stack, in "
            "another subscription `11111111-2222-3333-4444-555555555555`)") in danger
    assert "`useRemoteGateways`: `true`" in danger and "`allowGatewayTransit`: `false`" in danger
    text = planner.render([result], "HEAD~1")
    assert "  - `useRemoteGateways`: `true`" in text  # in the create's details too


def test_a_peering_made_in_the_hub_says_it_writes_into_the_hub_vnet():
    vnet = resource("azure-native:network:VirtualNetwork", "vnet",
                    {"virtualNetworkName": "vnet-rr", "resourceGroupName": RG})
    ours = {"virtualNetworkName": "vnet-rr", "resourceGroupName": RG,
            "virtualNetworkPeeringName": "peer-to-hub", "remoteVirtualNetwork": {"id": HUB_VNET}}
    theirs = {"virtualNetworkName": "vnet-hub", "resourceGroupName": "rg-hub",
              "virtualNetworkPeeringName": "peer-to-rr", "remoteVirtualNetwork": {"id": "x"}}
    public_ip = resource("azure-native:network:PublicIPAddress", "gateway-ip", {
        "publicIpAddressName": "pip-rr", "resourceGroupName": RG, "sku": {"name": "Standard"}})
    result = plan_of([vnet], [vnet, resource(PEERING, "stack-to-hub", ours),
                              resource(PEERING, "hub-to-stack", theirs), public_ip])
    dangers = {plan.name: danger for plan, danger in result.dangers}
    assert ("VirtualNetworkPeering created (created in `…/virtualNetworks/vnet-hub` (outside "
            "this stack); `remoteVirtualNetwork.id`") in dangers["hub-to-stack"]
    assert "created in" not in dangers["stack-to-hub"]  # made in the stack's own VNet
    assert "created in" not in dangers["gateway-ip"]  # a resource group's own member


def test_a_new_role_assignment_shows_role_principal_and_scope():
    identity = resource("azure-native:managedidentity:UserAssignedIdentity", "app-identity",
                        {"resourceName": "id-rr", "resourceGroupName": RG})
    grant = resource(ROLE, "app-secrets-user", {
        "principalId": "2e076fc2", "principalType": "ServicePrincipal",
        "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                            "4633458b-17de-408a-b874-0445c86b69e6",
        "scope": f"/subscriptions/s/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv"},
        dependsOn=[f"{identity['type']}::app-identity"])
    result = plan_of([identity], [identity, grant])
    (danger,) = [d for _, d in result.dangers]
    assert "`roleDefinitionId`: `Key Vault Secrets User`" in danger
    assert "`principalId`: `app-identity`" in danger
    assert "`scope`: `…/vaults/kv`" in danger


def test_a_new_public_ip_shows_its_sku_and_allocation():
    public_ip = resource("azure-native:network:PublicIPAddress", "gateway-ip", {
        "publicIpAddressName": "pip-rr", "resourceGroupName": RG, "sku": {"name": "Standard"},
        "publicIPAllocationMethod": "Static"})
    (danger,) = [d for _, d in plan_of([], [public_ip]).dangers]
    assert "`sku.name`: `\"Standard\"`; `publicIPAllocationMethod`: `\"Static\"`" in danger


# --- the site package -----------------------------------------------------------------------------

def test_the_package_note_names_the_files_and_what_each_stack_redeploys():
    app = resource("azure-native:web:WebApp", "web-app", {"name": "app", "resourceGroupName": RG})
    slot = resource("azure-native:web:WebAppSlot", "web-app-staging",
                    {"name": "app", "slot": "staging", "resourceGroupName": RG})
    dev = planner.plan_stack("dev", document(app), document(app))
    prod = planner.plan_stack("prod", document(app, slot), document(app, slot))
    text = planner.render([dev, prod], "main", ["webapp/views.py"])
    assert "No changes." not in text
    assert ("> **The site package changes** (1 source file(s): `webapp/views.py`). Merging "
            "redeploys it: **dev**: the app (production); **prod**: the `staging` slot "
            "(production after the swap).") in text
    assert planner.render([dev, prod], "main", []).endswith("No changes.\n")


def _commit_all(repo, message: str) -> None:
    subprocess.run(["git", "-C", str(repo), "add", "--all"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e",
                    "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", message], check=True)


def test_package_changes_are_the_files_the_build_ships(tmp_path):
    for name in ("webapp/__init__.py", "webapp/views.py", "release/build.py",
                 "release/README.md", "infra/app.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    _commit_all(tmp_path, "base")
    base = planner.resolve("HEAD", tmp_path)
    assert planner.package_changes(base, tmp_path) == []
    for name in ("webapp/views.py", "release/README.md", "infra/app.py",
                 "webapp/tests/test_views.py", "webapp/new_page.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v2\n")
    (tmp_path / "release/build.py").unlink()
    assert planner.package_changes(base, tmp_path) == [
        "release/build.py", "webapp/new_page.py", "webapp/views.py"]


# --- the size budget ------------------------------------------------------------------------------

def _huge_stack(stack: str, count: int) -> planner.StackPlan:
    """`count` role assignments deleted (a warning each) and a long update on each app."""
    old = [resource(ROLE, f"grant-{i}", {"principalId": f"p{i}", "scope": "x" * 40})
           for i in range(count)]
    old += [resource("azure-native:web:WebApp", f"app-{i}", {"settings": "a" * 400})
            for i in range(count)]
    new = [resource("azure-native:web:WebApp", f"app-{i}", {"settings": "b" * 400})
           for i in range(count)]
    return planner.plan_stack(stack, document(*old), document(*new))


def test_a_huge_plan_fits_the_comment_limit_and_keeps_every_warning():
    plans = [_huge_stack(stack, 150) for stack in ("dev", "isolated", "prod")]
    full_size = len(plan_render._at_level(plans, "main", (), "full"))
    assert full_size > plan_render.COMMENT_LIMIT
    text = planner.render(plans, "main")
    assert len(text) <= plan_render.COMMENT_LIMIT
    assert "Details shortened to fit GitHub's 65,536-character comment limit" in text
    for plan in plans:
        for ref, danger in ((r.ref, d) for r, d in plan.dangers):
            assert f"> - `{ref}`: {danger}" in text
    last_warning = text.rindex("> - `azure-native:authorization:RoleAssignment::grant-149`")
    assert last_warning < text.index("### dev")  # prod's warnings come before any detail


def test_a_plan_that_fits_keeps_full_detail():
    text = planner.render([_huge_stack("dev", 3)], "main")
    assert "Details shortened" not in text
    assert "  - `settings`: `aaaa" in text


@pytest.mark.parametrize(("count", "limit"), [(40, 3_000), (1_000, 20_000),
                                              (2_000, plan_render.COMMENT_LIMIT)])
def test_warnings_alone_over_the_limit_are_counted_not_silently_dropped(count, limit):
    text = planner.render([_huge_stack("prod", count)], "main", limit=limit)
    assert len(text) <= limit
    shown = text.count("> - **prod** `azure-native:authorization:RoleAssignment::grant-")
    assert 0 < shown < count
    assert f"> - … and {count - shown} more warning(s), in the full plan" in text


# --- other providers ------------------------------------------------------------------------------

def test_every_other_providers_type_the_stacks_declare_has_its_replacing_arguments():
    """Without an ARM id to compare, only a rule tells a new certificate from an update."""
    declared = {r["type"] for path in SNAPSHOT_DIR.glob("*.json") if ".arm." not in path.name
                for r in json.loads(path.read_text())["resources"]}
    ours = ("azure-native", "restaurant-review")
    others = {t for t in declared if t.split(":", 1)[0] not in ours}
    assert others, "the snapshots declare no random, tls, time or command resources"
    assert others <= {rule.type for rule in IMMUTABLE_RULES}
