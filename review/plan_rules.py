"""The offline plan's rule tables: what makes a change dangerous, what Azure can't change in
place, what lowers how well data survives, which inputs of a new resource a reviewer must see.

Each table is data with its reason (and, for the resilience rules, the documentation that says
so); review/plan_engine.py applies them and review/plan_render.py prints what they find.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# --- what makes a change dangerous --------------------------------------------------------------

# Losing one of these loses data (or the keys to it): replacing or deleting is never routine.
STATEFUL_TYPES = frozenset({
    "azure-native:dbforpostgresql:Server",
    "azure-native:dbforpostgresql:Database",
    "azure-native:storage:StorageAccount",
    "azure-native:storage:BlobContainer",
    "azure-native:keyvault:Vault",
    "azure-native:keyvault:Secret",
})
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"

# Every change to one of these (create, update, replace, delete) opens or closes a path in.
EXPOSURE_TYPES = frozenset({
    "azure-native:dbforpostgresql:FirewallRule",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:SecurityRule",
    "azure-native:network:PublicIPAddress",
    "azure-native:web:WebAppFtpAllowed",
    "azure-native:web:WebAppScmAllowed",
    "azure-native:web:WebAppFtpAllowedSlot",
    "azure-native:web:WebAppScmAllowedSlot",
    # The site's public front door and its WAF (e.g. Prevention -> Detection).
    "azure-native:network:ApplicationGateway",
    "azure-native:network:WebApplicationFirewallPolicy",
    # Which other networks reach the VNet, and which resolve its private names (the hub's).
    "azure-native:network:VirtualNetworkPeering",
    "azure-native:privatedns:VirtualNetworkLink",
})
# An updated input whose path has one of these keys changes who can reach the resource, or how.
EXPOSURE_KEYS = frozenset({
    "publicNetworkAccess", "publicNetworkAccessForIngestion", "publicNetworkAccessForQuery",
    "networkAcls", "networkRuleSet", "defaultAction", "ipRules", "virtualNetworkRules", "bypass",
    "securityRules", "firewallRules", "ipSecurityRestrictions", "scmIpSecurityRestrictions",
    "ipSecurityRestrictionsDefaultAction", "scmIpSecurityRestrictionsDefaultAction",
    "scmIpSecurityRestrictionsUseMain", "publicIPAddress", "publicIpAddress", "httpsOnly",
    "minTlsVersion", "scmMinTlsVersion", "minimumTlsVersion", "ftpsState",
    "allowBlobPublicAccess", "publicAccess", "allowSharedKeyAccess", "internalLoadBalancingMode",
    "clientCertEnabled", "clientCertMode", "enableRbacAuthorization", "passwordAuth",
    "activeDirectoryAuth", "serviceEndpoints",
})

SECRET = "[secret]"  # noqa: S105 - the snapshots' placeholder for sealed values
MASKED = "[masked]"

# --- values that must never reach a PR comment ----------------------------------------------------

# A path segment naming a secret value: its string values, and everything beneath it, are masked.
# Anchored at the end so settings *about* secrets (`passwordAuth`, `allowSharedKeyAccess`) show.
SECRET_SEGMENT = re.compile(
    r"(password|passwd|secret|token|connection_?strings?|sas"
    r"|(access|account|shared|instrumentation|api|private|primary|secondary|master|secret)_?key)"
    r"(_?value)?s?\]?$",
    re.IGNORECASE,
)
# Inputs that hold a secret whatever they are called.
SECRET_INPUTS = {"azure-native:keyvault:Secret": ("properties.value",)}

# --- properties that cannot change in place ----------------------------------------------------


@dataclass(frozen=True)
class ImmutableRule:
    """Changing `path` on `type` makes Azure (or the provider) recreate the resource."""

    type: str
    path: str  # dotted input path; "*" = any input
    reason: str
    applies: Callable[[Any, Any], bool] = lambda old, new: True


def _storage_kind_change(old: Any, new: Any) -> bool:
    return not (old == "Storage" and new == "StorageV2")  # the one in-place upgrade Azure offers


def _storage_tier_change(old: Any, new: Any) -> bool:
    def tier(sku):
        return str(sku).split("_", 1)[0]
    return tier(old) != tier(new)


def _major(version: Any) -> int:
    match = re.match(r"\d+", str(version))
    return int(match.group()) if match else 0


def _version_downgrade(old: Any, new: Any) -> bool:
    return _major(new) < _major(old)


# Kept short on purpose: each entry is a documented Azure or provider constraint that applies to
# a resource type this program declares. Name, resource group and parent resource changes are
# not listed: they change the ARM id, which is checked separately. Location is create-only for
# every tracked Azure resource (ARM's PUT guideline: `location` is `x-ms-mutability: create,
# read`), so it is checked for every type.
IMMUTABLE_RULES = (
    # App Service can't convert a site or a plan between Linux and Windows.
    ImmutableRule("azure-native:web:WebApp", "kind", "a site can't switch between Linux and "
                  "Windows", lambda old, new: ("linux" in str(old)) != ("linux" in str(new))),
    ImmutableRule("azure-native:web:WebAppSlot", "kind", "a slot can't switch between Linux and "
                  "Windows", lambda old, new: ("linux" in str(old)) != ("linux" in str(new))),
    ImmutableRule("azure-native:web:AppServicePlan", "reserved", "a plan can't switch between "
                  "Linux (reserved) and Windows"),
    # A plan lives in one ASE, or in the multi-tenant service, for its whole life.
    ImmutableRule("azure-native:web:AppServicePlan", "hostingEnvironmentProfile.id",
                  "a plan can't move into, out of or between App Service Environments"),
    # An ASE v3 is built into its subnet at creation (moving means migrating to a new one).
    ImmutableRule("azure-native:web:AppServiceEnvironment", "virtualNetwork.id",
                  "an App Service Environment can't move to another subnet"),
    # A private endpoint's network interface is allocated in its subnet.
    ImmutableRule("azure-native:network:PrivateEndpoint", "subnet.id",
                  "a private endpoint can't move to another subnet"),
    # PostgreSQL flexible server: networking mode and admin login are chosen at creation;
    # in-place major *upgrades* exist, downgrades don't.
    ImmutableRule("azure-native:dbforpostgresql:Server", "network.delegatedSubnetResourceId",
                  "the connectivity method (VNet integration or public access) is fixed at "
                  "creation"),
    ImmutableRule("azure-native:dbforpostgresql:Server", "administratorLogin",
                  "the administrator login is set only at creation"),
    ImmutableRule("azure-native:dbforpostgresql:Server", "version",
                  "PostgreSQL can't be downgraded in place", _version_downgrade),
    ImmutableRule("azure-native:dbforpostgresql:Database", "charset",
                  "a database's encoding is set at creation"),
    ImmutableRule("azure-native:dbforpostgresql:Database", "collation",
                  "a database's collation is set at creation"),
    # Storage: the account kind (except Storage -> StorageV2) and performance tier are fixed.
    ImmutableRule("azure-native:storage:StorageAccount", "kind", "a storage account's kind "
                  "can't change (only Storage -> StorageV2 upgrades)", _storage_kind_change),
    ImmutableRule("azure-native:storage:StorageAccount", "sku.name", "a storage account can't "
                  "move between Standard and Premium performance", _storage_tier_change),
    # Azure rejects updates to a role assignment's principal or role
    # (RoleAssignmentUpdateNotPermitted): the program deletes before it replaces them.
    ImmutableRule(ROLE_ASSIGNMENT, "principalId", "a role assignment's principal can't change"),
    ImmutableRule(ROLE_ASSIGNMENT, "roleDefinitionId", "a role assignment's role can't change"),
    # The random provider marks every argument ForceNew: a change generates a new value.
    ImmutableRule("random:index/randomPassword:RandomPassword", "*",
                  "any argument change generates a new password"),
    ImmutableRule("random:index/randomString:RandomString", "*",
                  "any argument change generates a new string"),
    # The tls provider marks every key argument RequiresReplace, and every certificate argument
    # but earlyRenewalHours: a change makes a new key, or issues a new certificate.
    ImmutableRule("tls:index/privateKey:PrivateKey", "*", "any argument change generates a "
                  "new key"),
    *(ImmutableRule("tls:index/selfSignedCert:SelfSignedCert", path, "a changed certificate "
                    "argument issues a new certificate")
      for path in ("allowedUses", "dnsNames", "ipAddresses", "isCaCertificate", "privateKeyPem",
                   "setAuthorityKeyId", "setSubjectKeyId", "subject", "uris",
                   "validityPeriodHours")),
    # pulumiverse-time: a changed trigger runs the wait again, as a replacement.
    ImmutableRule("time:index/sleep:Sleep", "triggers", "a changed trigger waits again"),
    # pulumi_command's Command sets replace_on_changes=["triggers[*]"] on itself.
    ImmutableRule("command:local:Command", "triggers", "a changed trigger re-runs the command "
                  "as a replacement"),
)


# --- what lowers how well the data survives ----------------------------------------------------

POSTGRES_SERVER = "azure-native:dbforpostgresql:Server"
STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
KEY_VAULT = "azure-native:keyvault:Vault"

_ON = ("Enabled", True)
_HA_LEVELS = {"ZoneRedundant": 2, "SameZone": 1}  # anything else (Disabled, unset): no standby
# What each storage redundancy SKU suffix keeps: copies in other zones, in the paired region,
# and read access to that region's copy.
_REDUNDANCY = {"LRS": set(), "ZRS": {"zones"}, "GRS": {"region"}, "RAGRS": {"region", "read"},
               "GZRS": {"zones", "region"}, "RAGZRS": {"zones", "region", "read"}}


def _decreased(old: Any, new: Any) -> bool:
    numbers = (int, float)
    return (isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool)
            and new < old)


def _turned_off(old: Any, new: Any) -> bool:
    """On before; off or unset now (an unset setting falls back to Azure's default: off)."""
    return old in _ON and new not in _ON


def _high_availability_lowered(old: Any, new: Any) -> bool:
    return _HA_LEVELS.get(str(new), 0) < _HA_LEVELS.get(str(old), 0)


def redundancy_lost(old: Any, new: Any) -> set[str]:
    """What a storage SKU change gives up (Standard_GZRS -> Standard_LRS: zones and region)."""
    def kept(sku: Any) -> set[str]:
        return _REDUNDANCY.get(str(sku).rsplit("_", 1)[-1], set())
    return kept(old) - kept(new)


@dataclass(frozen=True)
class ResilienceRule:
    """Changing `path` on `type` so that `lowers(old, new)` holds leaves the data less safe."""

    type: str
    path: str
    lowers: Callable[[Any, Any], bool]
    warning: str
    source: str  # the documentation that states the behaviour


_PG_DOCS = "https://learn.microsoft.com/azure/postgresql/flexible-server/"
_STORAGE_DOCS = "https://learn.microsoft.com/azure/storage/"
_KEY_VAULT_DOCS = "https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview"
RESILIENCE_RULES = (
    ResilienceRule(POSTGRES_SERVER, "storage.storageSizeGB", _decreased,
                   "PostgreSQL storage shrinks: Azure refuses (storage only grows), so the "
                   "deploy fails here", _PG_DOCS + "how-to-scale-compute-storage-portal"),
    ResilienceRule(POSTGRES_SERVER, "highAvailability.mode", _high_availability_lowered,
                   "high availability lowered: less or no standby to fail over to",
                   _PG_DOCS + "concepts-high-availability"),
    ResilienceRule(POSTGRES_SERVER, "backup.geoRedundantBackup", _turned_off,
                   "geo-redundant backup off: no restore in the paired region; the setting is "
                   "chosen at creation, so Azure refuses it on an existing server",
                   _PG_DOCS + "concepts-backup-restore"),
    ResilienceRule(POSTGRES_SERVER, "backup.backupRetentionDays", _decreased,
                   "backup retention shortened: restore points older than the new window go",
                   _PG_DOCS + "concepts-backup-restore"),
    ResilienceRule(STORAGE_ACCOUNT, "sku.name", lambda old, new: bool(redundancy_lost(old, new)),
                   "storage redundancy lowered: fewer copies survive a zone or region outage",
                   _STORAGE_DOCS + "common/storage-redundancy"),
    ResilienceRule(BLOB_SERVICE, "deleteRetentionPolicy.enabled", _turned_off,
                   "blob soft delete off: a deleted or overwritten blob can't be recovered",
                   _STORAGE_DOCS + "blobs/soft-delete-blob-overview"),
    ResilienceRule(BLOB_SERVICE, "deleteRetentionPolicy.days", _decreased,
                   "blob soft-delete retention shortened",
                   _STORAGE_DOCS + "blobs/soft-delete-blob-overview"),
    ResilienceRule(BLOB_SERVICE, "containerDeleteRetentionPolicy.enabled", _turned_off,
                   "container soft delete off: a deleted container can't be recovered",
                   _STORAGE_DOCS + "blobs/soft-delete-container-overview"),
    ResilienceRule(BLOB_SERVICE, "containerDeleteRetentionPolicy.days", _decreased,
                   "container soft-delete retention shortened",
                   _STORAGE_DOCS + "blobs/soft-delete-container-overview"),
    ResilienceRule(BLOB_SERVICE, "isVersioningEnabled", _turned_off,
                   "blob versioning off: overwritten photos keep no earlier version",
                   _STORAGE_DOCS + "blobs/versioning-overview"),
    ResilienceRule(KEY_VAULT, "properties.enableSoftDelete", _turned_off,
                   "Key Vault soft delete off: Azure refuses (it can't be turned off)",
                   _KEY_VAULT_DOCS),
    ResilienceRule(KEY_VAULT, "properties.enablePurgeProtection", _turned_off,
                   "purge protection off: Azure refuses (once on, it stays on)",
                   _KEY_VAULT_DOCS),
)

# --- what a new resource must show -------------------------------------------------------------

# The inputs that decide what a new resource opens, and to whom: shown with every create of the
# type (and in its warning), because a create otherwise lists no inputs at all.
CREATE_KEY_INPUTS = {
    "azure-native:network:VirtualNetworkPeering": (
        "remoteVirtualNetwork.id", "allowGatewayTransit", "useRemoteGateways",
        "allowForwardedTraffic", "allowVirtualNetworkAccess"),
    "azure-native:network:PublicIPAddress": (
        "sku.name", "publicIPAllocationMethod", "dnsSettings.domainNameLabel"),
    "azure-native:privatedns:VirtualNetworkLink": ("virtualNetwork.id", "registrationEnabled"),
    ROLE_ASSIGNMENT: ("principalId", "principalType", "roleDefinitionId", "scope"),
}
