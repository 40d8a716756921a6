"""The package deploy and the database-role step as declared under mocks (infra/deployer.py)."""

from __future__ import annotations

import shlex
import uuid

from infra.deployer import STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR, WEBSITE_CONTRIBUTOR
from infra.site_package import PackageRef
from review.mocks import SECRET, run_stack


def _script(view, key: str):
    return view.one("resources:AzureCliScript", f"script-{key}")


def _env(script) -> dict[str, str]:
    return {pair["name"]: pair["value"] for pair in script.inputs["environmentVariables"]}


def _deploys(content: str) -> list[dict[str, str]]:
    """The `az webapp deploy` commands in a script, as flag -> value."""
    found = []
    for line in content.splitlines():
        args = shlex.split(line.strip())
        if args[:3] == ["az", "webapp", "deploy"]:
            found.append(dict(zip(args[3::2], args[4::2], strict=True)))
    return found


def test_deploy_runs_inside_azure_and_targets_the_staging_slot_where_there_is_one(stack_view):
    """No az CLI or network on the deployer: a deployment script as the deployer identity."""
    assert not [c.name for c in stack_view.all("local:Command") if c.inputs.get("create")]
    script = _script(stack_view, "deploy")
    deploy_target, *first_release = _deploys(script.inputs["scriptContent"])
    assert deploy_target["--name"] == stack_view.run.outputs["appName"]
    assert deploy_target["--resource-group"] == stack_view.run.outputs["resourceGroupName"]
    assert deploy_target["--type"] == "zip"
    assert deploy_target["--clean"] == "true"  # no file of an older release stays importable
    assert deploy_target["--src-path"] == "package.zip"  # downloaded from the deployer's blob
    has_slot = stack_view.tier != "basic"
    assert deploy_target.get("--slot") == ("staging" if has_slot else None)
    # With a slot, the very first release also fills the empty production app.
    assert [d.get("--slot") for d in first_release] == ([None] if has_slot else [])
    target = stack_view.one("web:WebAppSlot" if has_slot else "web:WebApp")
    assert target.urn in script.depends_on
    identity = stack_view.one("managedidentity:UserAssignedIdentity", "deployer-identity")
    assert script.inputs["identity"]["type"] == "UserAssigned"
    assert script.inputs["identity"]["userAssignedIdentities"] == [
        identity.arm_id]
    blob = stack_view.one("storage:Blob", "deployer-package")
    env = _env(script)
    assert env["PACKAGE_BLOB"] == blob.inputs["blobName"]
    assert env["PACKAGE_SHA256"] == stack_view.run.outputs["packageSha256"]
    assert blob.inputs["source"]["path"].endswith("dist/webapp-py3.11.zip")


def test_scripts_run_in_the_vnets_delegated_subnet_or_on_azures_network_in_dev(stack_view):
    for key in ("database-roles", "deploy"):
        settings = _script(stack_view, key).inputs["containerSettings"]
        if stack_view.tier == "basic":
            assert "subnetIds" not in settings
            continue
        (subnet,) = settings["subnetIds"]
        assert subnet["id"].endswith("/subnets/snet-deployment-scripts")
        delegated = stack_view.one("network:Subnet", "snet-deployment-scripts")
        assert delegated.inputs["delegations"][0]["serviceName"] == \
            "Microsoft.ContainerInstance/containerGroups"
        assert delegated.inputs["defaultOutboundAccess"] is True


def test_the_script_storage_is_set_up_as_the_private_network_page_says(stack_view):
    """Microsoft Learn, "Access a private virtual network from a Bicep deployment script": the
    script identity holds Storage File Data Privileged Contributor on the account, the subnet
    has the Microsoft.Storage service endpoint, trusted Azure services pass; and a script's
    own account keeps shared keys ("Use an existing storage account")."""
    account = stack_view.one("storage:StorageAccount", "deployer-storage")
    assert account.inputs["allowSharedKeyAccess"] is True
    assert account.inputs["networkRuleSet"]["bypass"] == "AzureServices"
    file_role = STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR
    file_roles = [g for g in stack_view.all("authorization:RoleAssignment")
                  if g.inputs["roleDefinitionId"].endswith(file_role)]
    if stack_view.tier == "basic":  # no subnet: the page does not apply
        assert file_roles == []
        return
    (role,) = file_roles
    assert role.inputs["scope"] == account.arm_id
    deployer = stack_view.one("authorization:RoleAssignment", "deployer-package-reader")
    assert role.inputs["principalId"] == deployer.inputs["principalId"]
    subnet = stack_view.one("network:Subnet", "snet-deployment-scripts")
    assert subnet.inputs["serviceEndpoints"] == [{"service": "Microsoft.Storage"}]
    for key in ("database-roles", "deploy"):
        assert role.urn in _script(stack_view, key).depends_on  # granted before any run


def test_deploy_waits_for_the_identity_wiring_and_the_sql_step(stack_view):
    deploy = _script(stack_view, "deploy")
    slot = "staging" if stack_view.tier != "basic" else "app"
    waits_for = stack_view.depends_on(deploy)
    assert {"app-blob-data-contributor", "app-key-vault-secrets-user",  # the site identity's
            "script-database-roles", f"{slot}-scm-basic-auth", "deployer-website-contributor",
            "deployer-package-reader", "deployer-package"} <= waits_for
    if stack_view.tier != "basic":
        assert {"pe-dns-postgres", "pe-dns-vault", "pe-dns-blob"} <= waits_for
    if stack_view.tier == "isolated":
        assert {"dns-ase-wildcard", "dns-ase-wildcard.scm"} <= waits_for


def test_the_deployer_may_deploy_to_the_app_only(stack_view):
    grant = stack_view.one("authorization:RoleAssignment", "deployer-website-contributor")
    assert grant.inputs["scope"] == stack_view.one("web:WebApp").arm_id
    assert grant.inputs["roleDefinitionId"].endswith(WEBSITE_CONTRIBUTOR)


def test_deploy_is_triggered_by_the_package_hash(basic_view):
    def deploy_of(run):
        return next(r.inputs for r in run.resources if r.name == "script-deploy")

    offline = deploy_of(basic_view.run)
    rebuilt = PackageRef(path="dist/webapp-py3.11.zip", sha256="b" * 64)
    redeploy = deploy_of(run_stack(basic_view.stack, package=rebuilt))
    assert redeploy["forceUpdateTag"] != offline["forceUpdateTag"]
    # Same script, same target: the hash alone is what makes ARM run the deploy again.
    assert redeploy["scriptContent"] == offline["scriptContent"]
    assert redeploy["forceUpdateTag"] == deploy_of(
        run_stack(basic_view.stack, package=rebuilt))["forceUpdateTag"]


def test_the_script_storage_key_travels_sealed(stack_view):
    for key in ("database-roles", "deploy"):
        settings = _script(stack_view, key).inputs["storageAccountSettings"]
        assert settings["storageAccountKey"] == SECRET
        assert settings["storageAccountName"] == stack_view.one(
            "storage:StorageAccount", "deployer-storage").inputs["accountName"]


# --- the database role step --------------------------------------------------------------------

def test_the_site_identity_gets_one_database_role_for_every_site(stack_view):
    script = _script(stack_view, "database-roles")
    content = script.inputs["scriptContent"]
    psql_lines = [line for line in content.splitlines() if "psql --no-psqlrc" in line]
    assert len(psql_lines) == 1  # the app and its slot run as one identity, so one role
    principal = stack_view.run.outputs["appPrincipalId"]
    for site in stack_view.sites():
        user = stack_view.settings(site)["AZURE_POSTGRESQL_USER"]
        assert f"role={user} " in psql_lines[0] and f"object_id={principal} " in psql_lines[0]
    assert "pgaadauth_create_principal_with_oid" in content
    assert "oss-rdbms" in content
    env = _env(script)
    deployer = stack_view.one("managedidentity:UserAssignedIdentity", "deployer-identity")
    assert env == {"PGHOST": stack_view.run.outputs["databaseHost"], "PGDATABASE": "postgres",
                   "PGSSLMODE": "require", "PGUSER": deployer.inputs["resourceName"]}
    waits_for = stack_view.depends_on(script)
    assert {"postgres-deployer-admin", "postgres-database"} <= waits_for
    if stack_view.tier != "basic":
        assert "pe-dns-postgres" in waits_for


def test_the_deployer_is_a_postgres_admin_through_arm(stack_view):
    admin = stack_view.one("dbforpostgresql:AdministratorsMicrosoftEntra",
                           "postgres-deployer-admin")
    deployer = stack_view.one("managedidentity:UserAssignedIdentity", "deployer-identity")
    assert admin.inputs["principalType"] == "servicePrincipal"
    assert admin.inputs["principalName"] == deployer.inputs["resourceName"]
    # One change at a time on a flexible server: after the group admin, database and settings.
    assert {"postgres-entra-admin", "postgres-ssl-min-protocol-version"} <= \
        stack_view.depends_on(admin)
    if stack_view.tier != "basic":  # and the private endpoint's connection comes after it
        assert "postgres-deployer-admin" in stack_view.depends_on(
            stack_view.one("network:PrivateEndpoint", "pe-postgres"))


def test_a_new_identity_or_sql_script_reruns_the_role_step(basic_view):
    from infra import db_role

    def tag(run):
        return next(r.inputs["forceUpdateTag"] for r in run.resources
                    if r.name == "script-database-roles")

    other = run_stack(basic_view.stack, subscription_id=str(uuid.uuid4()))
    assert tag(other) != tag(basic_view.run)  # other identities (their principal ids)
    assert db_role.SQL_SCRIPT.is_file()
