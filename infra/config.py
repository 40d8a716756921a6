"""Typed, validated stack configuration.

Every value is read and checked here, before the program declares a single resource, so a typo in
`Pulumi.<stack>.yaml` fails fast with a message that names the key, the bad value and what is
allowed, instead of surfacing as an ARM error twenty minutes into `pulumi up`.

KEYS, at the end of the module, is the one table of keys: each row's parser, default per tier,
tiers, requirement and description. The unknown-key, wrong-tier, requirement and required checks,
the defaults and infra/README.md's configuration table (infra/config_table.py) all read it; the
checks that span keys (subnets inside the VNet and apart, minimum <= maximum, HA vs Burstable,
the gateway's subnet vs its capacity) are the named functions parse_config calls.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable
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
class DeveloperAccess:
    """The Entra group whose members run the site from their own machines against dev
    (`make dev-azure`): its own PostgreSQL role and blob grant, and the addresses the
    PostgreSQL firewall admits for them."""

    group_object_id: str
    group_name: str  # the group's display name: its PostgreSQL role, and the members' user name
    ip_ranges: tuple[str, ...]  # CIDR blocks, each one firewall rule


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
    developer_access: DeveloperAccess | None = None  # None: the developerGroup* keys are unset

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


def _validate_network(settings: _Settings) -> Network:
    """Each subnet the tier creates lies inside the VNet and overlaps no other."""
    vnet = settings.parsed("vnetAddressSpace")
    subnet_keys = ["privateEndpointSubnet", "deploymentScriptSubnet"]
    subnet_keys.append("aseSubnet" if settings.tier == "isolated" else "integrationSubnet")
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for key in subnet_keys:
        subnet = settings.parsed(key)
        if not subnet.subnet_of(vnet):
            raise _fail(key, settings.value(key), f"a block inside vnetAddressSpace {vnet}")
        for other_key, other in subnets.items():
            if subnet.overlaps(other):
                raise _fail(key, settings.value(key),
                            f"a block that does not overlap {other_key} {other}")
        subnets[key] = subnet
    return Network(
        address_space=str(vnet),
        integration_subnet=settings.value("integrationSubnet"),
        private_endpoint_subnet=settings.value("privateEndpointSubnet"),
        ase_subnet=settings.value("aseSubnet"),
        script_subnet=settings.value("deploymentScriptSubnet"),
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


def _postgres_sku(key: str, value: str) -> str:
    tier = POSTGRES_SKU_TIERS.get(value[: len("Standard_B")])
    if tier is None or not re.match(r"^Standard_[BDE]\d+[a-z_0-9]*$", value):
        raise _fail(key, value, "a Flexible Server SKU such as Standard_B1ms or Standard_D2ds_v5")
    return value


def _refuse_burstable_high_availability(key: str, sku: str, high_availability: bool) -> str:
    if high_availability and POSTGRES_SKU_TIERS[sku[: len("Standard_B")]] == "Burstable":
        raise _fail(
            key, sku, "a GeneralPurpose or MemoryOptimized SKU (Standard_D*/Standard_E*) "
            "because postgresHighAvailability is true and Burstable servers have no HA"
        )
    return sku


def _postgres_storage_gb(key: str, raw: str) -> int:
    storage = _int_in_range(key, raw, 32, 32767)
    if storage not in POSTGRES_STORAGE_SIZES_GB:
        raise _fail(key, storage, "one of " + ", ".join(map(str, POSTGRES_STORAGE_SIZES_GB)))
    return storage


def _zone_redundant(settings: _Settings, sku: str) -> bool:
    # Zone redundancy is a Premium v3 / Isolated v2 feature; default it on where the SKU has it.
    tier, raw = settings.tier, settings.get("zoneRedundant")
    capable = tier == "isolated" or (tier == "standard" and sku.startswith("P"))
    if raw is None:
        return capable
    value = settings.parsed("zoneRedundant")
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


def _instances(settings: _Settings) -> tuple[int, int]:
    if settings.tier == "basic":
        # Basic plans have no autoscale; one instance is all the dev stack pays for.
        return 1, 1
    low, high = settings.parsed("minInstances"), settings.parsed("maxInstances")
    if high < low:
        raise _fail("maxInstances", settings.value("maxInstances"),
                    f"at least minInstances ({low})")
    return low, high


# Most firewall rules the developer ranges may add: each is a resource and a hole to review.
MAX_DEVELOPER_IP_RANGES = 10
# A PostgreSQL role name (NAMEDATALEN - 1 bytes); an Entra display name is at most 256 characters.
MAX_POSTGRES_ROLE_NAME = 63


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


def _reject_keys_outside_tier(settings: _Settings) -> None:
    # A key that means nothing in this tier is a mistake worth reporting, not a value to ignore.
    for row in KEYS:
        raw = settings.get(row.name)
        if raw is not None and settings.tier not in row.tiers:
            raise _fail(row.name, raw, f"unset in the {settings.tier} tier "
                        f"(it applies to: {', '.join(row.tiers)})")


def _reject_keys_without_requirement(settings: _Settings) -> None:
    for row in KEYS:
        raw = settings.get(row.name)
        if raw is not None and row.requires and not row.requires.met(settings):
            raise _fail(row.name, raw, row.requires.unmet(settings))


class _Settings:
    """The stack file's values for one stack: raw, else the tier's default, parsed by each row."""

    def __init__(self, get: Callable[[str], str | None]) -> None:
        self.get = get
        self._parsed: dict[str, Any] = {}

    @property
    def tier(self) -> str:
        return self.parsed("tier")

    def value(self, key: str) -> str | None:
        raw = self.get(key)
        return KEY_ROWS[key].default_in(self.tier) if raw is None else raw

    def parsed(self, key: str) -> Any:
        """The key's parsed value (None while unset with no default); a required key must be set."""
        if key not in self._parsed:
            row = KEY_ROWS[key]
            if row.required and not self.get(key):
                raise _missing(key, row.required)
            raw = self.value(key)
            self._parsed[key] = None if raw is None else row.parse(key, raw, self)
        return self._parsed[key]

    def parse_as(self, key: str, raw: str) -> Any:
        """A value the program chose for the key, checked like one from the stack file."""
        return KEY_ROWS[key].parse(key, raw, self)


def _missing(key: str, what: str) -> ConfigError:
    return ConfigError(f"config '{key}' is required: {what} "
                       f"(pulumi config set {key} <value>)")


def _with_location(get: Callable[[str], str | None],
                   location: str | None) -> Callable[[str], str | None]:
    """The project's keys, and the provider's region beside them under its own key."""
    return lambda key: location if key == LOCATION.name else get(key)


def _postgres_fields(settings: _Settings) -> dict[str, Any]:
    high_availability = settings.parsed("postgresHighAvailability")
    storage = settings.parsed("postgresStorageGb")
    admin = PostgresAdmin(
        object_id=settings.parsed("postgresAdminObjectId"),
        principal_name=settings.parsed("postgresAdminPrincipalName"),
        principal_type=settings.parsed("postgresAdminPrincipalType"),
    )
    return {
        "postgres_admin": admin,
        "postgres_sku": _refuse_burstable_high_availability(
            "postgresSku", settings.parsed("postgresSku"), high_availability),
        "postgres_storage_gb": storage,
        "postgres_backup_retention_days": settings.parsed("postgresBackupRetentionDays"),
        "postgres_high_availability": high_availability,
        "postgres_geo_redundant_backup": settings.parsed("postgresGeoRedundantBackup"),
    }


def _hosting_fields(settings: _Settings) -> dict[str, Any]:
    sku = settings.parsed("sku")
    min_instances, max_instances = _instances(settings)
    return {
        "sku": sku,
        "health_check_path": settings.parsed("healthCheckPath"),
        "python_version": settings.parsed("pythonVersion"),
        "network": None if settings.tier == "basic" else _validate_network(settings),
        "min_instances": min_instances,
        "max_instances": max_instances,
        "zone_redundant": _zone_redundant(settings, sku),
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


def _gateway_subnet(settings: _Settings, network: Network, max_capacity: int) -> str:
    key = "applicationGatewaySubnet"
    raw = settings.value(key)
    subnet = settings.parsed(key)
    needed = max_capacity + GATEWAY_SUBNET_OVERHEAD
    if subnet.num_addresses < needed:
        raise _fail(key, raw, f"a block with at least {needed} addresses for "
                    f"applicationGatewayMaxCapacity {max_capacity}")
    vnet = ipaddress.IPv4Network(network.address_space)
    if not subnet.subnet_of(vnet):
        raise _fail(key, raw, f"a block inside vnetAddressSpace {vnet}")
    for other_key, other in _tier_subnets(network, settings.tier).items():
        if subnet.overlaps(ipaddress.IPv4Network(other)):
            raise _fail(key, raw, f"a block that does not overlap {other_key} {other}")
    return raw


def _ingress(settings: _Settings, network: Network | None) -> Ingress | None:
    if settings.parsed("ingress") == "none":
        return None
    assert network is not None, "ingress is refused in the basic tier before this point"
    if settings.get("customDomain") is not None:
        # App Service managed certificates need a site the public can reach; behind the
        # gateway only the gateway's subnet can.
        raise _fail("customDomain", settings.get("customDomain"), "unset while ingress is "
                    "applicationGateway (use applicationGatewayHostName for the public name)")
    low = settings.parsed("applicationGatewayMinCapacity")
    high = settings.parsed("applicationGatewayMaxCapacity")
    if high < low:
        raise _fail("applicationGatewayMaxCapacity",
                    settings.value("applicationGatewayMaxCapacity"),
                    f"at least applicationGatewayMinCapacity ({low})")
    return Ingress(
        subnet=_gateway_subnet(settings, network, high),
        min_capacity=low,
        max_capacity=high,
        host_name=settings.parsed("applicationGatewayHostName"),
        certificate_name=settings.parsed("applicationGatewayCertificateName"),
    )


def _hub_vnet_id(key: str, raw: str) -> str:
    match = _VNET_ID.match(raw)
    if not match:
        raise _fail(key, raw, "the full resource id of the hub VNet: "
                    "/subscriptions/<guid>/resourceGroups/<group>/providers/"
                    "Microsoft.Network/virtualNetworks/<name>")
    try:
        uuid.UUID(match["subscription"])
    except ValueError:
        raise _fail(key, raw, "a VNet id whose subscription is a GUID") from None
    return raw


def _hub(settings: _Settings) -> Hub | None:
    vnet_id = settings.parsed("hubVirtualNetworkId")
    if vnet_id is None:
        return None
    match = _VNET_ID.match(vnet_id)
    assert match, "hubVirtualNetworkId's parser checked the id's shape"
    return Hub(
        vnet_id=vnet_id,
        subscription_id=str(uuid.UUID(match["subscription"])),
        resource_group=match["group"],
        vnet_name=match["name"],
        use_remote_gateways=settings.parsed("hubUseRemoteGateways"),
    )


def _developer_ip_range(key: str, value: str) -> str:
    network = _network(key, value)
    if not network.is_global:
        raise _fail(key, value, "public IPv4 CIDR blocks (the addresses developers connect from)")
    if network.prefixlen < 24:
        raise _fail(key, value, "blocks no larger than a /24 (one office or home network each)")
    return str(network)


def _developer_ip_ranges(key: str, raw: str) -> tuple[str, ...]:
    ranges = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not ranges or len(ranges) > MAX_DEVELOPER_IP_RANGES:
        raise _fail(key, raw, f"1 to {MAX_DEVELOPER_IP_RANGES} comma-separated IPv4 CIDR blocks "
                    "such as 20.50.1.0/28,52.10.20.30/32")
    return tuple(_developer_ip_range(key, item) for item in ranges)


def _developer_group_name(key: str, name: str) -> str:
    if not name or len(name) > MAX_POSTGRES_ROLE_NAME or not name.isprintable():
        raise _fail(key, name, "the Entra group's display name, 1-"
                    f"{MAX_POSTGRES_ROLE_NAME} printable characters (it is the PostgreSQL role)")
    return name


def _developer_access(settings: _Settings) -> DeveloperAccess | None:
    """The group's id and name are set together, or neither."""
    object_id, name = settings.get("developerGroupObjectId"), settings.get("developerGroupName")
    if object_id is None and name is None:
        return None
    if name is None:
        raise _missing("developerGroupName", "the display name of the Entra group named by "
                       "developerGroupObjectId (it is the PostgreSQL role name)")
    name = settings.parsed("developerGroupName")
    if object_id is None:
        raise _missing("developerGroupObjectId", "the object id of the Entra group named by "
                       "developerGroupName")
    return DeveloperAccess(group_object_id=settings.parsed("developerGroupObjectId"),
                           group_name=name,
                           ip_ranges=settings.parsed("developerIpRanges") or ())


def _naming_fields(settings: _Settings, stack: str, location: str,
                   subscription_id: str) -> dict[str, str]:
    prefix = settings.parsed("namePrefix")
    suffix = settings.get("nameSuffix") or _default_suffix(subscription_id, prefix, stack, location)
    return {"name_prefix": prefix, "name_suffix": settings.parse_as("nameSuffix", suffix)}


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
    settings = _Settings(_with_location(get, location))
    tier = settings.tier
    _reject_keys_outside_tier(settings)
    _reject_keys_without_requirement(settings)
    location = settings.parsed(LOCATION.name)
    alert_email = settings.parsed("alertEmail")
    hosting = _hosting_fields(settings)
    return StackConfig(
        stack=stack,
        tier=tier,
        location=location,
        alert_email=alert_email,
        custom_domain=settings.parsed("customDomain"),
        deployer_ip_address=settings.parsed("deployerIpAddress"),
        log_retention_days=settings.parsed("logRetentionDays"),
        package_path=settings.parsed("packagePath"),
        script_attempt=settings.parsed("scriptAttempt"),
        **_naming_fields(settings, stack, location, subscription_id),
        **hosting,
        **_postgres_fields(settings),
        ingress=_ingress(settings, hosting["network"]),
        hub=_hub(settings),
        developer_access=_developer_access(settings),
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


# --- the table: one row per key -----------------------------------------------------------------
# Last in the module because its rows name the parsers above; the functions above read it only
# when called.

# A row's parser: (key, raw value, the stack's settings) -> the parsed value, or a ConfigError.
# Most ignore the settings; a few read the tier or a key parsed before them (sku, instances).
Parser = Callable[[str, str, "_Settings"], Any]


def _each(check: Callable[[str, str], Any]) -> Parser:
    return lambda key, raw, _settings: check(key, raw)


def _one_of(allowed: tuple[str, ...]) -> Parser:
    return lambda key, raw, _settings: _choice(key, raw, allowed)


def _integer(low: int, high: int) -> Parser:
    return lambda key, raw, _settings: _int_in_range(key, raw, low, high)


def _pattern(pattern: re.Pattern[str], allowed: str) -> Parser:
    return lambda key, raw, _settings: _matching(key, raw, pattern, allowed)


def _subnet(min_prefix: int, allowed: str = "") -> Parser:
    def parse(key: str, raw: str, _settings: _Settings) -> ipaddress.IPv4Network:
        subnet = _network(key, raw)
        if subnet.prefixlen > min_prefix:
            raise _fail(key, raw, f"a /{min_prefix} or larger block{allowed}")
        return subnet
    return parse


def _text(_key: str, raw: str, _settings: _Settings) -> str:
    return raw


def _tier_sku(key: str, raw: str, settings: _Settings) -> str:
    return _choice(key, raw, TIER_SKUS[settings.tier])


def _instance_count(key: str, raw: str, settings: _Settings) -> int:
    return _int_in_range(key, raw, 2, max_instances_for(settings.parsed("sku")))


@dataclass(frozen=True)
class Requirement:
    """A key that only means something while another key is set (to one value)."""

    key: str
    value: str | None = None  # None: any value

    def met(self, settings: _Settings) -> bool:
        if self.value is None:
            return settings.get(self.key) is not None
        return settings.parsed(self.key) == self.value

    def unmet(self, settings: _Settings) -> str:
        """What is allowed instead, while the requirement is not met."""
        if self.value is None:
            return f"unset while {self.key} is unset (set {self.key} first)"
        return (f"unset while {self.key} is {settings.parsed(self.key)} "
                f"(set {self.key}: {self.value} to use it)")

    def describe(self) -> str:
        return f"`{self.key}` set" if self.value is None else f"`{self.key}: {self.value}`"


@dataclass(frozen=True)
class Key:
    """One stack config key: how it parses, its defaults, where it applies and what it means."""

    name: str
    parse: Parser
    allowed: str  # what a valid value is, for people (infra/README.md's table)
    # The value when the stack file leaves the key out: one for every tier, or one per tier in
    # TIERS order. None: unset, unless `computed` says how the program derives it.
    default: str | tuple[str, str, str] | None = None
    computed: str | None = None
    tiers: tuple[str, ...] = TIERS
    requires: Requirement | None = None
    required: str | None = None  # what to set: the key has no default and must be set

    def default_in(self, tier: str) -> str | None:
        if isinstance(self.default, tuple):
            return self.default[TIERS.index(tier)]
        return self.default


def _basic_else(basic: str, production: str) -> tuple[str, str, str]:
    return (basic, production, production)


VNET_TIERS = ("standard", "isolated")
WITH_GATEWAY = Requirement("ingress", "applicationGateway")
_SUBNET = "inside the VNet, {size} or larger, not overlapping"

# The provider's key, outside the project's namespace: read by the program, documented beside.
LOCATION = Key("azure-native:location",
               _pattern(_LOCATION, "an Azure region name such as westeurope (lowercase, "
                        "no spaces)"),
               "an Azure region name, e.g. `westeurope`",
               required="an Azure region such as westeurope")

KEYS: tuple[Key, ...] = (
    Key("tier", _one_of(TIERS), ", ".join(f"`{tier}`" for tier in TIERS),
        required="the hosting tier, one of " + ", ".join(TIERS)),
    Key("sku", _tier_sku, "; ".join(f"{tier}: " + " ".join(f"`{sku}`" for sku in skus)
                                    for tier, skus in TIER_SKUS.items()),
        default=tuple(TIER_SKUS[tier][0] for tier in TIERS)),
    Key("pythonVersion", _one_of(PYTHON_VERSIONS),
        ", ".join(f"`{version}`" for version in PYTHON_VERSIONS)
        + " (also picks `dist/webapp-py<version>.zip`)", default="3.11"),
    Key("alertEmail", _pattern(_EMAIL, "an e-mail address"), "an e-mail address",
        required="the e-mail address that receives alerts"),
    Key("postgresAdminObjectId", _each(_uuid),
        "object id (GUID) of the Entra group that administers PostgreSQL",
        required="the object id of the Entra group that administers PostgreSQL"),
    Key("postgresAdminPrincipalName", _text,
        "that group's display name (its PostgreSQL role name)",
        required="the display name of that Entra group (it is the PostgreSQL role name)"),
    Key("postgresAdminPrincipalType", _one_of(POSTGRES_PRINCIPAL_TYPES),
        ", ".join(f"`{kind}`" for kind in POSTGRES_PRINCIPAL_TYPES), default="Group"),
    Key("postgresSku", _each(_postgres_sku),
        "`Standard_B*`, `Standard_D*`, `Standard_E*` (HA needs D or E)",
        default=_basic_else("Standard_B1ms", "Standard_D2ds_v5")),
    Key("postgresStorageGb", _each(_postgres_storage_gb),
        ", ".join(map(str, POSTGRES_STORAGE_SIZES_GB)), default=_basic_else("32", "64")),
    Key("postgresBackupRetentionDays", _integer(7, 35), "7–35", default=_basic_else("7", "35")),
    Key("postgresHighAvailability", _each(_bool), "`true`, `false` (zone-redundant HA)",
        default=_basic_else("false", "true")),
    Key("postgresGeoRedundantBackup", _each(_bool), "`true`, `false`",
        default=_basic_else("false", "true")),
    Key("healthCheckPath", _pattern(re.compile(r"^/[A-Za-z0-9/_.-]*$"),
                                    "an absolute URL path such as /healthz"),
        "an absolute URL path", default="/healthz"),
    Key("logRetentionDays", _integer(30, 730), "30–730", default=_basic_else("30", "90")),
    # App Service managed certificates need a publicly reachable site: not behind the ASE's ILB.
    Key("customDomain", _each(_hostname), "without the gateway: a lowercase subdomain such as "
        "`www.example.com` (binding + managed certificate + SNI)", tiers=("basic", "standard")),
    Key("namePrefix", _pattern(_NAME_PREFIX, "2-8 lowercase letters or digits, starting with a "
                               "letter"),
        "2–8 lowercase letters/digits, starting with a letter", default="rr"),
    Key("nameSuffix", _pattern(_NAME_SUFFIX, "4-6 lowercase letters or digits"),
        "4–6 lowercase letters/digits (set it if a global name is taken)",
        computed="6 hex chars from project, subscription, resource group and region"),
    Key("packagePath", _text, "path (relative to the repo root or absolute) of the deploy zip",
        computed="`dist/webapp-py<pythonVersion>.zip`"),
    Key("deployerIpAddress", _each(_ipv4), "a public IPv4 allowed through the PostgreSQL "
        "firewall for your own `psql` sessions (the SQL step does not need it)",
        tiers=("basic",)),
    # Developers' own sign-ins and addresses reach the disposable dev tier, never production.
    Key("developerGroupObjectId", _each(_uuid), "object id (GUID) of the Entra group whose "
        "members run the site locally against this stack (`make dev-azure`; \"Developer "
        "access\" below); set together with `developerGroupName`", tiers=("basic",)),
    Key("developerGroupName", _each(_developer_group_name), "that group's display name, "
        f"1–{MAX_POSTGRES_ROLE_NAME} printable characters (its PostgreSQL role, and the user "
        "name its members sign in with)", tiers=("basic",)),
    Key("developerIpRanges", _each(_developer_ip_ranges),
        f"1–{MAX_DEVELOPER_IP_RANGES} comma-separated public IPv4 CIDR blocks, each a /24 or "
        "smaller (one PostgreSQL firewall rule each), e.g. `20.50.1.0/28,52.10.20.30/32`",
        tiers=("basic",), requires=Requirement("developerGroupObjectId")),
    Key("vnetAddressSpace", _each(_network), "an IPv4 CIDR", default="10.40.0.0/16",
        tiers=VNET_TIERS),
    # Regional VNet integration needs at least a /28 (Microsoft recommends /26 to leave room for
    # scale-out); an ASE v3 subnet must be /24 or larger; private endpoints fit in a /28, and so
    # does the subnet delegated to the deployment scripts' container instances (one at a time).
    Key("integrationSubnet", _subnet(28), _SUBNET.format(size="/28"), default="10.40.1.0/26",
        tiers=("standard",)),
    Key("privateEndpointSubnet", _subnet(28), _SUBNET.format(size="/28"),
        default="10.40.2.0/27", tiers=VNET_TIERS),
    Key("aseSubnet", _subnet(24), _SUBNET.format(size="/24"), default="10.40.0.0/24",
        tiers=("isolated",)),
    Key("deploymentScriptSubnet", _subnet(28), _SUBNET.format(size="/28")
        + "; delegated to the deployment scripts' container instances",
        default="10.40.4.0/28", tiers=VNET_TIERS),
    Key("minInstances", _instance_count, "2 up to the SKU's limit (Standard 10, Premium v3 30, "
        "Isolated v2 100)", default="2", tiers=VNET_TIERS),
    Key("maxInstances", _instance_count, "2 up to the SKU's limit, at least `minInstances`",
        default="6", tiers=VNET_TIERS),
    Key("scriptAttempt", _integer(1, 9999), "1–9999; a new value runs every deployment script "
        "once more under a new name (after a failed script whose cause lay outside the "
        "program: \"Recovering from a failed run\")", default="1"),
    Key("zoneRedundant", _each(_bool), "`true` (Premium v3 and Isolated v2 only), `false` (also "
        "puts the gateway and its public IP in zones 1-3)",
        computed="`true` where the SKU supports it", tiers=VNET_TIERS),
    Key("ingress", _one_of(INGRESS_MODES), "`none` (no public front door), `applicationGateway` "
        "(see \"Ingress\" below); the committed `Pulumi.isolated.yaml` sets "
        "`applicationGateway`, a new stack without the key gets none",
        default="none", tiers=VNET_TIERS),
    Key("applicationGatewaySubnet",
        _subnet(MIN_GATEWAY_SUBNET_PREFIX, " (Application Gateway v2; a /24 is recommended)"),
        f"inside the VNet, /{MIN_GATEWAY_SUBNET_PREFIX} or larger (a /24 is recommended), room "
        f"for `applicationGatewayMaxCapacity` + {GATEWAY_SUBNET_OVERHEAD} addresses, not "
        "overlapping", default="10.40.3.0/24", tiers=VNET_TIERS, requires=WITH_GATEWAY),
    Key("applicationGatewayMinCapacity", _integer(0, GATEWAY_CAPACITY_LIMIT),
        f"0–{GATEWAY_CAPACITY_LIMIT}", default="2", tiers=VNET_TIERS, requires=WITH_GATEWAY),
    Key("applicationGatewayMaxCapacity", _integer(2, GATEWAY_CAPACITY_LIMIT),
        f"2–{GATEWAY_CAPACITY_LIMIT}, at least the minimum", default="10", tiers=VNET_TIERS,
        requires=WITH_GATEWAY),
    Key("applicationGatewayHostName", _each(_public_host_name),
        "your own lowercase domain name (CNAME it to the gateway's name)",
        computed="the public IP's `<label>.<region>.cloudapp.azure.com`", tiers=VNET_TIERS,
        requires=WITH_GATEWAY),
    Key("applicationGatewayCertificateName", _each(_key_vault_object_name),
        "name of a certificate (or PFX secret) in the stack's Key Vault",
        computed="unset: a self-signed certificate", tiers=VNET_TIERS, requires=WITH_GATEWAY),
    Key("hubVirtualNetworkId", _each(_hub_vnet_id), "`/subscriptions/<guid>/resourceGroups/"
        "<group>/providers/Microsoft.Network/virtualNetworks/<name>`", tiers=VNET_TIERS),
    Key("hubUseRemoteGateways", _each(_bool), "`true` (the hub has a VPN/ExpressRoute gateway), "
        "`false`", default="true", tiers=VNET_TIERS,
        requires=Requirement("hubVirtualNetworkId")),
)
KEY_ROWS = {row.name: row for row in (LOCATION, *KEYS)}
KNOWN_KEYS = frozenset(row.name for row in KEYS)
