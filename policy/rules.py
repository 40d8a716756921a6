"""The security baseline as plain functions, importable without starting a policy server.

Every check takes (resource type, props, options, config) and returns the violations it found
(an empty list means compliant). `props` are the resource's inputs with the provider's camelCase
names, exactly what `pulumi preview --policy-pack` hands a policy and what the mocks capture;
`options` only needs a `protect` attribute (pulumi_policy.PolicyResourceOptions has it);
`config` is the policy's configuration, merged over the rule's defaults.

Stack-dependent rules read policy config rather than guessing the stack from its name: the
secure value is the default, and policy/config/<stack>.json relaxes it where a tier is meant
to be disposable or public (dev). CI passes that file with --policy-pack-config.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NATIVE = "azure-native:"
WEB_SITES = (f"{NATIVE}web:WebApp", f"{NATIVE}web:WebAppSlot")
BASIC_AUTH_POLICIES = tuple(
    f"{NATIVE}web:WebApp{kind}Allowed{slot}" for kind in ("Ftp", "Scm") for slot in ("", "Slot")
)
STORAGE_ACCOUNT = f"{NATIVE}storage:StorageAccount"
BLOB_CONTAINER = f"{NATIVE}storage:BlobContainer"
KEY_VAULT = f"{NATIVE}keyvault:Vault"
POSTGRES_SERVER = f"{NATIVE}dbforpostgresql:Server"
ROLE_ASSIGNMENT = f"{NATIVE}authorization:RoleAssignment"
POSTGRES_FIREWALL_RULE = f"{NATIVE}dbforpostgresql:FirewallRule"
# ARM's marker range for "allow Azure services" (0.0.0.0 to 0.0.0.0): no public address.
AZURE_SERVICES_MARKER = "0.0.0.0"  # noqa: S104
APPLICATION_GATEWAY = f"{NATIVE}network:ApplicationGateway"
WAF_POLICY = f"{NATIVE}network:WebApplicationFirewallPolicy"
STATEFUL = (POSTGRES_SERVER, STORAGE_ACCOUNT, KEY_VAULT)

WEB_TLS_VERSIONS = ("1.2", "1.3")
GATEWAY_WAF_SKU = "WAF_v2"
# Predefined Application Gateway TLS policies whose minimum is TLS 1.2.
GATEWAY_TLS_POLICIES = ("AppGwSslPolicy20170401S", "AppGwSslPolicy20220101",
                        "AppGwSslPolicy20220101S")
GATEWAY_TLS_VERSIONS = ("TLSv1_2", "TLSv1_3")
# Managed rule sets at least as current as these (OWASP CRS 3.2, Microsoft DRS 2.1).
CURRENT_RULE_SETS = {"OWASP": (3, 2), "Microsoft_DefaultRuleSet": (2, 1)}
STORAGE_TLS_VERSIONS = ("TLS1_2", "TLS1_3")
# A resource ID below a resource group: .../resourceGroups/<rg>/providers/<namespace>/<type>/<name>
RESOURCE_SCOPE = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[^/]+/[^/]+/[^/]+", re.IGNORECASE
)

Check = Callable[[str, Mapping[str, Any], Any, Mapping[str, Any]], list[str]]


def _get(props: Mapping[str, Any] | None, *path: str) -> Any:
    """props["a"]["b"]... or None when any level is missing."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


# --- App Service ---------------------------------------------------------------------------

def check_https_only(resource_type, props, options=None, config=None) -> list[str]:
    if resource_type in WEB_SITES and props.get("httpsOnly") is not True:
        return ["httpsOnly must be true: plain HTTP would expose session cookies"]
    return []


def check_min_tls(resource_type, props, options=None, config=None) -> list[str]:
    violations = []
    if resource_type in WEB_SITES:
        if _get(props, "siteConfig", "minTlsVersion") not in WEB_TLS_VERSIONS:
            violations.append("siteConfig.minTlsVersion must be 1.2 or later")
        scm = _get(props, "siteConfig", "scmMinTlsVersion")
        if scm is not None and scm not in WEB_TLS_VERSIONS:
            violations.append("siteConfig.scmMinTlsVersion must be 1.2 or later")
    elif (resource_type == STORAGE_ACCOUNT
          and props.get("minimumTlsVersion") not in STORAGE_TLS_VERSIONS):
        violations.append("minimumTlsVersion must be TLS1_2 or later")
    return violations


def check_ftps_disabled(resource_type, props, options=None, config=None) -> list[str]:
    if resource_type in WEB_SITES and _get(props, "siteConfig", "ftpsState") != "Disabled":
        return ["siteConfig.ftpsState must be Disabled: deploys go through the SCM API only"]
    return []


def check_basic_auth_publishing_disabled(resource_type, props, options=None,
                                         config=None) -> list[str]:
    if resource_type in BASIC_AUTH_POLICIES and props.get("allow") is not False:
        return ["basic-auth publishing credentials must be disabled (allow: false): "
                "deployments authenticate with Microsoft Entra tokens"]
    return []


# --- Storage -------------------------------------------------------------------------------

def check_no_public_blob_access(resource_type, props, options=None, config=None) -> list[str]:
    if resource_type == STORAGE_ACCOUNT and props.get("allowBlobPublicAccess") is not False:
        return ["allowBlobPublicAccess must be false"]
    if resource_type == BLOB_CONTAINER and props.get("publicAccess") not in (None, "None"):
        return [f"container publicAccess must be None, not {props.get('publicAccess')!r}"]
    return []


# The deployer's artefact account (infra/deployer.py) holds only the release zip and the
# deployment scripts' working files: the scripts mount its file share with the account key and
# Pulumi's Blob resource uploads with it, so shared keys stay on there, and it keeps nothing
# worth protecting. This tag marks it, together with the deployer's account name
# (infra/naming.py Names.deployer_storage_account: st<base>dep<4-6 character suffix>); only both
# exempt that account from exactly these two rules, so tagging another account is not enough.
DEPLOYMENT_ARTEFACTS_TAG = ("purpose", "deployment-artefacts")
DEPLOYER_STORAGE_ACCOUNT_NAME = re.compile(r"^st[a-z0-9]+dep[a-z0-9]{4,6}$")


def is_deployment_artefact_store(resource_type: str, props: Mapping[str, Any]) -> bool:
    key, value = DEPLOYMENT_ARTEFACTS_TAG
    return (resource_type == STORAGE_ACCOUNT
            and (props.get("tags") or {}).get(key) == value
            and DEPLOYER_STORAGE_ACCOUNT_NAME.match(str(props.get("accountName", ""))) is not None)


def check_shared_key_disabled(resource_type, props, options=None, config=None) -> list[str]:
    if resource_type != STORAGE_ACCOUNT or is_deployment_artefact_store(resource_type, props):
        return []
    if props.get("allowSharedKeyAccess") is not False:
        return ["allowSharedKeyAccess must be false: the app uses its managed identity"]
    return []


# --- Key Vault -----------------------------------------------------------------------------

def check_key_vault_rbac_and_purge_protection(resource_type, props, options=None,
                                              config=None) -> list[str]:
    if resource_type != KEY_VAULT:
        return []
    config = {"requirePurgeProtection": True, **(config or {})}
    vault = props.get("properties") or {}
    violations = []
    if vault.get("enableRbacAuthorization") is not True:
        violations.append("properties.enableRbacAuthorization must be true (no access policies)")
    if vault.get("enableSoftDelete") is False:
        violations.append("properties.enableSoftDelete must not be false")
    if config["requirePurgeProtection"] and vault.get("enablePurgeProtection") is not True:
        violations.append("properties.enablePurgeProtection must be true outside dev")
    return violations


# --- PostgreSQL ----------------------------------------------------------------------------

def check_postgres_entra_and_private(resource_type, props, options=None,
                                     config=None) -> list[str]:
    if resource_type != POSTGRES_SERVER:
        return []
    config = {"privateNetworking": True, **(config or {})}
    violations = []
    if _get(props, "authConfig", "activeDirectoryAuth") != "Enabled":
        violations.append("authConfig.activeDirectoryAuth must be Enabled")
    if config["privateNetworking"]:
        if _get(props, "authConfig", "passwordAuth") != "Disabled":
            violations.append("authConfig.passwordAuth must be Disabled in private tiers")
        if _get(props, "network", "publicNetworkAccess") != "Disabled":
            violations.append("network.publicNetworkAccess must be Disabled in private tiers "
                              "(the server is reached through its private endpoint)")
    return violations


def check_postgres_firewall_no_public_ranges(resource_type, props, options=None,
                                             config=None) -> list[str]:
    """Public address ranges (developers', the deployer's) reach the dev server only."""
    if resource_type != POSTGRES_FIREWALL_RULE:
        return []
    config = {"closedToAddressRanges": True, **(config or {})}
    addresses = (props.get("startIpAddress"), props.get("endIpAddress"))
    if not config["closedToAddressRanges"] or addresses == (AZURE_SERVICES_MARKER,) * 2:
        return []
    return [f"firewall rule {props.get('firewallRuleName')!r} opens {addresses[0]}-"
            f"{addresses[1]}: outside dev no address range may reach PostgreSQL"]


# --- Identity ------------------------------------------------------------------------------

def check_role_assignment_scope(resource_type, props, options=None, config=None) -> list[str]:
    if resource_type != ROLE_ASSIGNMENT:
        return []
    config = {"servicePrincipalsOnly": True, **(config or {})}
    allowed = ("ServicePrincipal",) if config["servicePrincipalsOnly"] else (
        "ServicePrincipal", "Group")
    violations = []
    if props.get("principalType") not in allowed:
        violations.append(f"principalType must be {' or '.join(allowed)}, not "
                          f"{props.get('principalType')!r}: managed identities (and in dev the "
                          "developers' group); the provider's default is User")
    scope = str(props.get("scope") or "")
    if not RESOURCE_SCOPE.match(scope):
        violations.append(f"scope must be a single resource, not a subscription or resource "
                          f"group: {scope!r}")
    return violations


# --- Application Gateway -------------------------------------------------------------------

def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return ()


def _part_name(reference: Any) -> str | None:
    """The name of a gateway part from its sub-resource reference ({"id": ".../<kind>/<name>"})."""
    resource_id = _get(reference, "id")
    return resource_id.rsplit("/", 1)[-1] if isinstance(resource_id, str) else None


def check_gateway_has_waf(resource_type, props, options=None, config=None) -> list[str]:
    """A gateway is a WAF_v2 with a policy; the policy blocks with a current rule set."""
    violations = []
    if resource_type == APPLICATION_GATEWAY:
        if _get(props, "sku", "tier") != GATEWAY_WAF_SKU:
            violations.append(f"sku.tier must be {GATEWAY_WAF_SKU}: the site's only public door "
                              "needs a web application firewall")
        if not _get(props, "firewallPolicy", "id"):
            violations.append("firewallPolicy must reference a WAF policy")
    elif resource_type == WAF_POLICY:
        settings = props.get("policySettings") or {}
        if settings.get("mode") != "Prevention":
            violations.append(f"policySettings.mode must be Prevention, not "
                              f"{settings.get('mode')!r}: Detection only logs attacks")
        if settings.get("state", "Enabled") != "Enabled":
            violations.append("policySettings.state must be Enabled")
        sets = _get(props, "managedRules", "managedRuleSets") or []
        if not any(_version(rule_set.get("ruleSetVersion")) >= minimum
                   for rule_set in sets
                   for kind, minimum in CURRENT_RULE_SETS.items()
                   if rule_set.get("ruleSetType") == kind):
            violations.append("managedRules needs Microsoft_DefaultRuleSet 2.1+ or OWASP 3.2+")
    return violations


def _tls_policy_violations(props: Mapping[str, Any]) -> list[str]:
    policy = props.get("sslPolicy") or {}
    kind = policy.get("policyType")
    if kind == "Predefined" and policy.get("policyName") in GATEWAY_TLS_POLICIES:
        return []
    if kind in ("Custom", "CustomV2") and policy.get("minProtocolVersion") in GATEWAY_TLS_VERSIONS:
        return []
    return [f"sslPolicy must set TLS 1.2 or later (Predefined {', '.join(GATEWAY_TLS_POLICIES)} "
            f"or Custom/CustomV2 with minProtocolVersion TLSv1_2), got {policy or None!r}"]


def check_gateway_listeners_use_tls(resource_type, props, options=None,
                                    config=None) -> list[str]:
    """Every public listener is HTTPS, except HTTP listeners that only redirect to HTTPS."""
    if resource_type != APPLICATION_GATEWAY:
        return []
    violations = _tls_policy_violations(props)
    listeners = {listener.get("name"): listener for listener in props.get("httpListeners") or []}
    redirects = {r.get("name"): r for r in props.get("redirectConfigurations") or []}
    rules = props.get("requestRoutingRules") or []
    for name, listener in listeners.items():
        protocol = listener.get("protocol")
        if protocol == "Https":
            if not listener.get("sslCertificate"):
                violations.append(f"HTTPS listener {name!r} has no certificate")
            continue
        for rule in (r for r in rules if _part_name(r.get("httpListener")) == name):
            redirect = redirects.get(_part_name(rule.get("redirectConfiguration")))
            target = listeners.get(_part_name((redirect or {}).get("targetListener")), {})
            to_https = target.get("protocol") == "Https" or str(
                (redirect or {}).get("targetUrl", "")).startswith("https://")
            if rule.get("backendAddressPool") or not to_https:
                violations.append(f"{protocol} listener {name!r} may only redirect to HTTPS, but "
                                  f"rule {rule.get('name')!r} does not")
    return violations


def check_every_gateway_has_a_prevention_waf(resources: Iterable[tuple[str, Mapping[str, Any]]]
                                             ) -> list[str]:
    """Stack-wide: each gateway's firewallPolicy is a WAF policy of this stack in Prevention.

    The per-resource rules see a gateway's reference and a policy's mode separately; this joins
    them, so a gateway pointing at a Detection policy (or at none of this stack's) is caught.
    """
    resources = list(resources)
    policies = {props.get("policyName"): props for resource_type, props in resources
                if resource_type == WAF_POLICY}
    found = []
    for resource_type, props in resources:
        if resource_type != APPLICATION_GATEWAY:
            continue
        name = props.get("applicationGatewayName")
        policy = policies.get(_part_name(props.get("firewallPolicy")))
        if policy is None:
            found.append(f"gateway {name!r} has no WAF policy of this stack")
        elif _get(policy, "policySettings", "mode") != "Prevention":
            found.append(f"gateway {name!r} uses WAF policy {policy.get('policyName')!r}, which "
                         "is not in Prevention mode")
    return found


# --- Data safety ---------------------------------------------------------------------------

def check_stateful_protected(resource_type, props, options=None, config=None) -> list[str]:
    if resource_type not in STATEFUL or is_deployment_artefact_store(resource_type, props):
        return []
    config = {"requireProtection": True, **(config or {})}
    if config["requireProtection"] and not getattr(options, "protect", False):
        return ["stateful resource must set protect=True so `pulumi destroy` or a replacement "
                "cannot delete its data"]
    return []


def check_every_site_has_basic_auth_off(resources: Iterable[tuple[str, Mapping[str, Any]]]
                                        ) -> list[str]:
    """Stack-wide: a site without its FTP and SCM policy resources keeps basic auth ON.

    The per-resource rule only sees policy resources that exist, so deleting them would pass it.
    Each web app and slot needs one FTP and one SCM policy resource with allow=false.
    """
    resources = list(resources)
    sites = sum(1 for resource_type, _ in resources if resource_type in WEB_SITES)
    found = []
    for kind in ("Ftp", "Scm"):
        kinds = {f"{NATIVE}web:WebApp{kind}Allowed", f"{NATIVE}web:WebApp{kind}AllowedSlot"}
        switched_off = sum(1 for resource_type, props in resources
                           if resource_type in kinds and props.get("allow") is False)
        if switched_off < sites:
            found.append(f"{sites} web app(s)/slot(s) but only {switched_off} "
                         f"{kind.upper()} basic-auth policy resource(s) with allow=false: every "
                         "site needs its own, or publishing with a password stays possible")
    return found


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Check
    config_defaults: Mapping[str, bool] = field(default_factory=dict)

    def __call__(self, resource_type, props, options=None, config=None) -> list[str]:
        return self.check(resource_type, props, options, {**self.config_defaults, **(config or {})})


RULES: tuple[Rule, ...] = (
    Rule("web-app-https-only", "Web apps and slots accept HTTPS only.", check_https_only),
    Rule("minimum-tls-1-2", "Web apps, slots and storage accounts require TLS 1.2 or later.",
         check_min_tls),
    Rule("web-app-ftps-disabled", "FTP/FTPS deployment is disabled on web apps and slots.",
         check_ftps_disabled),
    Rule("basic-auth-publishing-disabled",
         "Basic-auth publishing credentials (FTP and SCM) are disabled.",
         check_basic_auth_publishing_disabled),
    Rule("storage-no-public-blob-access", "Storage accounts and containers allow no anonymous "
         "blob access.", check_no_public_blob_access),
    Rule("storage-shared-key-disabled", "Storage accounts refuse shared-key authorization.",
         check_shared_key_disabled),
    Rule("key-vault-rbac-purge-protection", "Key Vaults use RBAC, keep soft delete and (outside "
         "dev) purge protection.", check_key_vault_rbac_and_purge_protection,
         {"requirePurgeProtection": True}),
    Rule("postgresql-entra-private", "PostgreSQL uses Microsoft Entra authentication; private "
         "tiers disable password auth and public network access.",
         check_postgres_entra_and_private, {"privateNetworking": True}),
    Rule("postgresql-firewall-no-public-ranges", "Outside dev, PostgreSQL firewall rules open no "
         "address range (developers and the deployer reach the dev server only).",
         check_postgres_firewall_no_public_ranges, {"closedToAddressRanges": True}),
    Rule("role-assignment-resource-scope", "Role assignments target one resource and a "
         "ServicePrincipal (in dev also the developers' group).", check_role_assignment_scope,
         {"servicePrincipalsOnly": True}),
    Rule("application-gateway-waf-prevention", "Application Gateways are WAF_v2 with a WAF "
         "policy; WAF policies are enabled, in Prevention mode, with DRS 2.1+/OWASP 3.2+.",
         check_gateway_has_waf),
    Rule("application-gateway-tls-listeners", "Application Gateway listeners are HTTPS with a "
         "certificate and TLS 1.2+; HTTP listeners only redirect to HTTPS.",
         check_gateway_listeners_use_tls),
    Rule("stateful-resources-protected", "PostgreSQL, storage accounts and Key Vaults are "
         "protected outside dev.", check_stateful_protected, {"requireProtection": True}),
)


def violations(resource_type: str, props: Mapping[str, Any], options: Any,
               config: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[str]]:
    """Every rule's violations for one resource, keyed by rule name (compliant rules omitted).

    `config` is a policy-pack config document: {rule name: {setting: value}}.
    """
    config = config or {}
    found = {}
    for rule in RULES:
        messages = rule(resource_type, props, options, config.get(rule.name))
        if messages:
            found[rule.name] = messages
    return found
