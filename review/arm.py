"""Render a stack's azure-native resources as an ARM template, so ARM scanners (checkov) read it.

Inputs captured under the mocks already carry ARM's camelCase property names: azure-native
flattens ARM's `properties` envelope into the resource's inputs and adds the URL path parameters
(resource group, parent names). Rendering therefore means: put the envelope keys (location, kind,
sku, identity...) at the top, rebuild the ARM name from the path parameters, drop the resource
group, and put everything else back under `properties`.

The API version comes from the installed SDK (each resource module states the Azure REST API
version it was generated from); the ARM resource type is the one thing the Python SDK does not
carry, hence the small `ARM_TYPES` table below.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from review.model import Resource

TEMPLATE_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
ENVELOPE_KEYS = frozenset(
    {"location", "kind", "sku", "identity", "tags", "zones", "extendedLocation", "plan"}
)
PATH_PARAMETERS = frozenset({"resourceGroupName"})
PROVIDER_PREFIX = "azure-native:"


@dataclass(frozen=True)
class ArmType:
    """How one azure-native type maps to ARM.

    name: the segments of the ARM name; "=x" is the literal x, anything else an input key
    (the last one falls back to the Pulumi logical name: azure-native auto-names it).
    scope: the input holding the scope of an extension resource (role assignments...).
    keep: input keys that look like envelope keys or path names but live under `properties`.
    drop: inputs that only repeat the name in the request body.
    rename: inputs the SDK renamed (the spec's x-ms-client-name) -> their ARM property name.
    """

    type: str
    name: tuple[str, ...]
    scope: str | None = None
    keep: frozenset[str] = field(default_factory=frozenset)
    drop: frozenset[str] = field(default_factory=frozenset)
    rename: Mapping[str, str] = field(default_factory=dict)


def _t(arm_type: str, *name: str, **options: Any) -> ArmType:
    for key in ("keep", "drop"):
        options[key] = frozenset(options.get(key, ()))
    return ArmType(arm_type, name, **options)


ARM_TYPES: Mapping[str, ArmType] = {
    "resources:ResourceGroup": _t("Microsoft.Resources/resourceGroups", "resourceGroupName"),
    "web:AppServicePlan": _t("Microsoft.Web/serverfarms", "name"),
    "web:AppServiceEnvironment": _t("Microsoft.Web/hostingEnvironments", "name"),
    "web:WebApp": _t("Microsoft.Web/sites", "name"),
    "web:WebAppSlot": _t("Microsoft.Web/sites/slots", "name", "slot"),
    "web:WebAppFtpAllowed": _t("Microsoft.Web/sites/basicPublishingCredentialsPolicies",
                               "name", "=ftp"),
    "web:WebAppScmAllowed": _t("Microsoft.Web/sites/basicPublishingCredentialsPolicies",
                               "name", "=scm"),
    "web:WebAppFtpAllowedSlot": _t("Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies",
                                   "name", "slot", "=ftp"),
    "web:WebAppScmAllowedSlot": _t("Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies",
                                   "name", "slot", "=scm"),
    "web:WebAppSwiftVirtualNetworkConnection": _t("Microsoft.Web/sites/networkConfig",
                                                  "name", "=virtualNetwork"),
    "web:WebAppSwiftVirtualNetworkConnectionSlot": _t("Microsoft.Web/sites/slots/networkConfig",
                                                      "name", "slot", "=virtualNetwork"),
    "web:WebAppSlotConfigurationNames": _t("Microsoft.Web/sites/config", "name",
                                           "=slotConfigNames"),
    "web:WebAppApplicationSettings": _t("Microsoft.Web/sites/config", "name", "=appsettings"),
    "web:WebAppApplicationSettingsSlot": _t("Microsoft.Web/sites/slots/config", "name", "slot",
                                            "=appsettings"),
    "web:WebAppDiagnosticLogsConfiguration": _t("Microsoft.Web/sites/config", "name", "=logs"),
    "web:WebAppHostNameBinding": _t("Microsoft.Web/sites/hostNameBindings", "name", "hostName"),
    "web:Certificate": _t("Microsoft.Web/certificates", "name"),
    "storage:StorageAccount": _t("Microsoft.Storage/storageAccounts", "accountName",
                                 rename={"networkRuleSet": "networkAcls",
                                         "enableHttpsTrafficOnly": "supportsHttpsTrafficOnly"}),
    "storage:BlobServiceProperties": _t("Microsoft.Storage/storageAccounts/blobServices",
                                        "accountName", "=default", drop={"blobServicesName"}),
    "storage:BlobContainer": _t("Microsoft.Storage/storageAccounts/blobServices/containers",
                                "accountName", "=default", "containerName"),
    "keyvault:Vault": _t("Microsoft.KeyVault/vaults", "vaultName"),
    "keyvault:Secret": _t("Microsoft.KeyVault/vaults/secrets", "vaultName", "secretName"),
    "dbforpostgresql:Server": _t("Microsoft.DBforPostgreSQL/flexibleServers", "serverName"),
    "dbforpostgresql:Database": _t("Microsoft.DBforPostgreSQL/flexibleServers/databases",
                                   "serverName", "databaseName"),
    "dbforpostgresql:FirewallRule": _t("Microsoft.DBforPostgreSQL/flexibleServers/firewallRules",
                                       "serverName", "firewallRuleName"),
    "dbforpostgresql:Administrator": _t("Microsoft.DBforPostgreSQL/flexibleServers/administrators",
                                        "serverName", "objectId"),
    "dbforpostgresql:AdministratorsMicrosoftEntra": _t(
        "Microsoft.DBforPostgreSQL/flexibleServers/administrators", "serverName", "objectId"),
    "dbforpostgresql:Configuration": _t("Microsoft.DBforPostgreSQL/flexibleServers/configurations",
                                        "serverName", "configurationName"),
    "network:VirtualNetwork": _t("Microsoft.Network/virtualNetworks", "virtualNetworkName"),
    "network:Subnet": _t("Microsoft.Network/virtualNetworks/subnets",
                         "virtualNetworkName", "subnetName", drop={"name"}),
    "network:NetworkSecurityGroup": _t("Microsoft.Network/networkSecurityGroups",
                                       "networkSecurityGroupName"),
    "network:SecurityRule": _t("Microsoft.Network/networkSecurityGroups/securityRules",
                               "networkSecurityGroupName", "securityRuleName", drop={"name"}),
    "network:PrivateEndpoint": _t("Microsoft.Network/privateEndpoints", "privateEndpointName"),
    "network:PrivateDnsZoneGroup": _t("Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
                                      "privateEndpointName", "privateDnsZoneGroupName",
                                      drop={"name"}),
    "privatedns:PrivateZone": _t("Microsoft.Network/privateDnsZones", "privateZoneName"),
    "privatedns:VirtualNetworkLink": _t("Microsoft.Network/privateDnsZones/virtualNetworkLinks",
                                        "privateZoneName", "virtualNetworkLinkName"),
    # The record type is part of the ARM type (privateDnsZones/A, /CNAME...): see arm_type().
    "privatedns:PrivateRecordSet": _t("Microsoft.Network/privateDnsZones/{recordType}",
                                      "privateZoneName", "relativeRecordSetName",
                                      drop={"recordType"}),
    "monitor:AutoscaleSetting": _t("Microsoft.Insights/autoscalesettings",
                                   "autoscaleSettingName", keep={"name"}),
    "monitor:ActionGroup": _t("Microsoft.Insights/actionGroups", "actionGroupName"),
    "monitor:MetricAlert": _t("Microsoft.Insights/metricAlerts", "ruleName"),
    "monitor:DiagnosticSetting": _t("Microsoft.Insights/diagnosticSettings", "name",
                                    scope="resourceUri"),
    "applicationinsights:Component": _t("Microsoft.Insights/components", "resourceName"),
    "operationalinsights:Workspace": _t("Microsoft.OperationalInsights/workspaces",
                                        "workspaceName", keep={"sku"}),
    "authorization:RoleAssignment": _t("Microsoft.Authorization/roleAssignments",
                                       "roleAssignmentName", scope="scope"),
}


class UnmappedTypeError(KeyError):
    def __str__(self) -> str:
        token = self.args[0]
        return (f"no ARM mapping for {token!r}: add its ARM resource type to ARM_TYPES in "
                "review/arm.py")


def is_azure_native(resource_type: str) -> bool:
    return resource_type.startswith(PROVIDER_PREFIX)


def mapping_for(resource_type: str) -> ArmType:
    key = resource_type.removeprefix(PROVIDER_PREFIX)
    if key not in ARM_TYPES:
        raise UnmappedTypeError(resource_type)
    return ARM_TYPES[key]


@cache
def api_version(resource_type: str) -> str:
    """The Azure REST API version the installed SDK's resource class was generated from."""
    module_name, class_name = resource_type.removeprefix(PROVIDER_PREFIX).split(":")
    module = importlib.import_module(f"pulumi_azure_native.{module_name}")
    source = inspect.getsource(inspect.getmodule(getattr(module, class_name)))
    found = re.search(r"Uses Azure REST API version ([0-9]{4}-[0-9]{2}-[0-9]{2}[\w-]*)", source)
    if not found:
        raise LookupError(f"{resource_type}: the SDK does not state its Azure REST API version")
    return found.group(1)


def arm_name(mapping: ArmType, resource: Resource) -> str:
    segments = []
    for index, key in enumerate(mapping.name):
        if key.startswith("="):
            segments.append(key[1:])
            continue
        value = resource.inputs.get(key)
        if value is None and index == len(mapping.name) - 1:
            value = resource.name
        if value is None:
            raise ValueError(f"{resource.ref}: input {key!r} is needed to name the ARM resource")
        segments.append(str(value))
    return "/".join(segments)


def arm_type(mapping: ArmType, resource: Resource) -> str:
    return mapping.type.format(**{k: resource.inputs.get(k, "") for k in ("recordType",)})


def render_resource(resource: Resource, skips: list[str] | None = None) -> dict[str, Any]:
    mapping = mapping_for(resource.type)
    not_properties = (set(mapping.name) | PATH_PARAMETERS | mapping.drop) - mapping.keep
    if mapping.scope:
        not_properties.add(mapping.scope)
    rendered: dict[str, Any] = {
        "type": arm_type(mapping, resource),
        "apiVersion": api_version(resource.type),
        "name": arm_name(mapping, resource),
    }
    properties: dict[str, Any] = {}
    for key, value in resource.inputs.items():
        if key in not_properties:
            continue
        if key in ENVELOPE_KEYS and key not in mapping.keep:
            rendered[key] = value
        elif key == "properties" and isinstance(value, Mapping):
            properties.update(value)
        else:
            properties[mapping.rename.get(key, key)] = value
    if mapping.scope and resource.inputs.get(mapping.scope):
        rendered["scope"] = resource.inputs[mapping.scope]
    if properties:
        rendered["properties"] = properties
    # checkov reads suppressions from the resource's metadata: "CKV_ID: justification".
    rendered["metadata"] = {"pulumi": resource.ref, **({"checkov": skips} if skips else {})}
    return rendered


def render_template(resources: list[Resource],
                    skips_for: Any = lambda resource: []) -> dict[str, Any]:
    """An ARM deployment template of every azure-native resource (other providers have no ARM)."""
    return {
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "resources": [
            render_resource(r, skips_for(r)) for r in resources if is_azure_native(r.type)
        ],
    }
