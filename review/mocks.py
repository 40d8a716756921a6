"""Runs the real Pulumi program offline, under mocks, and captures what it declares.

Used by the infra tests and by the reviewers' `make synth` (infra/ holds only what `pulumi up`
runs). Every value the mocks invent (ids from review/resource_types.py, principal ids, host
names, the ASE's internal IP) is derived from resource names, so two runs of the same stack are
byte-identical. Nothing here talks to Azure or needs the Pulumi CLI.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf import json_format
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

from infra import program
from infra.config import StackConfig
from infra.site_package import PackageRef, default_package_path
from review.resource_types import arm_id

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["name"]

SECRET = "[secret]"  # noqa: S105 - the placeholder for sealed values
UNKNOWN = "[unknown]"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - Pulumi wire marker
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

_MOCK_NAMESPACE = uuid.UUID("0c7b5a55-0f5e-4d6c-9a2b-6d1a3f0e7c11")
SUBSCRIPTION_ID = str(uuid.uuid5(_MOCK_NAMESPACE, "subscription"))
TENANT_ID = str(uuid.uuid5(_MOCK_NAMESPACE, "tenant"))
DEPLOYER_OBJECT_ID = str(uuid.uuid5(_MOCK_NAMESPACE, "deployer"))


@dataclass(frozen=True)
class CapturedResource:
    type: str  # e.g. "azure-native:web:WebApp"
    name: str  # logical name
    urn: str
    parent: str | None  # parent URN (None for the stack)
    inputs: dict  # plain JSON-able python values; secret values replaced by "[secret]"
    protect: bool
    retain_on_delete: bool
    depends_on: tuple[str, ...]  # URNs
    custom_timeouts: dict | None  # {"create": "6h", ...}
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    arm_id: str | None = None  # the Azure resource id (None: not an Azure resource)


@dataclass(frozen=True)
class StackRun:
    stack: str
    resources: tuple[CapturedResource, ...]  # in registration order
    outputs: dict  # stack outputs, plain values


# --- stack configuration -------------------------------------------------------------------

def _full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def load_stack_config(stack: str) -> dict:
    """Pulumi.<stack>.yaml's `config:` over Pulumi.yaml's project defaults, keys namespaced."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8")) or {}
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        default = spec.get("default", spec.get("value")) if isinstance(spec, dict) else spec
        if default is not None:
            values[_full_key(key)] = default
    stack_file = REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise FileNotFoundError(f"no stack file {stack_file.name} in {REPO_ROOT}")
    stack_doc = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    for key, value in (stack_doc.get("config") or {}).items():
        values[_full_key(key)] = value
    return values


def as_pulumi_config(values: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Pulumi hands programs config as strings (objects as JSON); `secure:` values stay sealed."""
    flat: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in values.items():
        key = _full_key(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            flat[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            flat[key] = value
        elif isinstance(value, bool):
            flat[key] = "true" if value else "false"
        else:
            flat[key] = json.dumps(value)
    return flat, secret_keys


# --- deterministic fake Azure ---------------------------------------------------------------

def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_MOCK_NAMESPACE, "|".join(parts)))


def _hex(*parts: str, length: int = 40) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:length]


def principal_id(identity_id: str) -> str:
    """The principal id the mocks give the identity with this ARM id (a user-assigned identity's,
    or a resource's own system-assigned one)."""
    return _stable_uuid("principal", identity_id)


def mock_password(logical_name: str, length: int) -> str:
    """What a RandomPassword resolves to offline (tests check it never leaks)."""
    return _hex("password", logical_name, length=length)


def _merge(inputs: dict, key: str, extra: dict) -> dict:
    current = inputs.get(key)
    return {**(current if isinstance(current, dict) else {}), **extra}


# type token -> the AzureMocks method inventing the outputs Azure (or the provider) computes.
COMPUTED_OUTPUTS = {
    "azure-native:web:WebApp": "_webapp",
    "azure-native:web:WebAppSlot": "_webappslot",
    "azure-native:web:AppServiceEnvironment": "_appserviceenvironment",
    "azure-native:web:Certificate": "_certificate",
    "azure-native:dbforpostgresql:Server": "_server",
    "azure-native:storage:StorageAccount": "_storageaccount",
    "azure-native:resources:AzureCliScript": "_azureclisscript",
    "azure-native:keyvault:Vault": "_vault",
    "azure-native:keyvault:Secret": "_secret",
    "azure-native:applicationinsights:Component": "_insights",
    "azure-native:operationalinsights:Workspace": "_workspace",
    "azure-native:network:Subnet": "_subnet",
    "azure-native:network:PublicIPAddress": "_publicipaddress",
    "azure-native:network:ApplicationGateway": "_applicationgateway",
    "azure-native:managedidentity:UserAssignedIdentity": "_userassignedidentity",
    "tls:index/privateKey:PrivateKey": "_privatekey",
    "tls:index/selfSignedCert:SelfSignedCert": "_selfsignedcert",
    "random:index/randomPassword:RandomPassword": "_randompassword",
    "random:index/randomString:RandomString": "_randomstring",
    "command:local:Command": "_command",
}


class AzureMocks(pulumi.runtime.Mocks):
    """Returns inputs plus the computed outputs the program reads, all derived from names."""

    def __init__(self, subscription_id: str = SUBSCRIPTION_ID, random_state: str = "") -> None:
        self.subscription_id = subscription_id
        # What random strings derive from: another value stands for a stack whose random
        # resources were created anew (after `pulumi destroy`).
        self.random_state = random_state
        self.subnet_prefixes: dict[str, str] = {}
        # "type::name" of an explicit provider -> the subscription it deploys into (the hub's).
        self.provider_subscriptions: dict[str, str] = {}

    def subscription_for(self, provider_reference: str | None) -> str:
        """The subscription a resource is made in: its explicit provider's, else the login's.

        A provider reference is "<urn>::<id>"; a URN ends in "<parent types>$<type>::<name>".
        """
        urn = (provider_reference or "").rsplit("::", 1)[0]
        *_, types, name = ["", "", *urn.split("::")]
        return self.provider_subscriptions.get(f"{types.rsplit('$', 1)[-1]}::{name}",
                                               self.subscription_id)

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "azure-native:authorization:getClientConfig":  # noqa: S105
            return {"clientId": DEPLOYER_OBJECT_ID, "objectId": DEPLOYER_OBJECT_ID,
                    "subscriptionId": self.subscription_id, "tenantId": TENANT_ID}
        if args.token == "azure-native:storage:listStorageAccountKeys":  # noqa: S105
            account = args.args.get("accountName", "")
            return {"keys": [{"keyName": "key1", "permissions": "FULL",
                              "value": mock_password(f"storage-key:{account}", 64)}]}
        raise NotImplementedError(f"no offline answer for invoke {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        if not args.custom:
            return "", {}  # a component: no id, no state of its own
        if args.typ.startswith("pulumi:providers:") and inputs.get("subscriptionId"):
            self.provider_subscriptions[f"{args.typ}::{args.name}"] = inputs["subscriptionId"]
        resource_id = arm_id(args.typ, inputs, self.subscription_for(args.provider),
                             logical_name=args.name)
        if resource_id is None:  # another provider's resource (command, random)
            resource_id = f"{args.name}-{_hex(args.typ, args.name, length=8)}"
        state = {"name": resource_id.rsplit("/", 1)[-1], **inputs}
        state.update(self._computed(args.typ, args.name, inputs, resource_id))
        return resource_id, state

    def _computed(self, typ: str, logical: str, inputs: dict, resource_id: str) -> dict:
        method = COMPUTED_OUTPUTS.get(typ)
        return getattr(self, method)(logical, inputs, resource_id) if method else {}

    # One method per resource type whose computed outputs the program reads (COMPUTED_OUTPUTS).
    def _site_identity(self, resource_id: str, inputs: dict | None = None) -> dict:
        """ARM's answer for the identity block: user-assigned ones come back as a map by id."""
        identity = (inputs or {}).get("identity") or {}
        if identity.get("type") == "UserAssigned":
            return {"type": "UserAssigned", "userAssignedIdentities": {
                uai: {"principalId": principal_id(uai),
                      "clientId": _stable_uuid("client", uai)}
                for uai in identity.get("userAssignedIdentities", [])}}
        return {"type": "SystemAssigned", "tenantId": TENANT_ID,
                "principalId": principal_id(resource_id)}

    def _azureclisscript(self, logical, inputs, resource_id):
        return {"identity": self._site_identity(resource_id, inputs)}

    def _host_suffix(self, inputs: dict) -> str:
        ase_id = (inputs.get("hostingEnvironmentProfile") or {}).get("id")
        if ase_id:
            return f"{ase_id.rsplit('/', 1)[-1]}.appserviceenvironment.net"
        return "azurewebsites.net"

    def _webapp(self, logical, inputs, resource_id):
        return {"identity": self._site_identity(resource_id, inputs),
                "defaultHostName": f"{inputs['name']}.{self._host_suffix(inputs)}",
                "customDomainVerificationId": _hex("domain", resource_id, length=64).upper()}

    def _webappslot(self, logical, inputs, resource_id):
        host = f"{inputs['name']}-{inputs['slot']}.{self._host_suffix(inputs)}"
        return {"identity": self._site_identity(resource_id, inputs), "defaultHostName": host}

    def _server(self, logical, inputs, resource_id):
        return {"fullyQualifiedDomainName": f"{inputs['serverName']}.postgres.database.azure.com"}

    def _storageaccount(self, logical, inputs, resource_id):
        account = inputs["accountName"]
        return {"primaryEndpoints": {"blob": f"https://{account}.blob.core.windows.net/"}}

    def _vault(self, logical, inputs, resource_id):
        uri = f"https://{inputs['vaultName']}.vault.azure.net/"
        return {"properties": _merge(inputs, "properties", {"vaultUri": uri})}

    def _secret(self, logical, inputs, resource_id):
        uri = f"https://{inputs['vaultName']}.vault.azure.net/secrets/{inputs['secretName']}"
        return {"properties": _merge(inputs, "properties", {
            "secretUri": uri, "secretUriWithVersion": f"{uri}/{_hex(resource_id, length=32)}"})}

    def _insights(self, logical, inputs, resource_id):
        key = _stable_uuid("instrumentation-key", resource_id)
        return {"instrumentationKey": key, "appId": _stable_uuid("app-id", resource_id),
                "connectionString": f"InstrumentationKey={key};IngestionEndpoint="
                f"https://{inputs.get('location', 'westeurope')}-0.in.applicationinsights."
                "azure.com/"}

    def _workspace(self, logical, inputs, resource_id):
        return {"customerId": _stable_uuid("workspace", resource_id)}

    def _subnet(self, logical, inputs, resource_id):
        self.subnet_prefixes[resource_id] = inputs.get("addressPrefix", "10.0.0.0/24")
        return {}

    def _appserviceenvironment(self, logical, inputs, resource_id):
        subnet_id = (inputs.get("virtualNetwork") or {}).get("id", "")
        subnet = ipaddress.IPv4Network(self.subnet_prefixes.get(subnet_id, "10.0.0.0/24"))
        internal_ip = str(subnet.network_address + 4)  # first address Azure hands out
        return {"dnsSuffix": f"{inputs['name']}.appserviceenvironment.net",
                "networkingConfiguration": _merge(inputs, "networkingConfiguration", {
                    "internalInboundIpAddresses": [internal_ip]})}

    def _userassignedidentity(self, logical, inputs, resource_id):
        return mock_identity_ids(resource_id)

    def _publicipaddress(self, logical, inputs, resource_id):
        address = ipaddress.IPv4Address("20.0.0.0") + int(_hex("ip", resource_id, length=4), 16)
        label = (inputs.get("dnsSettings") or {}).get("domainNameLabel")
        fqdn = {"dnsSettings": _merge(inputs, "dnsSettings", {
            "fqdn": f"{label}.{inputs.get('location')}.cloudapp.azure.com"})} if label else {}
        return {"ipAddress": str(address), **fqdn}

    def _applicationgateway(self, logical, inputs, resource_id):
        # ARM answers with a map of identity id -> its ids where the request had a list.
        identity = inputs.get("identity") or {}
        assigned = {identity_id: {"principalId": principal_id(identity_id),
                                  "clientId": _stable_uuid("client", identity_id)}
                    for identity_id in identity.get("userAssignedIdentities") or []}
        return {"identity": {**identity, "userAssignedIdentities": assigned}} if identity else {}

    # pulumi-tls: a real key and certificate (the program turns them into a PFX), made
    # deterministic with Ed25519, whose key derives from a seed and whose signatures are fixed.
    def _privatekey(self, logical, inputs, resource_id):
        return {"privateKeyPem": mock_private_key_pem(logical)}

    def _selfsignedcert(self, logical, inputs, resource_id):
        common_name = (inputs.get("subject") or {}).get("commonName", logical)
        key_pem = inputs["privateKeyPem"]
        if isinstance(key_pem, dict):  # a secret input arrives in its wire envelope
            key_pem = key_pem["value"]
        return {"certPem": mock_certificate_pem(key_pem, common_name)}

    def _certificate(self, logical, inputs, resource_id):
        return {"thumbprint": _hex("thumbprint", resource_id).upper()}

    def _randompassword(self, logical, inputs, resource_id):
        return {"result": mock_password(logical, int(inputs.get("length", 32)))}

    def _randomstring(self, logical, inputs, resource_id):
        # Lowercase letters and digits: what the program asks for (naming.py's rules).
        length = int(inputs.get("length", 8))
        return {"result": _hex("string", self.random_state, logical, length=length)}

    def _command(self, logical, inputs, resource_id):
        return {"stdout": "", "stderr": ""}


def mock_identity_ids(resource_id: str) -> dict[str, str]:
    """What ARM reports for the user-assigned identity with this id (its outputs)."""
    return {"principalId": principal_id(resource_id),
            "clientId": _stable_uuid("client", resource_id), "tenantId": TENANT_ID}


def mock_private_key_pem(seed: str) -> str:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def mock_certificate_pem(private_key_pem: str, common_name: str) -> str:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    issued = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(issued).not_valid_after(issued + datetime.timedelta(days=365))
                   .sign(key, None))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


# --- capturing the registrations -------------------------------------------------------------

def _plain(value: Any) -> Any:
    """Protobuf Struct JSON -> plain values: secrets sealed, unknowns marked, ints restored."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return SECRET
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    return value


class CapturingMonitor(MockMonitor):
    """The mock monitor, also recording each RegisterResource request's inputs and options."""

    def __init__(self, mocks: AzureMocks):
        super().__init__(mocks)
        self.azure = mocks
        self.captured: list[CapturedResource] = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if not request.type.startswith("pulumi:providers:"):
            timeouts = request.customTimeouts
            custom_timeouts = {k: v for k, v in (("create", timeouts.create),
                                                 ("update", timeouts.update),
                                                 ("delete", timeouts.delete)) if v} or None
            inputs = _plain(json_format.MessageToDict(request.object))
            self.captured.append(CapturedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent or None,
                inputs=inputs,
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                depends_on=tuple(sorted(request.dependencies)),
                custom_timeouts=custom_timeouts,
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=tuple(request.ignoreChanges),
                arm_id=arm_id(request.type, inputs, self.azure.subscription_for(request.provider),
                              logical_name=request.name),
            ))
        return response


# --- running the program -----------------------------------------------------------------------

def _dependency_order(captured: list[CapturedResource]) -> tuple[CapturedResource, ...]:
    """A registration order that is the same on every run.

    The mock monitor serves registrations from several threads, so arrival order varies. Any
    order with each resource after its parent and dependencies is one Pulumi could have used;
    among the ready ones, the smallest URN goes first.
    """
    by_urn = {resource.urn: resource for resource in captured}
    waiting_on = {
        resource.urn: {urn for urn in (*resource.depends_on, resource.parent) if urn in by_urn}
        for resource in captured
    }
    ordered: list[CapturedResource] = []
    while waiting_on:
        ready = sorted(urn for urn, deps in waiting_on.items() if not deps)
        if not ready:
            raise RuntimeError(f"dependency cycle among {sorted(waiting_on)}")
        urn = ready[0]
        ordered.append(by_urn[urn])
        del waiting_on[urn]
        for deps in waiting_on.values():
            deps.discard(urn)
    return tuple(ordered)


def offline_package(cfg: StackConfig) -> PackageRef:
    """A stand-in for `make package` output: the real path, a hash that never changes."""
    path = default_package_path(cfg)
    return PackageRef(path=path, sha256=hashlib.sha256(f"offline:{path}".encode()).hexdigest())


def run_stack(stack: str, config: dict | None = None, package=None,
              subscription_id: str = SUBSCRIPTION_ID, random_state: str = "") -> StackRun:
    """Runs infra/ for `stack` under mocks (preview=False) and returns what it registered.

    config: full or project-relative keys -> values; defaults to the committed stack file.
    package: a PackageRef to deploy; defaults to `offline_package` (no zip needed).
    subscription_id: the subscription the provider's login reports (and ids are made in).
    random_state: seeds random strings; another one stands for a stack whose random resources
        were created anew, as after `pulumi destroy`.
    """
    values = load_stack_config(stack) if config is None else config
    flat, secret_keys = as_pulumi_config(values)
    locate: Callable[[StackConfig], PackageRef] = (
        offline_package if package is None else (lambda _cfg: package))
    monitor = CapturingMonitor(AzureMocks(subscription_id, random_state))
    runtime_settings.ROOT.set(None)  # a fresh root stack resource for this run
    pulumi.runtime.set_all_config(flat, secret_keys)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False,
                             monitor=monitor)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def declare():
        return pulumi.Output.from_input(program.run(locate)).apply(outputs.update)

    declare()
    return StackRun(stack=stack, resources=_dependency_order(monitor.captured),
                    outputs=json.loads(json.dumps(outputs, sort_keys=True)))
