"""The security baseline: every synthesized stack passes; a bad resource trips each rule."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest

from policy import rules
from review.mocks import load_stack_config, run_stack
from review.model import normalize
from review.stacks import discover_stacks

PROTECTED = SimpleNamespace(protect=True)
UNPROTECTED = SimpleNamespace(protect=False)
WEB_APP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"


@pytest.mark.parametrize("stack", discover_stacks())
def test_every_stack_passes_every_rule(stack_resources, stack, policy_dir):
    config = json.loads((policy_dir / "config" / f"{stack}.json").read_text())
    found = {
        r.ref: v for r in stack_resources[stack]
        if (v := rules.violations(r.type, r.inputs, SimpleNamespace(protect=r.protect), config))
    }
    assert found == {}


@pytest.mark.parametrize("stack", discover_stacks())
def test_every_site_in_every_stack_has_basic_auth_off(stack_resources, stack):
    resources = [(r.type, r.inputs) for r in stack_resources[stack]]
    assert rules.check_every_site_has_basic_auth_off(resources) == []


def test_a_site_whose_basic_auth_policies_were_removed_is_caught(stack_resources):
    """The per-resource rule cannot see a policy resource that is not there; this one does."""
    without_ftp = [(r.type, r.inputs) for r in stack_resources["prod"]
                   if not r.type.startswith("azure-native:web:WebAppFtpAllowed")]
    (message,) = rules.check_every_site_has_basic_auth_off(without_ftp)
    assert message.startswith("2 web app(s)/slot(s) but only 0 FTP basic-auth")


def test_dev_fails_the_private_tier_baseline(stack_resources):
    """The dev relaxations are real: under prod's (default) config dev is rejected."""
    tripped = set()
    for r in stack_resources["dev"]:
        tripped |= set(rules.violations(r.type, r.inputs, SimpleNamespace(protect=r.protect)))
    assert tripped == {"key-vault-rbac-purge-protection", "postgresql-entra-private",
                       "stateful-resources-protected"}


def test_rules_cover_the_resources_they_guard(stack_resources):
    """Each rule has something to look at in prod, so passing means something."""
    types = {r.type for r in stack_resources["prod"]}
    guarded = {rules.STORAGE_ACCOUNT, rules.BLOB_CONTAINER, rules.KEY_VAULT,
               rules.POSTGRES_SERVER, rules.ROLE_ASSIGNMENT, *rules.WEB_SITES,
               *rules.BASIC_AUTH_POLICIES}
    assert guarded <= types


def trips(rule_name: str, resource_type: str, props: dict, options=PROTECTED, config=None):
    rule = next(r for r in rules.RULES if r.name == rule_name)
    return rule(resource_type, props, options, config)


@pytest.mark.parametrize("site_type", [WEB_APP, SLOT])
def test_https_only(real_props, site_type):
    props = real_props("prod", site_type)
    assert trips("web-app-https-only", site_type, props) == []
    props["httpsOnly"] = False
    assert trips("web-app-https-only", site_type, props)


def test_minimum_tls(real_props):
    app = real_props("prod", WEB_APP)
    app["siteConfig"]["minTlsVersion"] = "1.1"
    assert trips("minimum-tls-1-2", WEB_APP, app) == ["siteConfig.minTlsVersion must be 1.2 or "
                                                       "later"]
    storage = real_props("prod", rules.STORAGE_ACCOUNT)
    assert trips("minimum-tls-1-2", rules.STORAGE_ACCOUNT, storage) == []
    storage["minimumTlsVersion"] = "TLS1_0"
    assert trips("minimum-tls-1-2", rules.STORAGE_ACCOUNT, storage)


def test_ftps_disabled(real_props):
    app = real_props("dev", WEB_APP)
    assert trips("web-app-ftps-disabled", WEB_APP, app) == []
    app["siteConfig"]["ftpsState"] = "FtpsOnly"
    assert trips("web-app-ftps-disabled", WEB_APP, app)


@pytest.mark.parametrize("policy_type", rules.BASIC_AUTH_POLICIES)
def test_basic_auth_publishing_disabled(real_props, policy_type):
    props = real_props("prod", policy_type)
    assert trips("basic-auth-publishing-disabled", policy_type, props) == []
    props["allow"] = True
    assert trips("basic-auth-publishing-disabled", policy_type, props)


def test_no_public_blob_access(real_props):
    account = real_props("prod", rules.STORAGE_ACCOUNT)
    account["allowBlobPublicAccess"] = True
    assert trips("storage-no-public-blob-access", rules.STORAGE_ACCOUNT, account)
    container = real_props("prod", rules.BLOB_CONTAINER)
    assert trips("storage-no-public-blob-access", rules.BLOB_CONTAINER, container) == []
    container["publicAccess"] = "Blob"
    assert trips("storage-no-public-blob-access", rules.BLOB_CONTAINER, container) == [
        "container publicAccess must be None, not 'Blob'"]


def _photos_account(stack_resources, stack: str) -> dict:
    return copy.deepcopy(next(
        dict(r.inputs) for r in stack_resources[stack] if r.type == rules.STORAGE_ACCOUNT
        and not rules.is_deployment_artefact_store(r.type, r.inputs)))


def test_shared_key_disabled(stack_resources):
    account = _photos_account(stack_resources, "dev")
    assert trips("storage-shared-key-disabled", rules.STORAGE_ACCOUNT, account) == []
    del account["allowSharedKeyAccess"]  # unset means Azure's default: keys allowed
    assert trips("storage-shared-key-disabled", rules.STORAGE_ACCOUNT, account)


def test_only_the_tagged_deployment_artefact_store_may_keep_shared_keys(stack_resources):
    accounts = {r.inputs["accountName"]: r.inputs for r in stack_resources["prod"]
                if r.type == rules.STORAGE_ACCOUNT}
    artefacts = [name for name, props in accounts.items()
                 if rules.is_deployment_artefact_store(rules.STORAGE_ACCOUNT, props)]
    assert len(artefacts) == 1 and len(accounts) == 2
    store = dict(accounts[artefacts[0]])
    assert store["allowSharedKeyAccess"] is True  # deployment scripts need it
    assert trips("storage-shared-key-disabled", rules.STORAGE_ACCOUNT, store) == []
    assert trips("stateful-resources-protected", rules.STORAGE_ACCOUNT, store, UNPROTECTED) == []
    store["tags"] = {key: value for key, value in store["tags"].items() if key != "purpose"}
    assert trips("storage-shared-key-disabled", rules.STORAGE_ACCOUNT, store)
    assert trips("stateful-resources-protected", rules.STORAGE_ACCOUNT, store, UNPROTECTED)


def test_the_tag_alone_does_not_exempt_another_storage_account(stack_resources):
    photos = _photos_account(stack_resources, "prod")
    photos["tags"] = {**photos["tags"], "purpose": "deployment-artefacts"}
    photos["allowSharedKeyAccess"] = True
    assert not rules.is_deployment_artefact_store(rules.STORAGE_ACCOUNT, photos)
    assert trips("storage-shared-key-disabled", rules.STORAGE_ACCOUNT, photos)
    assert trips("stateful-resources-protected", rules.STORAGE_ACCOUNT, photos, UNPROTECTED)


def test_key_vault_rbac_and_purge_protection(real_props):
    vault = real_props("prod", rules.KEY_VAULT)
    assert trips("key-vault-rbac-purge-protection", rules.KEY_VAULT, vault) == []
    vault["properties"]["enableRbacAuthorization"] = False
    del vault["properties"]["enablePurgeProtection"]
    assert len(trips("key-vault-rbac-purge-protection", rules.KEY_VAULT, vault)) == 2
    relaxed = trips("key-vault-rbac-purge-protection", rules.KEY_VAULT, vault,
                    config={"requirePurgeProtection": False})
    assert relaxed == ["properties.enableRbacAuthorization must be true (no access policies)"]


def test_postgres_entra_and_private(real_props):
    server = real_props("prod", rules.POSTGRES_SERVER)
    assert trips("postgresql-entra-private", rules.POSTGRES_SERVER, server) == []
    server["network"]["publicNetworkAccess"] = "Enabled"
    assert trips("postgresql-entra-private", rules.POSTGRES_SERVER, server)
    assert trips("postgresql-entra-private", rules.POSTGRES_SERVER, server,
                 config={"privateNetworking": False}) == []
    server["authConfig"]["activeDirectoryAuth"] = "Disabled"
    assert trips("postgresql-entra-private", rules.POSTGRES_SERVER, server,
                 config={"privateNetworking": False}) == [
        "authConfig.activeDirectoryAuth must be Enabled"]


@pytest.mark.parametrize(("scope", "principal_type"), [
    ("/subscriptions/s/resourceGroups/rg", "ServicePrincipal"),
    ("/subscriptions/s", "ServicePrincipal"),
    (None, "ServicePrincipal"),
    ("KEEP", "User"),
])
def test_role_assignment_scope_and_principal(real_props, scope, principal_type):
    assignment = real_props("prod", rules.ROLE_ASSIGNMENT)
    assert trips("role-assignment-resource-scope", rules.ROLE_ASSIGNMENT, assignment) == []
    if scope != "KEEP":
        assignment["scope"] = scope
    assignment["principalType"] = principal_type
    assert len(trips("role-assignment-resource-scope", rules.ROLE_ASSIGNMENT, assignment)) == 1


def test_a_developer_group_assignment_passes_in_dev_only(real_props):
    assignment = real_props("prod", rules.ROLE_ASSIGNMENT)
    assignment["principalType"] = "Group"
    (message,) = trips("role-assignment-resource-scope", rules.ROLE_ASSIGNMENT, assignment)
    assert message.startswith("principalType must be ServicePrincipal, not 'Group'")
    assert trips("role-assignment-resource-scope", rules.ROLE_ASSIGNMENT, assignment,
                 config={"servicePrincipalsOnly": False}) == []
    assignment["principalType"] = "User"  # a person's own grant never passes, not even in dev
    assert trips("role-assignment-resource-scope", rules.ROLE_ASSIGNMENT, assignment,
                 config={"servicePrincipalsOnly": False})


def developer_rule() -> dict:
    """A firewall rule as the dev stack declares it for config developerIpRanges."""
    return {"firewallRuleName": "developer-20-50-1-0-28", "startIpAddress": "20.50.1.0",
            "endIpAddress": "20.50.1.15", "serverName": "psql-rr-x", "resourceGroupName": "rg"}


@pytest.mark.parametrize("stack", ["prod", "isolated"])
def test_production_policy_refuses_developer_ranges(policy_dir, stack):
    config = json.loads((policy_dir / "config" / f"{stack}.json").read_text())
    found = rules.violations(rules.POSTGRES_FIREWALL_RULE, developer_rule(), PROTECTED,
                             config)
    assert found == {"postgresql-firewall-no-public-ranges": [
        "firewall rule 'developer-20-50-1-0-28' opens 20.50.1.0-20.50.1.15: outside dev no "
        "address range may reach PostgreSQL"]}


def test_dev_policy_admits_developer_ranges_and_everyone_the_azure_services_marker(
        policy_dir, stack_resources):
    config = json.loads((policy_dir / "config" / "dev.json").read_text())
    assert rules.violations(rules.POSTGRES_FIREWALL_RULE, developer_rule(), PROTECTED,
                            config) == {}
    marker = next(r.inputs for r in stack_resources["dev"]
                  if r.type == rules.POSTGRES_FIREWALL_RULE)
    assert (marker["startIpAddress"], marker["endIpAddress"]) == ("0.0.0.0", "0.0.0.0")
    assert trips("postgresql-firewall-no-public-ranges", rules.POSTGRES_FIREWALL_RULE,
                 dict(marker)) == []


@pytest.mark.parametrize("stateful", rules.STATEFUL)
def test_stateful_resources_protected(real_props, stack_resources, stateful):
    props = (_photos_account(stack_resources, "prod") if stateful == rules.STORAGE_ACCOUNT
             else real_props("prod", stateful))
    assert trips("stateful-resources-protected", stateful, props, PROTECTED) == []
    assert trips("stateful-resources-protected", stateful, props, UNPROTECTED)
    assert trips("stateful-resources-protected", stateful, props, UNPROTECTED,
                 config={"requireProtection": False}) == []


def test_every_rule_has_a_tripping_test():
    tested = {"web-app-https-only", "minimum-tls-1-2", "web-app-ftps-disabled",
              "basic-auth-publishing-disabled", "storage-no-public-blob-access",
              "storage-shared-key-disabled", "key-vault-rbac-purge-protection",
              "postgresql-entra-private", "role-assignment-resource-scope",
              "postgresql-firewall-no-public-ranges",
              "stateful-resources-protected", "application-gateway-waf-prevention",
              "application-gateway-tls-listeners"}
    assert {rule.name for rule in rules.RULES} == tested


def test_dev_with_developer_access_passes_dev_policy_but_not_prods(policy_dir):
    config = {**load_stack_config("dev"),
              "restaurant-review:developerGroupObjectId": "7f3c2a1e-5b4d-4c3b-9a2f-1e0d9c8b7a65",
              "restaurant-review:developerGroupName": "rr-dev-developers",
              "restaurant-review:developerIpRanges": "20.50.1.0/28"}
    resources = normalize(run_stack("dev", config=config).resources)

    def tripped(stack: str) -> set[str]:
        policy = json.loads((policy_dir / "config" / f"{stack}.json").read_text())
        return {name for r in resources for name in rules.violations(
            r.type, r.inputs, SimpleNamespace(protect=r.protect), policy)}

    assert tripped("dev") == set()
    assert {"postgresql-firewall-no-public-ranges", "role-assignment-resource-scope"} <= (
        tripped("prod"))
