"""The sample plan comment in README.md and review/README.md, generated, never typed.

    python -m review.plan_sample          rewrite both samples from the crafted change below

The change is crafted (fixed snapshot documents, not the live program), so the sample only moves
when the plan's output does, and tests/review/test_plan_sample.py fails until it is rewritten:
dev's plan grows to B2; prod shrinks PostgreSQL's storage, turns off its geo-redundant backup,
moves photos from GZRS to LRS, peers with a hub in another subscription and grants a role;
isolated changes nothing in Azure; and the site's sources changed, so every stack redeploys.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

from review.plan_engine import StackPlan, plan_stack
from review.plan_render import render
from review.stacks import REPO_ROOT

BASE = "HEAD~1"
PACKAGE_FILES = ("webapp/reviews.py", "webapp/templates/restaurants/detail.html")
SAMPLE_FILES = (REPO_ROOT / "README.md", REPO_ROOT / "review" / "README.md")
BEGIN, END = "<!-- plan-sample:begin -->", "<!-- plan-sample:end -->"

SUBSCRIPTION = "/subscriptions/d34499ef-9d5c-5c4e-bdfb-e5a51534a831"
HUB_VNET = ("/subscriptions/0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/resourceGroups/rg-hub/providers/"
            "Microsoft.Network/virtualNetworks/vnet-hub")
KEY_VAULT_SECRETS_USER = ("/providers/Microsoft.Authorization/roleDefinitions/"
                          "4633458b-17de-408a-b874-0445c86b69e6")


def _resource(stack: str, type_: str, name: str, path: str, inputs: dict,
              protect: bool = False, depends_on: tuple[str, ...] = ()) -> dict:
    return {"type": type_, "name": name, "parent": None, "protect": protect,
            "retainOnDelete": protect, "dependsOn": list(depends_on),
            "armId": f"{SUBSCRIPTION}/resourceGroups/rg-rr-{stack}/providers/{path}",
            "inputs": {"resourceGroupName": f"rg-rr-{stack}", **inputs}}


def _sites(stack: str, slot: bool) -> list[dict]:
    app = _resource(stack, "azure-native:web:WebApp", "web-app",
                    f"Microsoft.Web/sites/app-rr-{stack}", {"name": f"app-rr-{stack}"})
    if not slot:
        return [app]
    return [app, _resource(stack, "azure-native:web:WebAppSlot", "web-app-staging",
                           f"Microsoft.Web/sites/app-rr-{stack}/slots/staging",
                           {"name": f"app-rr-{stack}", "slot": "staging"})]


def _document(stack: str, resources: list[dict]) -> dict:
    return {"stack": stack, "resources": resources, "outputs": {}}


def _prod_data() -> list[dict]:
    postgres = _resource("prod", "azure-native:dbforpostgresql:Server", "postgres",
                         "Microsoft.DBforPostgreSQL/flexibleServers/psql-rr-prod", {
                             "serverName": "psql-rr-prod",
                             "backup": {"backupRetentionDays": 35, "geoRedundantBackup": "Enabled"},
                             "highAvailability": {"mode": "ZoneRedundant"},
                             "storage": {"autoGrow": "Enabled", "storageSizeGB": 128}},
                         protect=True)
    storage = _resource("prod", "azure-native:storage:StorageAccount", "storage",
                        "Microsoft.Storage/storageAccounts/strrprod",
                        {"accountName": "strrprod", "kind": "StorageV2",
                         "sku": {"name": "Standard_GZRS"}}, protect=True)
    identity = _resource("prod", "azure-native:managedidentity:UserAssignedIdentity",
                         "app-identity",
                         "Microsoft.ManagedIdentity/userAssignedIdentities/id-rr-prod-app",
                         {"resourceName": "id-rr-prod-app"})
    vault = _resource("prod", "azure-native:keyvault:Vault", "key-vault",
                      "Microsoft.KeyVault/vaults/kv-rr-prod", {"vaultName": "kv-rr-prod"},
                      protect=True)
    vnet = _resource("prod", "azure-native:network:VirtualNetwork", "vnet",
                     "Microsoft.Network/virtualNetworks/vnet-rr-prod",
                     {"virtualNetworkName": "vnet-rr-prod"})
    return [postgres, storage, identity, vault, vnet]


def _prod_changed(before: list[dict]) -> list[dict]:
    after = copy.deepcopy(before)
    by_name = {resource["name"]: resource["inputs"] for resource in after}
    postgres, storage = by_name["postgres"], by_name["storage"]
    postgres["storage"]["storageSizeGB"] = 64
    postgres["backup"]["geoRedundantBackup"] = "Disabled"
    storage["sku"]["name"] = "Standard_LRS"
    peering = _resource("prod", "azure-native:network:VirtualNetworkPeering", "hub-peering",
                        "Microsoft.Network/virtualNetworks/vnet-rr-prod/virtualNetworkPeerings/"
                        "peer-to-vnet-hub", {
                            "virtualNetworkName": "vnet-rr-prod",
                            "virtualNetworkPeeringName": "peer-to-vnet-hub",
                            "remoteVirtualNetwork": {"id": HUB_VNET},
                            "allowForwardedTraffic": True, "allowGatewayTransit": False,
                            "allowVirtualNetworkAccess": True, "useRemoteGateways": True})
    grant = _resource("prod", "azure-native:authorization:RoleAssignment",
                      "app-key-vault-secrets-user",
                      "Microsoft.KeyVault/vaults/kv-rr-prod/providers/Microsoft.Authorization/"
                      "roleAssignments/cd1241a2", {
                          "principalId": "2e076fc2-97e9-51ed-ad45-19b3fc0a25a5",
                          "principalType": "ServicePrincipal",
                          "roleDefinitionId": KEY_VAULT_SECRETS_USER,
                          "scope": f"{SUBSCRIPTION}/resourceGroups/rg-rr-prod/providers/"
                                   "Microsoft.KeyVault/vaults/kv-rr-prod"},
                      depends_on=("azure-native:keyvault:Vault::key-vault",
                                  "azure-native:managedidentity:UserAssignedIdentity::"
                                  "app-identity"))
    return [*after, peering, grant]


def sample_plans() -> list[StackPlan]:
    plan_b1, plan_b2 = ({"name": "plan-rr-dev", "sku": {"name": sku, "tier": "Basic"}}
                        for sku in ("B1", "B2"))
    dev_plan = "Microsoft.Web/serverfarms/plan-rr-dev"
    dev_before = [_resource("dev", "azure-native:web:AppServicePlan", "plan", dev_plan, plan_b1),
                  *_sites("dev", slot=False)]
    dev_after = [_resource("dev", "azure-native:web:AppServicePlan", "plan", dev_plan, plan_b2),
                 *_sites("dev", slot=False)]
    prod_before = [*_sites("prod", slot=True), *_prod_data()]
    isolated = [*_sites("isolated", slot=True)]
    return [
        plan_stack("dev", _document("dev", dev_before), _document("dev", dev_after)),
        plan_stack("isolated", _document("isolated", isolated), _document("isolated", isolated)),
        plan_stack("prod", _document("prod", prod_before),
                   _document("prod", _prod_changed(prod_before))),
    ]


def sample() -> str:
    return render(sample_plans(), BASE, list(PACKAGE_FILES))


def sample_block() -> str:
    """What sits between the markers in each README."""
    return f"{BEGIN}\n````markdown\n{sample()}````\n{END}"


_BLOCK = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)


def current_block(path: Path) -> str | None:
    match = _BLOCK.search(path.read_text(encoding="utf-8"))
    return match.group(0) if match else None


def write(paths: tuple[Path, ...] = SAMPLE_FILES) -> None:
    block = sample_block()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if not _BLOCK.search(text):
            raise SystemExit(f"{path}: no {BEGIN} ... {END} block to fill")
        path.write_text(_BLOCK.sub(lambda _: block, text), encoding="utf-8")
        print(f"wrote the sample plan into {path}")


if __name__ == "__main__":
    write()
    sys.exit(0)
