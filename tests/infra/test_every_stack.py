"""Invariants every tier shares (README.md, "What each stack creates"), on every stack file."""

from __future__ import annotations

import json
import re

from infra.config import TIERS
from infra.identity import KEY_VAULT_SECRETS_USER, STORAGE_BLOB_DATA_CONTRIBUTOR
from review.mocks import SECRET, load_stack_config, mock_password


def test_every_tier_has_a_committed_stack(committed_stacks):
    tiers = {load_stack_config(stack)["restaurant-review:tier"] for stack in committed_stacks}
    assert sorted(tiers) == sorted(TIERS)


def _site_identity(view):
    return view.one("managedidentity:UserAssignedIdentity", "app-identity")


def test_web_app_is_hardened(stack_view):
    for site in stack_view.sites():
        inputs, config = site.inputs, site.inputs["siteConfig"]
        # The sites' user-assigned identity, granted before they existed (infra/identity.py).
        identity = _site_identity(stack_view)
        assert inputs["identity"] == {"type": "UserAssigned",
                                      "userAssignedIdentities": [identity.arm_id]}
        assert inputs["httpsOnly"] is True
        assert inputs["clientAffinityEnabled"] is False
        assert config["linuxFxVersion"] == "PYTHON|3.11"
        assert config["appCommandLine"] == "python startup.py"
        assert config["healthCheckPath"] == "/healthz"
        assert config["minTlsVersion"] == "1.2" and config["scmMinTlsVersion"] == "1.2"
        assert config["ftpsState"] == "Disabled"
        assert config["http20Enabled"] is True
        assert config["remoteDebuggingEnabled"] is False
        assert config["alwaysOn"] is True


def test_basic_auth_publishing_is_disabled_for_ftp_and_scm(stack_view):
    policies = (stack_view.all("web:WebAppFtpAllowed") + stack_view.all("web:WebAppScmAllowed")
                + stack_view.all("web:WebAppFtpAllowedSlot")
                + stack_view.all("web:WebAppScmAllowedSlot"))
    assert len(policies) == 2 * len(stack_view.sites())
    assert all(policy.inputs["allow"] is False for policy in policies)
    slots = {policy.inputs.get("slot") for policy in policies}
    assert slots == ({None, "staging"} if stack_view.tier != "basic" else {None})


def test_app_settings_follow_the_env_var_contract(stack_view):
    outputs = stack_view.run.outputs
    for site in stack_view.sites():
        settings = stack_view.settings(site)
        assert settings["AZURE_POSTGRESQL_HOST"] == outputs["databaseHost"]
        assert settings["AZURE_POSTGRESQL_DATABASE"] == outputs["databaseName"]
        assert settings["AZURE_STORAGE_ACCOUNT_URL"] == outputs["storageAccountUrl"]
        assert re.fullmatch(r"https://[a-z0-9]{3,24}\.blob\.core\.windows\.net",
                            settings["AZURE_STORAGE_ACCOUNT_URL"])
        assert settings["AZURE_STORAGE_CONTAINER"] == "photos"
        assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"].startswith("InstrumentationKey=")
        assert settings["SCM_DO_BUILD_DURING_DEPLOYMENT"] == "false"
        assert "WEBSITE_RUN_FROM_PACKAGE" not in settings
        assert not {"DATABASE_URL", "AZURE_STORAGE_CONNECTION_STRING"} & set(settings)
        swap_warmup = {"WEBSITE_SWAP_WARMUP_PING_PATH": "/healthz",
                       "WEBSITE_SWAP_WARMUP_PING_STATUSES": "200"}
        if stack_view.tier == "basic":
            assert not swap_warmup.keys() & settings.keys()
        else:
            assert swap_warmup.items() <= settings.items()


def test_secret_key_is_a_key_vault_reference_never_a_value(stack_view):
    vault = stack_view.one("keyvault:Vault").inputs["vaultName"]
    secret = stack_view.one("keyvault:Secret", "flask-secret-key")
    assert secret.inputs["properties"]["value"] == SECRET
    for site in stack_view.sites():
        assert stack_view.settings(site)["SECRET_KEY"] == (
            f"@Microsoft.KeyVault(SecretUri=https://{vault}.vault.azure.net/secrets/"
            f"{secret.inputs['secretName']})")
        # The reference resolves with an identity whose grant exists before the site does.
        identity = _site_identity(stack_view)
        assert site.inputs["keyVaultReferenceIdentity"] == identity.arm_id
        grant = stack_view.one("authorization:RoleAssignment", "app-key-vault-secrets-user")
        assert grant.urn in site.depends_on


def test_storage_account_is_locked_down(stack_view):
    account = stack_view.one("storage:StorageAccount", "storage").inputs
    assert account["kind"] == "StorageV2"
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["enableHttpsTrafficOnly"] is True
    blob_service = stack_view.one("storage:BlobServiceProperties").inputs
    assert blob_service["deleteRetentionPolicy"]["enabled"] is True
    assert blob_service["isVersioningEnabled"] is (stack_view.tier != "basic")
    container = stack_view.one("storage:BlobContainer", "photo-container").inputs
    assert container["containerName"] == "photos" and container["publicAccess"] == "None"


def test_key_vault_uses_rbac_and_soft_delete(stack_view):
    properties = stack_view.one("keyvault:Vault").inputs["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties.get("enablePurgeProtection") is (
        True if stack_view.tier != "basic" else None)


def test_postgres_is_entra_only_tls_and_backed_up(stack_view):
    server = stack_view.one("dbforpostgresql:Server").inputs
    assert server["version"] == "16"
    assert server["authConfig"]["activeDirectoryAuth"] == "Enabled"
    assert server["authConfig"]["passwordAuth"] == "Disabled"
    assert "administratorLoginPassword" not in server
    # Public-access mode: never VNet-injected, so Private Link stays possible.
    assert "delegatedSubnetResourceId" not in server["network"]
    assert server["backup"]["backupRetentionDays"] >= 7
    settings = {c.inputs["configurationName"]: c.inputs["value"]
                for c in stack_view.all("dbforpostgresql:Configuration")}
    assert settings == {"require_secure_transport": "on", "ssl_min_protocol_version": "TLSv1.2",
                        "azure.extensions": "PG_TRGM,UNACCENT"}
    assert stack_view.one("dbforpostgresql:Database").inputs["databaseName"] == \
        stack_view.run.outputs["databaseName"]
    admin = stack_view.one("dbforpostgresql:AdministratorsMicrosoftEntra",
                           "postgres-entra-admin").inputs
    assert admin["principalType"] == "group"
    assert admin["objectId"] == "11111111-2222-3333-4444-555555555555"


def test_role_assignments_are_least_privilege_and_scoped_to_the_resource(stack_view):
    container_id = stack_view.one("storage:BlobContainer", "photo-container").urn
    everything = stack_view.all("authorization:RoleAssignment")
    # The Application Gateway's own identity reads its certificate (tests/infra/
    # test_ingress.py) and the deployer's are checked below; every other assignment
    # belongs to a site.
    gateway_grants = [a for a in everything if a.name == "gateway-key-vault-secrets-user"]
    assert len(gateway_grants) == len(stack_view.all("network:ApplicationGateway"))
    assignments = [a for a in everything
                   if a not in gateway_grants and not a.name.startswith("deployer-")]
    assert len(assignments) == 2  # the site identity's two, whatever the number of sites
    roles = {a.inputs["roleDefinitionId"].rsplit("/", 1)[1] for a in assignments}
    assert roles == {STORAGE_BLOB_DATA_CONTRIBUTOR, KEY_VAULT_SECRETS_USER}
    for assignment in stack_view.all("authorization:RoleAssignment"):
        inputs = assignment.inputs
        assert inputs["principalType"] == "ServicePrincipal"
        assert re.fullmatch(r"[0-9a-f-]{36}", inputs["roleAssignmentName"])
        # A new principal replaces the assignment under the same name: delete it first.
        assert assignment.delete_before_replace
        # Never a resource group or subscription: one resource each.
        assert "/providers/" in inputs["scope"]
    for assignment in assignments:
        inputs = assignment.inputs
        role = inputs["roleDefinitionId"].rsplit("/", 1)[1]
        if role == STORAGE_BLOB_DATA_CONTRIBUTOR:
            assert inputs["scope"].endswith("/blobServices/default/containers/photos")
            assert container_id in assignment.depends_on
        else:
            assert re.search(r"/providers/Microsoft\.KeyVault/vaults/[^/]+$", inputs["scope"])
    principals = {a.inputs["principalId"] for a in assignments}
    assert principals == {stack_view.run.outputs["appPrincipalId"]}
    everything = stack_view.all("authorization:RoleAssignment")
    assert len({a.inputs["roleAssignmentName"] for a in everything}) == len(everything)


def test_the_deployer_reads_only_the_package_and_deploys_only_to_the_app(stack_view):
    from infra.deployer import (
        STORAGE_BLOB_DATA_READER,
        STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR,
        WEBSITE_CONTRIBUTOR,
    )

    grants = {a.name: a.inputs for a in stack_view.all("authorization:RoleAssignment")
              if a.name.startswith("deployer-")}
    # In a subnet the scripts also need the file-data role on their own storage account.
    in_subnet = {"deployer-script-files"} if stack_view.tier != "basic" else set()
    assert set(grants) == {"deployer-package-reader", "deployer-website-contributor", *in_subnet}
    if in_subnet:
        files = grants["deployer-script-files"]
        assert files["roleDefinitionId"].endswith(STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR)
        assert files["scope"] == stack_view.one("storage:StorageAccount",
                                                "deployer-storage").arm_id
    reader, contributor = grants["deployer-package-reader"], grants["deployer-website-contributor"]
    assert reader["roleDefinitionId"].endswith(STORAGE_BLOB_DATA_READER)
    assert reader["scope"].endswith("/blobServices/default/containers/packages")
    assert contributor["roleDefinitionId"].endswith(WEBSITE_CONTRIBUTOR)
    assert contributor["scope"] == stack_view.one("web:WebApp").arm_id


def test_monitoring_reaches_log_analytics_and_alerts_by_email(stack_view):
    workspace = stack_view.one("operationalinsights:Workspace")
    insights = stack_view.one("applicationinsights:Component").inputs
    assert insights["ingestionMode"] == "LogAnalytics"
    assert insights["workspaceResourceId"].endswith(
        "/workspaces/" + workspace.inputs["workspaceName"])
    site_diagnostics = [d for d in stack_view.all("monitor:DiagnosticSetting")
                        if d.name.startswith("diag-site-")]
    assert len(site_diagnostics) == len(stack_view.sites())
    site_ids = set()
    for setting in site_diagnostics:
        categories = {log["category"] for log in setting.inputs["logs"]}
        assert categories == {"AppServiceHTTPLogs", "AppServiceConsoleLogs", "AppServiceAppLogs"}
        site_ids.add(setting.inputs["resourceUri"])
    # Each site's logs (app and slot alike) go to this stack's workspace.
    app_name = stack_view.run.outputs["appName"]
    expected_sites = {f"/sites/{app_name}"} | (
        {f"/sites/{app_name}/slots/staging"} if stack_view.tier != "basic" else set())
    assert {uri[uri.index("/sites/"):] for uri in site_ids} == expected_sites
    workspace_suffix = "/workspaces/" + workspace.inputs["workspaceName"]
    for setting in stack_view.all("monitor:DiagnosticSetting"):
        assert setting.inputs["workspaceId"].endswith(workspace_suffix)
    alerts = {a.inputs["criteria"]["allOf"][0]["metricName"]
              for a in stack_view.all("monitor:MetricAlert")}
    assert alerts == {"Http5xx", "HealthCheckStatus", "HttpResponseTime"}
    group = stack_view.one("monitor:ActionGroup").inputs
    assert group["emailReceivers"][0]["emailAddress"] == "alerts@example.com"
    for alert in stack_view.all("monitor:MetricAlert"):
        assert alert.inputs["actions"][0]["actionGroupId"].endswith(
            "/actionGroups/" + group["actionGroupName"])
        # Alerts watch the production app (the slot is a staging area, not what users hit).
        (scope,) = alert.inputs["scopes"]
        assert scope.endswith(f"/sites/{app_name}")


def test_stack_outputs(stack_view):
    outputs = stack_view.run.outputs
    app = stack_view.one("web:WebApp").inputs
    assert outputs["appName"] == app["name"]
    assert outputs["resourceGroupName"] == app["resourceGroupName"]
    assert outputs["defaultSiteUrl"].startswith(f"https://{app['name']}.")
    if stack_view.all("network:ApplicationGateway"):
        # Users come in through the gateway: its public name is the site's URL.
        assert outputs["siteUrl"].endswith(".cloudapp.azure.com")
    else:
        assert outputs["siteUrl"] == outputs["defaultSiteUrl"]
    assert outputs["databaseHost"].endswith(".postgres.database.azure.com")
    assert re.fullmatch(r"[0-9a-f-]{36}", outputs["appPrincipalId"])


def test_no_input_or_output_carries_the_generated_secret(stack_view):
    """The mocks hand the program a known password; it may only travel sealed."""
    password = stack_view.one("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 32
    generated = mock_password(password.name, password.inputs["length"])
    everything = json.dumps([r.inputs for r in stack_view.run.resources]) + json.dumps(
        stack_view.run.outputs)
    assert generated not in everything
    for site in stack_view.sites():
        assert SECRET not in stack_view.settings(site).values()
