"""ARM rendering: azure-native types and inputs -> ARM resources checkov understands."""

from __future__ import annotations

import json
import re

import pytest

from review import arm
from review.model import normalize


def render_one(captured_resource) -> dict:
    return arm.render_resource(normalize([captured_resource])[0])


def test_web_app_envelope_name_and_properties(captured):
    rendered = render_one(captured("azure-native:web:WebApp", "web-app", {
        "name": "app-rr-prod", "resourceGroupName": "rg", "location": "westeurope",
        "kind": "app,linux", "identity": {"type": "SystemAssigned"}, "httpsOnly": True,
        "siteConfig": {"minTlsVersion": "1.2", "ftpsState": "Disabled"},
    }))
    assert rendered["type"] == "Microsoft.Web/sites"
    assert rendered["name"] == "app-rr-prod"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", rendered["apiVersion"])
    assert {k: rendered[k] for k in ("location", "kind", "identity")} == {
        "location": "westeurope", "kind": "app,linux", "identity": {"type": "SystemAssigned"}}
    assert rendered["properties"] == {
        "httpsOnly": True, "siteConfig": {"minTlsVersion": "1.2", "ftpsState": "Disabled"}}
    assert rendered["metadata"] == {"pulumi": "azure-native:web:WebApp::web-app"}


def test_child_resource_names_carry_their_parents(captured):
    slot = render_one(captured("azure-native:web:WebAppSlot", "staging",
                               {"name": "app", "slot": "staging", "resourceGroupName": "rg"}))
    assert (slot["type"], slot["name"]) == ("Microsoft.Web/sites/slots", "app/staging")
    ftp = render_one(captured("azure-native:web:WebAppFtpAllowedSlot", "ftp",
                              {"name": "app", "slot": "staging", "allow": False}))
    assert ftp["name"] == "app/staging/ftp" and ftp["properties"] == {"allow": False}
    container = render_one(captured("azure-native:storage:BlobContainer", "photos",
                                    {"accountName": "st", "containerName": "photos"}))
    assert container["name"] == "st/default/photos"


def test_record_type_and_sdk_renames_become_arm_names(captured):
    record = render_one(captured("azure-native:privatedns:PrivateRecordSet", "wildcard", {
        "privateZoneName": "ase.appserviceenvironment.net", "relativeRecordSetName": "*",
        "recordType": "A", "aRecords": [{"ipv4Address": "10.0.0.4"}], "ttl": 3600}))
    assert record["type"] == "Microsoft.Network/privateDnsZones/A"
    assert record["name"] == "ase.appserviceenvironment.net/*"
    assert record["properties"] == {"aRecords": [{"ipv4Address": "10.0.0.4"}], "ttl": 3600}
    account = render_one(captured("azure-native:storage:StorageAccount", "storage", {
        "accountName": "st", "networkRuleSet": {"defaultAction": "Deny"},
        "enableHttpsTrafficOnly": True, "sku": {"name": "Standard_ZRS"}}))
    assert account["properties"] == {"networkAcls": {"defaultAction": "Deny"},
                                      "supportsHttpsTrafficOnly": True}
    assert account["sku"] == {"name": "Standard_ZRS"}


def test_extension_resources_get_a_scope(captured):
    scope = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
    rendered = render_one(captured("azure-native:authorization:RoleAssignment", "ra", {
        "roleAssignmentName": "0f0e", "scope": scope, "principalType": "ServicePrincipal"}))
    assert rendered["scope"] == scope and rendered["name"] == "0f0e"
    assert rendered["properties"] == {"principalType": "ServicePrincipal"}


def test_vault_properties_envelope_is_merged(captured):
    rendered = render_one(captured("azure-native:keyvault:Vault", "kv", {
        "vaultName": "kv", "location": "westeurope",
        "properties": {"enableRbacAuthorization": True, "sku": {"name": "standard"}}}))
    assert rendered["properties"] == {"enableRbacAuthorization": True, "sku": {"name": "standard"}}
    assert "sku" not in rendered


def test_unmapped_type_names_the_table(captured):
    with pytest.raises(arm.UnmappedTypeError, match=r"review/resource_types\.py"):
        render_one(captured("azure-native:cdn:Profile", "cdn"))


def test_non_azure_resources_are_left_out(captured):
    template = arm.render_template(normalize([
        captured("random:index/randomPassword:RandomPassword", "key"),
        captured("azure-native:resources:ResourceGroup", "rg", {"resourceGroupName": "rg"}),
    ]))
    assert [r["type"] for r in template["resources"]] == ["Microsoft.Resources/resourceGroups"]
    assert template["$schema"].endswith("deploymentTemplate.json#")


def test_api_versions_come_from_the_sdk():
    from pathlib import Path

    import pulumi_azure_native.web.web_app as web_app_module

    source = Path(web_app_module.__file__).read_text(encoding="utf-8")
    assert f"Uses Azure REST API version {arm.api_version('azure-native:web:WebApp')}." in source


def test_committed_arm_snapshots_cover_every_azure_resource(rendered, resources_by_stack):
    for stack, resources in resources_by_stack.items():
        template = json.loads(rendered[f"{stack}.arm.json"])
        azure = [r for r in resources
                 if arm.is_azure_native(r.type) and arm.mapping_for(r.type).in_arm]
        assert [r["metadata"]["pulumi"] for r in template["resources"]] == [r.ref for r in azure]
        # Data-plane objects (the package blob) have an id but no ARM template entry.
        assert {r.type for r in resources if arm.is_azure_native(r.type)} - {
            r.type for r in azure} <= {"azure-native:storage:Blob"}
        assert all(r["type"].startswith("Microsoft.") for r in template["resources"])
