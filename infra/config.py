"""Typed, validated stack configuration.

Every value is read and checked here, before the program declares a single resource, so a typo in
`Pulumi.<stack>.yaml` fails fast with a message that names the key, the bad value and what is
allowed, instead of surfacing as an ARM error twenty minutes into `pulumi up`.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.runtime.config
from pulumi_azure_native import authorization

PROJECT = "restaurant-review"

TIERS = ("basic", "standard", "isolated")

# App Service plan SKUs each tier accepts; the first one is the tier's default.
TIER_SKUS: dict[str, tuple[str, ...]] = {
    "basic": ("B1", "B2", "B3"),
    "standard": ("P1v3", "P0v3", "P2v3", "P3v3", "P1mv3", "P2mv3", "P3mv3", "S1", "S2", "S3"),
    "isolated": ("I1v2", "I2v2", "I3v2", "I4v2", "I5v2", "I6v2", "I1mv2", "I2mv2", "I3mv2"),
}

# Python versions App Service offers on Linux and the package builder can target.
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")

# Flexible Server SKU name prefix -> pricing tier ARM expects next to it.
POSTGRES_SKU_TIERS = {
    "Standard_B": "Burstable",
    "Standard_D": "GeneralPurpose",
    "Standard_E": "MemoryOptimized",
}
POSTGRES_STORAGE_SIZES_GB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
POSTGRES_PRINCIPAL_TYPES = ("Group", "User", "ServicePrincipal")

# Regional VNet integration needs at least a /28 (Microsoft recommends /26 to leave room for
# scale-out); an ASE v3 subnet must be /24 or larger; private endpoints fit in a /28, and so does
# the subnet delegated to the deployment scripts' container instances (one at a time).
MIN_SUBNET_SIZE = {"integrationSubnet": 28, "privateEndpointSubnet": 28, "aseSubnet": 24,
                   "deploymentScriptSubnet": 28}

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,7}$")
_NAME_SUFFIX = re.compile(r"^[a-z0-9]{4,6}$")
_LOCATION = re.compile(r"^[a-z][a-z0-9]{2,30}$")


class ConfigError(pulumi.RunError, ValueError):
    """A stack configuration value is missing or not allowed.

    A RunError: `pulumi up` and `pulumi preview` print its one-line message, not a traceback.
    """


# The committed stack files carry stand-ins so that the offline checks (mocks, `make synth`, the
# tests) run without anyone's tenant; a real `pulumi up` or `pulumi preview` refuses them
# (infra/program.py) instead of failing at the PostgreSQL administrator twenty minutes in.
PLACEHOLDER_ADMIN_OBJECT_ID = "11111111-2222-3333-4444-555555555555"
# Domains reserved for documentation (RFC 2606, RFC 6761): mail sent there is never delivered.
_RESERVED_MAIL_DOMAIN = re.compile(
    r"@(.+\.)?example\.(com|net|org)$|\.(example|test|invalid|localhost)$", re.IGNORECASE)


INGRESS_MODES = ("none", "applicationGateway")
# Application Gateway v2 autoscale limits (instances); each instance takes one subnet address.
GATEWAY_CAPACITY_LIMIT = 125
# Azure keeps 5 addresses of every subnet; the gateway may also take one private frontend IP.
GATEWAY_SUBNET_OVERHEAD = 6
# Microsoft's smallest supported Application Gateway v2 subnet (a /24 is recommended).
MIN_GATEWAY_SUBNET_PREFIX = 26
_KEY_VAULT_OBJECT_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VNET_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[0-9a-fA-F-]{36})/resourceGroups/(?P<group>[-\w.()]{1,90})"
    r"/providers/Microsoft\.Network/virtualNetworks/(?P<name>[-\w.]{2,64})$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Network:
    address_space: str
    integration_subnet: str
    private_endpoint_subnet: str
    ase_subnet: str
    # Delegated to Microsoft.ContainerInstance/containerGroups: where the deployment scripts run
    # (infra/deployer.py), inside the VNet, so `pulumi up` needs no network of its own.
    script_subnet: str


@dataclass(frozen=True)
class PostgresAdmin:
    """The Entra principal (ideally a group) that administers the server and runs the SQL step."""

    object_id: str
    principal_name: str
    principal_type: str


@dataclass(frozen=True)
class Ingress:
    """The Application Gateway (WAF_v2) in front of the app: see infra/gateway.py."""

    subnet: str
    min_capacity: int
    max_capacity: int
    host_name: str | None  # None: the public IP's <label>.<region>.cloudapp.azure.com name
    certificate_name: str | None  # None: a self-signed certificate made by the program


@dataclass(frozen=True)
class Hub:
    """An existing hub VNet to peer with and to link the stack's private DNS zones to."""

    vnet_id: str
    subscription_id: str
    resource_group: str
    vnet_name: str
    use_remote_gateways: bool


@dataclass(frozen=True)
class StackConfig:
    stack: str
    tier: str
    location: str
    name_prefix: str
    name_suffix: str
    sku: str
    python_version: str
    health_check_path: str
    alert_email: str
    custom_domain: str | None
    postgres_admin: PostgresAdmin
    postgres_sku: str
    postgres_storage_gb: int
    postgres_backup_retention_days: int
    postgres_high_availability: bool
    postgres_geo_redundant_backup: bool
    deployer_ip_address: str | None
    network: Network | None
    min_instances: int
    max_instances: int
    zone_redundant: bool
    log_retention_days: int
    package_path: str | None
    ingress: Ingress | None = None  # None: config `ingress` is `none`
    # Part of every deployment script's name and forceUpdateTag: a new value runs them all again
    # (after a failed script, once its cause is fixed: infra/README.md, "Recovering").
    script_attempt: int = 1
    hub: Hub | None = None

    @property
    def has_vnet(self) -> bool:
        return self.tier != "basic"

    @property
    def has_slot(self) -> bool:
        return self.tier != "basic"

    @property
    def has_autoscale(self) -> bool:
        return self.tier != "basic"

    @property
    def is_production(self) -> bool:
        """Stateful resources are protected and retained outside the disposable dev tier."""
        return self.tier != "basic"

    @property
    def has_gateway(self) -> bool:
        return self.ingress is not None

    @property
    def postgres_sku_tier(self) -> str:
        return POSTGRES_SKU_TIERS[self.postgres_sku[: len("Standard_B")]]


def _fail(key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"config '{key}': {value!r} is not allowed; expected {allowed}")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(key, value, "one of " + ", ".join(allowed) + _yaml_number_hint(value, allowed))
    return value


def _yaml_number_hint(value: str, allowed: Iterable[str]) -> str:
    """YAML reads an unquoted 3.10 as the number 3.1: say so when that is what happened."""
    try:
        number = float(value)
    except ValueError:
        return ""
    for item in allowed:
        try:
            same = float(item) == number and item != value
        except ValueError:
            continue
        if same:
            return (f" (YAML read an unquoted {item} as the number {value}: "
                    f"quote it in the stack file, \"{item}\")")
    return ""


def _int_in_range(key: str, raw: Any, low: int, high: int) -> int:
    try:
        value = int(str(raw), 10)
    except ValueError:
        raise _fail(key, raw, f"an integer between {low} and {high}") from None
    if not low <= value <= high:
        raise _fail(key, raw, f"an integer between {low} and {high}")
    return value


def _bool(key: str, raw: Any) -> bool:
    text = str(raw).strip().lower()
    if text not in ("true", "false"):
        raise _fail(key, raw, "true or false")
    return text == "true"


def _matching(key: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not pattern.match(value):
        raise _fail(key, value, allowed)
    return value


def _uuid(key: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _fail(key, value, "a GUID (the Entra object id)") from None


def _hostname(key: str, value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 3 or not all(_HOST_LABEL.match(lab) for lab in labels):
        raise _fail(
            key, value, "a lowercase fully qualified subdomain such as www.example.com "
            "(App Service managed certificates don't cover apex domains here)"
        )
    if value.endswith((".azurewebsites.net", ".appserviceenvironment.net")):
        raise _fail(key, value, "your own domain, not an Azure default host name")
    return value


def _ipv4(key: str, value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise _fail(key, value, "a single public IPv4 address") from None
    if not address.is_global:
        raise _fail(key, value, "a single public IPv4 address")
    return value


def _network(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise _fail(key, value, f"an IPv4 CIDR block with no host bits set ({error})") from None


def _validate_network(values: Mapping[str, str], tier: str) -> Network:
    vnet = _network("vnetAddressSpace", values["vnetAddressSpace"])
    subnet_keys = ["privateEndpointSubnet", "deploymentScriptSubnet"]
    subnet_keys.append("aseSubnet" if tier == "isolated" else "integrationSubnet")
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for key in subnet_keys:
        subnet = _network(key, values[key])
        if subnet.prefixlen > MIN_SUBNET_SIZE[key]:
            raise _fail(key, values[key], f"a /{MIN_SUBNET_SIZE[key]} or larger block")
        if not subnet.subnet_of(vnet):
            raise _fail(key, values[key], f"a block inside vnetAddressSpace {vnet}")
        for other_key, other in subnets.items():
            if subnet.overlaps(other):
                raise _fail(key, values[key], f"a block that does not overlap {other_key} {other}")
        subnets[key] = subnet
    return Network(
        address_space=str(vnet),
        integration_subnet=values["integrationSubnet"],
        private_endpoint_subnet=values["privateEndpointSubnet"],
        ase_subnet=values["aseSubnet"],
        script_subnet=values["deploymentScriptSubnet"],
    )


def _default_suffix(subscription_id: str, name_prefix: str, stack: str, location: str) -> str:
    """Stable per subscription, resource group and region, so reruns keep the names they picked.

    The resource group is rg-<namePrefix>-<stack> (infra/naming.py): hashing the subscription
    with it means two people deploying the same committed stack file into their own
    subscriptions get different web app, storage, vault, PostgreSQL and ASE names.
    """
    resource_group = f"rg-{name_prefix}-{stack}"
    identity = f"{PROJECT}/{subscription_id}/{resource_group}/{location}"
    return hashlib.sha256(identity.encode()).hexdigest()[:6]


def _postgres_sku(key: str, value: str, high_availability: bool) -> str:
    tier = POSTGRES_SKU_TIERS.get(value[: len("Standard_B")])
    if tier is None or not re.match(r"^Standard_[BDE]\d+[a-z_0-9]*$", value):
        raise _fail(key, value, "a Flexible Server SKU such as Standard_B1ms or Standard_D2ds_v5")
    if high_availability and tier == "Burstable":
        raise _fail(
            key, value, "a GeneralPurpose or MemoryOptimized SKU (Standard_D*/Standard_E*) "
            "because postgresHighAvailability is true and Burstable servers have no HA"
        )
    return value


def tier_defaults(tier: str) -> dict[str, str]:
    """Each key's value when the stack file leaves it out (infra/README.md, "Configuration")."""
    production = tier != "basic"
    return {
        "sku": TIER_SKUS[tier][0],
        "namePrefix": "rr",
        "pythonVersion": "3.11",
        "healthCheckPath": "/healthz",
        "postgresSku": "Standard_D2ds_v5" if production else "Standard_B1ms",
        "postgresStorageGb": "64" if production else "32",
        "postgresBackupRetentionDays": "35" if production else "7",
        "postgresHighAvailability": str(production).lower(),
        "postgresGeoRedundantBackup": str(production).lower(),
        "postgresAdminPrincipalType": "Group",
        "vnetAddressSpace": "10.40.0.0/16",
        "aseSubnet": "10.40.0.0/24",
        "integrationSubnet": "10.40.1.0/26",
        "privateEndpointSubnet": "10.40.2.0/27",
        "deploymentScriptSubnet": "10.40.4.0/28",
        "minInstances": "2" if production else "1",
        "maxInstances": "6" if production else "1",
        "logRetentionDays": "90" if production else "30",
        "scriptAttempt": "1",
        "ingress": "none",
        "applicationGatewaySubnet": "10.40.3.0/24",
        "applicationGatewayMinCapacity": "2",
        "applicationGatewayMaxCapacity": "10",
        "hubUseRemoteGateways": "true",
    }


def _zone_redundant(raw: str | None, tier: str, sku: str) -> bool:
    # Zone redundancy is a Premium v3 / Isolated v2 feature; default it on where the SKU has it.
    capable = tier == "isolated" or (tier == "standard" and sku.startswith("P"))
    if raw is None:
        return capable
    value = _bool("zoneRedundant", raw)
    if value and not capable:
        raise _fail("zoneRedundant", raw, f"false for SKU {sku} (only Premium v3 and Isolated v2 "
                    "plans are zone redundant)")
    return value


# Most instances one plan can scale out to, by SKU family (Microsoft's App Service limits: Basic 3,
# Standard 10, Premium v3 30, Isolated v2 100). Autoscale settings above the limit are refused by
# ARM at `pulumi up` time, so they are refused here first.
MAX_INSTANCES_BY_SKU_FAMILY = {"B": 3, "S": 10, "P": 30, "I": 100}


def max_instances_for(sku: str) -> int:
    return MAX_INSTANCES_BY_SKU_FAMILY[sku[0]]


def _instances(values: Mapping[str, str], tier: str, sku: str) -> tuple[int, int]:
    if tier == "basic":
        # Basic plans have no autoscale; one instance is all the dev stack pays for.
        return 1, 1
    limit = max_instances_for(sku)
    low = _int_in_range("minInstances", values["minInstances"], 2, limit)
    high = _int_in_range("maxInstances", values["maxInstances"], 2, limit)
    if high < low:
        raise _fail("maxInstances", values["maxInstances"], f"at least minInstances ({low})")
    return low, high


NETWORK_KEYS = ("vnetAddressSpace", "integrationSubnet", "privateEndpointSubnet", "aseSubnet",
                "deploymentScriptSubnet")

# Keys that only mean something in some tiers: setting one elsewhere is a mistake worth reporting,
# not a value to ignore silently.
TIER_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "deployerIpAddress": ("basic",),
    # App Service managed certificates need a publicly reachable site: not behind the ASE's ILB.
    "customDomain": ("basic", "standard"),
    "vnetAddressSpace": ("standard", "isolated"),
    "privateEndpointSubnet": ("standard", "isolated"),
    "integrationSubnet": ("standard",),
    "aseSubnet": ("isolated",),
    "deploymentScriptSubnet": ("standard", "isolated"),
    "minInstances": ("standard", "isolated"),
    "maxInstances": ("standard", "isolated"),
    "zoneRedundant": ("standard", "isolated"),
    "ingress": ("standard", "isolated"),
    "applicationGatewaySubnet": ("standard", "isolated"),
    "applicationGatewayMinCapacity": ("standard", "isolated"),
    "applicationGatewayMaxCapacity": ("standard", "isolated"),
    "applicationGatewayHostName": ("standard", "isolated"),
    "applicationGatewayCertificateName": ("standard", "isolated"),
    "hubVirtualNetworkId": ("standard", "isolated"),
    "hubUseRemoteGateways": ("standard", "isolated"),
}

# Keys that only mean something once `ingress` is applicationGateway.
GATEWAY_KEYS = ("applicationGatewaySubnet", "applicationGatewayMinCapacity",
                "applicationGatewayMaxCapacity", "applicationGatewayHostName",
                "applicationGatewayCertificateName")

KNOWN_KEYS = frozenset({
    "tier", "sku", "pythonVersion", "healthCheckPath", "alertEmail",
    "namePrefix", "nameSuffix", "postgresAdminObjectId", "postgresAdminPrincipalName",
    "postgresAdminPrincipalType", "postgresSku", "postgresStorageGb",
    "postgresBackupRetentionDays", "postgresHighAvailability", "postgresGeoRedundantBackup",
    "logRetentionDays", "packagePath", "scriptAttempt", *TIER_ONLY_KEYS,
})


def reject_unknown_keys(keys: Iterable[str]) -> None:
    """A misspelt key would otherwise be ignored and its default used without a word."""
    unknown = sorted(set(keys) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(_with_likely_key(key) for key in unknown)}; "
            f"known keys: {', '.join(sorted(KNOWN_KEYS))}"
        )


def _with_likely_key(key: str) -> str:
    """'alertEmial' (did you mean 'alertEmail'?): the one known key it is a slip away from."""
    likely = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.8)
    return f"{key!r} (did you mean {likely[0]!r}?)" if likely else repr(key)


def _configured_keys(project: str) -> set[str]:
    """The project's keys as the Pulumi runtime holds them (set, or from PULUMI_CONFIG)."""
    prefix = f"{project}:"
    names = {*pulumi.runtime.config.CONFIG.get(), *pulumi.runtime.config.get_config_env()}
    return {name[len(prefix):] for name in names if name.startswith(prefix)}


def _reject_keys_outside_tier(get: Callable[[str], str | None], tier: str) -> None:
    for key, tiers in TIER_ONLY_KEYS.items():
        raw = get(key)
        if raw is not None and tier not in tiers:
            raise _fail(key, raw, f"unset in the {tier} tier (it applies to: {', '.join(tiers)})")


@dataclass(frozen=True)
class _Lookup:
    """Raw config access: what the stack file says, else the tier's default."""

    get: Callable[[str], str | None]
    defaults: Mapping[str, str]

    def value(self, key: str) -> str:
        raw = self.get(key)
        return self.defaults[key] if raw is None else raw

    def required(self, key: str, what: str) -> str:
        raw = self.get(key)
        if not raw:
            raise _missing(key, what)
        return raw


def _missing(key: str, what: str) -> ConfigError:
    return ConfigError(f"config '{key}' is required: {what} "
                       f"(pulumi config set {key} <value>)")


def _location(location: str | None) -> str:
    key = "azure-native:location"
    if not location:
        raise _missing(key, "an Azure region such as westeurope")
    return _matching(key, location, _LOCATION,
                     "an Azure region name such as westeurope (lowercase, no spaces)")


def _postgres_fields(config: _Lookup) -> dict[str, Any]:
    high_availability = _bool("postgresHighAvailability", config.value("postgresHighAvailability"))
    storage = _int_in_range("postgresStorageGb", config.value("postgresStorageGb"), 32, 32767)
    if storage not in POSTGRES_STORAGE_SIZES_GB:
        raise _fail("postgresStorageGb", storage,
                    "one of " + ", ".join(map(str, POSTGRES_STORAGE_SIZES_GB)))
    admin = PostgresAdmin(
        object_id=_uuid("postgresAdminObjectId", config.required(
            "postgresAdminObjectId", "the object id of the Entra group that administers "
            "PostgreSQL")),
        principal_name=config.required(
            "postgresAdminPrincipalName",
            "the display name of that Entra group (it is the PostgreSQL role name)"),
        principal_type=_choice("postgresAdminPrincipalType",
                               config.value("postgresAdminPrincipalType"),
                               POSTGRES_PRINCIPAL_TYPES),
    )
    return {
        "postgres_admin": admin,
        "postgres_sku": _postgres_sku("postgresSku", config.value("postgresSku"),
                                      high_availability),
        "postgres_storage_gb": storage,
        "postgres_backup_retention_days": _int_in_range(
            "postgresBackupRetentionDays", config.value("postgresBackupRetentionDays"), 7, 35),
        "postgres_high_availability": high_availability,
        "postgres_geo_redundant_backup": _bool("postgresGeoRedundantBackup",
                                               config.value("postgresGeoRedundantBackup")),
    }


def _hosting_fields(config: _Lookup, tier: str) -> dict[str, Any]:
    sku = _choice("sku", config.value("sku"), TIER_SKUS[tier])
    min_instances, max_instances = _instances(
        {key: config.value(key) for key in ("minInstances", "maxInstances")}, tier, sku)
    health_check_path = config.value("healthCheckPath")
    if not re.match(r"^/[A-Za-z0-9/_.-]*$", health_check_path):
        raise _fail("healthCheckPath", health_check_path, "an absolute URL path such as /healthz")
    return {
        "sku": sku,
        "python_version": _choice("pythonVersion", config.value("pythonVersion"),
                                  PYTHON_VERSIONS),
        "health_check_path": health_check_path,
        "network": None if tier == "basic" else _validate_network(
            {key: config.value(key) for key in NETWORK_KEYS}, tier),
        "min_instances": min_instances,
        "max_instances": max_instances,
        "zone_redundant": _zone_redundant(config.get("zoneRedundant"), tier, sku),
    }


def _public_host_name(key: str, value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_HOST_LABEL.match(lab) for lab in labels):
        raise _fail(key, value, "a lowercase fully qualified domain name such as "
                    "reviews.example.com")
    if value.endswith((".azurewebsites.net", ".appserviceenvironment.net", ".cloudapp.azure.com")):
        raise _fail(key, value, "your own domain (leave it unset to use the gateway's "
                    "<label>.<region>.cloudapp.azure.com name)")
    return value


def _key_vault_object_name(key: str, value: str) -> str:
    return _matching(key, value, _KEY_VAULT_OBJECT_NAME,
                     "the name of a certificate or secret in the stack's Key Vault "
                     "(1-127 letters, digits and hyphens)")


def _tier_subnets(network: Network, tier: str) -> dict[str, str]:
    """The subnets the tier creates (see _validate_network), by config key."""
    other = ("aseSubnet", network.ase_subnet) if tier == "isolated" else (
        "integrationSubnet", network.integration_subnet)
    return {"privateEndpointSubnet": network.private_endpoint_subnet, other[0]: other[1],
            "deploymentScriptSubnet": network.script_subnet}


def _gateway_subnet(config: _Lookup, network: Network, tier: str, max_capacity: int) -> str:
    key = "applicationGatewaySubnet"
    raw = config.value(key)
    subnet = _network(key, raw)
    if subnet.prefixlen > MIN_GATEWAY_SUBNET_PREFIX:
        raise _fail(key, raw, f"a /{MIN_GATEWAY_SUBNET_PREFIX} or larger block "
                    "(Application Gateway v2; a /24 is recommended)")
    needed = max_capacity + GATEWAY_SUBNET_OVERHEAD
    if subnet.num_addresses < needed:
        raise _fail(key, raw, f"a block with at least {needed} addresses for "
                    f"applicationGatewayMaxCapacity {max_capacity}")
    vnet = ipaddress.IPv4Network(network.address_space)
    if not subnet.subnet_of(vnet):
        raise _fail(key, raw, f"a block inside vnetAddressSpace {vnet}")
    for other_key, other in _tier_subnets(network, tier).items():
        if subnet.overlaps(ipaddress.IPv4Network(other)):
            raise _fail(key, raw, f"a block that does not overlap {other_key} {other}")
    return raw


def _ingress(config: _Lookup, network: Network | None, tier: str) -> Ingress | None:
    mode = _choice("ingress", config.value("ingress"), INGRESS_MODES)
    if mode == "none":
        for key in GATEWAY_KEYS:
            if config.get(key) is not None:
                raise _fail(key, config.get(key), "unset while 'ingress' is none "
                            "(set ingress: applicationGateway to use it)")
        return None
    assert network is not None, "ingress is refused in the basic tier before this point"
    if config.get("customDomain") is not None:
        # App Service managed certificates need a site the public can reach; behind the
        # gateway only the gateway's subnet can.
        raise _fail("customDomain", config.get("customDomain"), "unset while ingress is "
                    "applicationGateway (use applicationGatewayHostName for the public name)")
    low = _int_in_range("applicationGatewayMinCapacity",
                        config.value("applicationGatewayMinCapacity"), 0, GATEWAY_CAPACITY_LIMIT)
    high = _int_in_range("applicationGatewayMaxCapacity",
                         config.value("applicationGatewayMaxCapacity"), 2, GATEWAY_CAPACITY_LIMIT)
    if high < low:
        raise _fail("applicationGatewayMaxCapacity", config.value("applicationGatewayMaxCapacity"),
                    f"at least applicationGatewayMinCapacity ({low})")
    return Ingress(
        subnet=_gateway_subnet(config, network, tier, high),
        min_capacity=low,
        max_capacity=high,
        host_name=_optional(config, "applicationGatewayHostName", _public_host_name),
        certificate_name=_optional(config, "applicationGatewayCertificateName",
                                   _key_vault_object_name),
    )


def _hub(config: _Lookup) -> Hub | None:
    raw = config.get("hubVirtualNetworkId")
    if raw is None:
        if config.get("hubUseRemoteGateways") is not None:
            raise _fail("hubUseRemoteGateways", config.get("hubUseRemoteGateways"),
                        "unset while hubVirtualNetworkId is unset")
        return None
    match = _VNET_ID.match(raw)
    if not match:
        raise _fail("hubVirtualNetworkId", raw, "the full resource id of the hub VNet: "
                    "/subscriptions/<guid>/resourceGroups/<group>/providers/"
                    "Microsoft.Network/virtualNetworks/<name>")
    try:
        subscription = str(uuid.UUID(match["subscription"]))
    except ValueError:
        raise _fail("hubVirtualNetworkId", raw, "a VNet id whose subscription is a GUID") from None
    return Hub(
        vnet_id=raw,
        subscription_id=subscription,
        resource_group=match["group"],
        vnet_name=match["name"],
        use_remote_gateways=_bool("hubUseRemoteGateways", config.value("hubUseRemoteGateways")),
    )


def _optional(config: _Lookup, key: str, validate: Callable[[str, str], str]) -> str | None:
    raw = config.get(key)
    return None if raw is None else validate(key, raw)


def _naming_fields(config: _Lookup, stack: str, location: str,
                   subscription_id: str) -> dict[str, str]:
    prefix = _matching("namePrefix", config.value("namePrefix"), _NAME_PREFIX,
                       "2-8 lowercase letters or digits, starting with a letter")
    suffix = config.get("nameSuffix") or _default_suffix(subscription_id, prefix, stack, location)
    return {
        "name_prefix": prefix,
        "name_suffix": _matching("nameSuffix", suffix, _NAME_SUFFIX,
                                 "4-6 lowercase letters or digits"),
    }


def _subscription(subscription_id: str) -> str:
    try:
        return str(uuid.UUID(subscription_id))
    except ValueError:
        raise ConfigError(
            f"the Azure subscription id {subscription_id!r} the provider reports is not a GUID: "
            "check the azure-native provider's login (ARM_SUBSCRIPTION_ID / az account set)"
        ) from None


def parse_config(stack: str, get: Callable[[str], str | None], location: str | None,
                 subscription_id: str) -> StackConfig:
    """Builds the StackConfig from a `get(key)` lookup; pure so tests can drive it directly.

    subscription_id is the one the provider deploys into: default names depend on it.
    """
    subscription_id = _subscription(subscription_id)
    if not get("tier"):
        raise _missing("tier", "the hosting tier, one of " + ", ".join(TIERS))
    tier = _choice("tier", get("tier"), TIERS)
    _reject_keys_outside_tier(get, tier)
    config = _Lookup(get, tier_defaults(tier))
    location = _location(location)
    alert_email = config.required("alertEmail", "the e-mail address that receives alerts")
    hosting = _hosting_fields(config, tier)
    return StackConfig(
        stack=stack,
        tier=tier,
        location=location,
        alert_email=_matching("alertEmail", alert_email, _EMAIL, "an e-mail address"),
        custom_domain=_optional(config, "customDomain", _hostname),
        deployer_ip_address=_optional(config, "deployerIpAddress", _ipv4),
        log_retention_days=_int_in_range("logRetentionDays", config.value("logRetentionDays"),
                                         30, 730),
        package_path=config.get("packagePath"),
        script_attempt=_int_in_range("scriptAttempt", config.value("scriptAttempt"), 1, 9999),
        **_naming_fields(config, stack, location, subscription_id),
        **hosting,
        **_postgres_fields(config),
        ingress=_ingress(config, hosting["network"], tier),
        hub=_hub(config),
    )


def placeholders(cfg: StackConfig) -> dict[str, tuple[str, str]]:
    """key -> (value, what to set instead), for each stand-in the configuration still holds."""
    found = {}
    if cfg.postgres_admin.object_id == PLACEHOLDER_ADMIN_OBJECT_ID:
        found["postgresAdminObjectId"] = (
            cfg.postgres_admin.object_id,
            "the object id of your Entra group that administers PostgreSQL "
            "(az ad group show --group <name> --query id --output tsv)")
    if _RESERVED_MAIL_DOMAIN.search(cfg.alert_email):
        found["alertEmail"] = (cfg.alert_email, "an address that reads the alerts")
    return found


def refuse_placeholders(cfg: StackConfig) -> None:
    """For a real deployment: names every stand-in left and how to replace it, in one line."""
    found = placeholders(cfg)
    if found:
        problems = "; ".join(f"config '{key}': {value!r} is a placeholder, set {what}"
                             for key, (value, what) in sorted(found.items()))
        raise ConfigError(f"{problems}. Set each with `pulumi config set <key> <value>`, "
                          f"then run `make synth` and commit Pulumi.{cfg.stack}.yaml")


def load() -> StackConfig:
    """Reads the current stack's configuration through pulumi.Config.

    The subscription comes from the provider's own login, as a plain string (a synchronous
    invoke), because names must be known before any resource is declared.
    """
    stack = pulumi.get_stack()
    try:
        reject_unknown_keys(_configured_keys(pulumi.get_project()))
        location = pulumi.Config("azure-native").get("location")
        subscription_id = authorization.get_client_config().subscription_id
        return parse_config(stack, pulumi.Config().get, location, subscription_id)
    except ConfigError as error:
        raise ConfigError(f"Pulumi.{stack}.yaml: {error}") from None
