"""The one resource-type table (review/resource_types.py): ids, ARM types and diagram roles."""

from __future__ import annotations

import importlib

import pytest

from review import arm, diagram
from review.mocks import SUBSCRIPTION_ID
from review.resource_types import (
    RESOURCE_TYPES,
    UnmappedTypeError,
    arm_id,
    diagram_roles,
    resource_type,
)

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"


@pytest.mark.parametrize("key", sorted(RESOURCE_TYPES))
def test_every_listed_type_exists_in_the_installed_sdk(key):
    """A typo or a type the SDK dropped is caught here, not at `pulumi up`."""
    module, name = key.split(":")
    assert hasattr(importlib.import_module(f"pulumi_azure_native.{module}"), name), key
    if RESOURCE_TYPES[key].in_arm:  # a blob is data plane: no ARM API version to render with
        assert arm.api_version(f"azure-native:{key}")


@pytest.mark.parametrize("key", sorted(RESOURCE_TYPES))
def test_every_entry_names_each_level_of_its_arm_type(key):
    entry = RESOURCE_TYPES[key]
    namespace, *levels = entry.arm_type.split("/")
    assert namespace.startswith("Microsoft."), key
    assert len(levels) == len(entry.name), f"{key}: {entry.arm_type} vs {entry.name}"
    assert entry.role is None or entry.role in diagram.TITLES, key


def test_a_type_missing_from_the_table_is_an_error_naming_the_table():
    with pytest.raises(UnmappedTypeError, match=r"review/resource_types\.py"):
        arm_id("azure-native:cdn:Profile", {"profileName": "cdn", "resourceGroupName": "rg"},
               SUB)
    with pytest.raises(UnmappedTypeError):
        resource_type("azure-native:cdn:Profile")


@pytest.mark.parametrize("token", [
    "command:local:Command",
    "random:index/randomPassword:RandomPassword",
    "random:index/randomString:RandomString",
    "time:index/sleep:Sleep",
    "restaurant-review:app:Site",
])
def test_non_azure_types_have_no_arm_id(token):
    assert arm_id(token, {"name": "x"}, SUB) is None


@pytest.mark.parametrize(("token", "inputs", "expected"), [
    ("azure-native:resources:ResourceGroup", {"resourceGroupName": "rg"}, RG),
    ("azure-native:web:WebAppSlot", {"resourceGroupName": "rg", "name": "app", "slot": "staging"},
     f"{RG}/providers/Microsoft.Web/sites/app/slots/staging"),
    ("azure-native:web:WebAppScmAllowedSlot",
     {"resourceGroupName": "rg", "name": "app", "slot": "staging"},
     f"{RG}/providers/Microsoft.Web/sites/app/slots/staging/"
     "basicPublishingCredentialsPolicies/scm"),
    ("azure-native:storage:BlobContainer",
     {"resourceGroupName": "rg", "accountName": "st", "containerName": "photos"},
     f"{RG}/providers/Microsoft.Storage/storageAccounts/st/blobServices/default/"
     "containers/photos"),
    ("azure-native:privatedns:PrivateRecordSet",
     {"resourceGroupName": "rg", "privateZoneName": "z.net", "recordType": "A",
      "relativeRecordSetName": "*"},
     f"{RG}/providers/Microsoft.Network/privateDnsZones/z.net/A/*"),
    ("azure-native:authorization:RoleAssignment",
     {"scope": f"{RG}/providers/Microsoft.KeyVault/vaults/kv", "roleAssignmentName": "g"},
     f"{RG}/providers/Microsoft.KeyVault/vaults/kv/providers/Microsoft.Authorization/"
     "roleAssignments/g"),
])
def test_arm_ids_follow_arm_types_and_name_segments(token, inputs, expected):
    assert arm_id(token, inputs, SUB) == expected


def test_a_missing_name_input_is_named_unless_a_logical_name_stands_in():
    inputs = {"resourceGroupName": "rg"}
    with pytest.raises(ValueError, match="'vaultName'"):
        arm_id("azure-native:keyvault:Vault", inputs, SUB)
    assert arm_id("azure-native:keyvault:Vault", inputs, SUB, logical_name="kv") == (
        f"{RG}/providers/Microsoft.KeyVault/vaults/kv")


def test_diagram_roles_come_from_the_table():
    assert diagram_roles() == diagram.ROLES
    assert diagram.ROLES["azure-native:web:WebApp"] == "app"


def test_snapshot_ids_are_the_ids_the_mocks_hand_the_program(all_resources):
    """The mocks' ids and the snapshots' armId are the same function of the inputs."""
    for resource in all_resources:
        expected = arm_id(resource.type, resource.inputs, SUBSCRIPTION_ID, resource.name)
        assert resource.arm_id == expected, resource.ref
        if resource.type.startswith("azure-native:"):
            assert resource.arm_id.startswith(f"/subscriptions/{SUBSCRIPTION_ID}/"), resource.ref
