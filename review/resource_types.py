"""The one table of azure-native resource types the program uses, and what derives from it.

Each entry says how a Pulumi type token maps to Azure Resource Manager: its ARM resource type,
the inputs that make up its ARM name (and so its resource id), how its inputs are laid out in
an ARM template, and how the architecture diagram draws it. The mocks' resource ids
(review/mocks.py), the ARM renderer (review/arm.py) and the diagram (review/diagram.py) all read
this table, so adding a resource type to the program means adding one entry here.

Types from other providers (pulumi_command, random, tls, pulumiverse-time's Sleep) and the
program's own components have no ARM resource: `arm_id` returns None for them, the ARM renderer
leaves them out and the plan knows their replacing arguments (review/plan_rules.py). An azure-native
type missing from the table is an error (`UnmappedTypeError`) wherever it is met, never a silent
guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROVIDER_PREFIX = "azure-native:"
RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"


@dataclass(frozen=True)
class ResourceType:
    """How one azure-native type maps to ARM.

    arm_type: the ARM resource type; "{recordType}" is filled from the input of that name
        (private DNS record sets carry their record type in the ARM type).
    name: the segments of the ARM name; "=x" is the literal x, anything else an input key
        (the last one may fall back to the Pulumi logical name: azure-native auto-names it).
    scope: the input holding the scope of an extension resource (role assignments...).
    keep: input keys that look like envelope keys or path names but live under `properties`.
    drop: inputs that only repeat the name in the request body.
    rename: inputs the SDK renamed (the spec's x-ms-client-name) -> their ARM property name.
    role: how the diagram draws it (review/diagram.py TITLES); None: not a node of its own.
    in_arm: False for a data-plane object the provider manages through the service's own API
        (a blob): it has an id, but no place in an ARM template.
    """

    arm_type: str
    name: tuple[str, ...]
    scope: str | None = None
    keep: frozenset[str] = field(default_factory=frozenset)
    drop: frozenset[str] = field(default_factory=frozenset)
    rename: Mapping[str, str] = field(default_factory=dict)
    role: str | None = None
    in_arm: bool = True


def _t(arm_type: str, *name: str, **options: Any) -> ResourceType:
    for key in ("keep", "drop"):
        options[key] = frozenset(options.get(key, ()))
    return ResourceType(arm_type, name, **options)


_BASIC_AUTH = "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
_SLOT_BASIC_AUTH = "Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies"
_PG = "Microsoft.DBforPostgreSQL/flexibleServers"

# Keys are type tokens without the "azure-native:" prefix.
RESOURCE_TYPES: Mapping[str, ResourceType] = {
    "resources:ResourceGroup": _t(RESOURCE_GROUP_TYPE, "resourceGroupName"),
    "web:AppServicePlan": _t("Microsoft.Web/serverfarms", "name", role="plan"),
    "web:AppServiceEnvironment": _t("Microsoft.Web/hostingEnvironments", "name", role="ase"),
    "web:WebApp": _t("Microsoft.Web/sites", "name", role="app"),
    "web:WebAppSlot": _t("Microsoft.Web/sites/slots", "name", "slot", role="slot"),
    "web:WebAppFtpAllowed": _t(_BASIC_AUTH, "name", "=ftp"),
    "web:WebAppScmAllowed": _t(_BASIC_AUTH, "name", "=scm"),
    "web:WebAppFtpAllowedSlot": _t(_SLOT_BASIC_AUTH, "name", "slot", "=ftp"),
    "web:WebAppScmAllowedSlot": _t(_SLOT_BASIC_AUTH, "name", "slot", "=scm"),
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
                                         "enableHttpsTrafficOnly": "supportsHttpsTrafficOnly"},
                                 role="storage"),
    "storage:BlobServiceProperties": _t("Microsoft.Storage/storageAccounts/blobServices",
                                        "accountName", "=default", drop={"blobServicesName"}),
    "storage:BlobContainer": _t("Microsoft.Storage/storageAccounts/blobServices/containers",
                                "accountName", "=default", "containerName"),
    "storage:Blob": _t("Microsoft.Storage/storageAccounts/blobServices/containers/blobs",
                       "accountName", "=default", "containerName", "blobName", in_arm=False),
    "managedidentity:UserAssignedIdentity": _t(
        "Microsoft.ManagedIdentity/userAssignedIdentities", "resourceName", role="uai"),
    "resources:AzureCliScript": _t("Microsoft.Resources/deploymentScripts", "scriptName"),
    "keyvault:Vault": _t("Microsoft.KeyVault/vaults", "vaultName", role="keyvault"),
    "keyvault:Secret": _t("Microsoft.KeyVault/vaults/secrets", "vaultName", "secretName"),
    "dbforpostgresql:Server": _t(_PG, "serverName", role="postgres"),
    "dbforpostgresql:Database": _t(f"{_PG}/databases", "serverName", "databaseName"),
    "dbforpostgresql:FirewallRule": _t(f"{_PG}/firewallRules", "serverName", "firewallRuleName"),
    "dbforpostgresql:Administrator": _t(f"{_PG}/administrators", "serverName", "objectId"),
    "dbforpostgresql:AdministratorsMicrosoftEntra": _t(f"{_PG}/administrators",
                                                       "serverName", "objectId"),
    "dbforpostgresql:Configuration": _t(f"{_PG}/configurations", "serverName",
                                        "configurationName"),
    "network:VirtualNetwork": _t("Microsoft.Network/virtualNetworks", "virtualNetworkName",
                                 role="vnet"),
    "network:Subnet": _t("Microsoft.Network/virtualNetworks/subnets",
                         "virtualNetworkName", "subnetName", drop={"name"}, role="subnet"),
    "network:NetworkSecurityGroup": _t("Microsoft.Network/networkSecurityGroups",
                                       "networkSecurityGroupName"),
    "network:SecurityRule": _t("Microsoft.Network/networkSecurityGroups/securityRules",
                               "networkSecurityGroupName", "securityRuleName", drop={"name"}),
    "network:PrivateEndpoint": _t("Microsoft.Network/privateEndpoints", "privateEndpointName",
                                  role="endpoint"),
    "network:PrivateDnsZoneGroup": _t("Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
                                      "privateEndpointName", "privateDnsZoneGroupName",
                                      drop={"name"}),
    "network:PublicIPAddress": _t("Microsoft.Network/publicIPAddresses", "publicIpAddressName"),
    "network:ApplicationGateway": _t("Microsoft.Network/applicationGateways",
                                     "applicationGatewayName", role="gateway"),
    "network:WebApplicationFirewallPolicy": _t(
        "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies", "policyName",
        role="waf"),
    "network:VirtualNetworkPeering": _t("Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
                                        "virtualNetworkName", "virtualNetworkPeeringName",
                                        drop={"name"}),
    "privatedns:PrivateZone": _t("Microsoft.Network/privateDnsZones", "privateZoneName",
                                 role="dnszone"),
    "privatedns:VirtualNetworkLink": _t("Microsoft.Network/privateDnsZones/virtualNetworkLinks",
                                        "privateZoneName", "virtualNetworkLinkName"),
    "privatedns:PrivateRecordSet": _t("Microsoft.Network/privateDnsZones/{recordType}",
                                      "privateZoneName", "relativeRecordSetName",
                                      drop={"recordType"}),
    "monitor:AutoscaleSetting": _t("Microsoft.Insights/autoscalesettings",
                                   "autoscaleSettingName", keep={"name"}, role="autoscale"),
    "monitor:ActionGroup": _t("Microsoft.Insights/actionGroups", "actionGroupName"),
    "monitor:MetricAlert": _t("Microsoft.Insights/metricAlerts", "ruleName"),
    "monitor:DiagnosticSetting": _t("Microsoft.Insights/diagnosticSettings", "name",
                                    scope="resourceUri"),
    "applicationinsights:Component": _t("Microsoft.Insights/components", "resourceName",
                                        role="insights"),
    "operationalinsights:Workspace": _t("Microsoft.OperationalInsights/workspaces",
                                        "workspaceName", keep={"sku"}, role="workspace"),
    "authorization:RoleAssignment": _t("Microsoft.Authorization/roleAssignments",
                                       "roleAssignmentName", scope="scope"),
}


class UnmappedTypeError(KeyError):
    """An azure-native type the table does not describe."""

    def __str__(self) -> str:
        token = self.args[0]
        return (f"no entry for {token!r} in RESOURCE_TYPES (review/resource_types.py): add its "
                "ARM resource type and name segments there")


def is_azure_native(type_token: str) -> bool:
    return type_token.startswith(PROVIDER_PREFIX)


def resource_type(type_token: str) -> ResourceType:
    """The table entry of an azure-native type token; UnmappedTypeError when there is none."""
    key = type_token.removeprefix(PROVIDER_PREFIX)
    if not is_azure_native(type_token) or key not in RESOURCE_TYPES:
        raise UnmappedTypeError(type_token)
    return RESOURCE_TYPES[key]


def diagram_roles() -> dict[str, str]:
    """type token -> diagram role, for the types the diagram draws as nodes."""
    return {PROVIDER_PREFIX + key: entry.role
            for key, entry in RESOURCE_TYPES.items() if entry.role}


def arm_type(entry: ResourceType, inputs: Mapping[str, Any]) -> str:
    return entry.arm_type.format(**{k: inputs.get(k, "") for k in ("recordType",)})


def name_segments(entry: ResourceType, inputs: Mapping[str, Any],
                  logical_name: str | None = None) -> list[str]:
    """The ARM name's segments (parent names first); the last may fall back to logical_name."""
    segments = []
    for index, key in enumerate(entry.name):
        if key.startswith("="):
            segments.append(key[1:])
            continue
        value = inputs.get(key)
        if value is None and index == len(entry.name) - 1:
            value = logical_name
        if value is None:
            raise ValueError(f"{entry.arm_type}: input {key!r} is needed to name the ARM resource")
        segments.append(str(value))
    return segments


def arm_id(type_token: str, inputs: Mapping[str, Any], subscription_id: str,
           logical_name: str | None = None) -> str | None:
    """The ARM resource id a resource of `type_token` with these inputs has (or would have).

    None for types that are not Azure resources (other providers, components). logical_name
    names the resource when its own name input is missing (azure-native would auto-name it).
    """
    if not is_azure_native(type_token):
        return None
    entry = resource_type(type_token)
    names = name_segments(entry, inputs, logical_name)
    if entry.arm_type == RESOURCE_GROUP_TYPE:
        return f"/subscriptions/{subscription_id}/resourceGroups/{names[0]}"
    if entry.scope:
        scope = inputs.get(entry.scope)
        if not isinstance(scope, str) or not scope:
            raise ValueError(f"{type_token}: input {entry.scope!r} (its scope) is needed for an id")
    else:
        group = inputs.get("resourceGroupName")
        if not isinstance(group, str) or not group:
            raise ValueError(f"{type_token}: input 'resourceGroupName' is needed for an id")
        scope = f"/subscriptions/{subscription_id}/resourceGroups/{group}"
    namespace, *types = arm_type(entry, inputs).split("/")
    if len(types) != len(names):
        raise ValueError(f"{type_token}: ARM type {entry.arm_type!r} has {len(types)} levels "
                         f"but {len(names)} name segments")
    path = "/".join(f"{kind}/{name}" for kind, name in zip(types, names, strict=True))
    return f"{scope}/providers/{namespace}/{path}"
