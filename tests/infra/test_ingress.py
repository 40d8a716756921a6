"""Ingress (Internet -> Application Gateway WAF_v2 -> the app) and hub connectivity, under mocks.

Each config variant runs the real program once (cached); the assertions read what it declared.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import asdict
from functools import cache

from cryptography.hazmat.primitives.serialization import pkcs12
from flask import Flask

from infra.gateway import pfx_base64, self_signed_secret_name
from infra.identity import KEY_VAULT_SECRETS_USER
from review.mocks import (
    SECRET,
    load_stack_config,
    mock_certificate_pem,
    mock_private_key_pem,
    run_stack,
)
from tests.infra.conftest import StackView
from webapp.config import DEFAULT_MAX_PHOTO_BYTES, request_body_limit

P = "restaurant-review:"
HUB_ID = ("/subscriptions/22222222-3333-4444-5555-666666666666/resourceGroups/rg-hub/providers/"
          "Microsoft.Network/virtualNetworks/vnet-hub")
GATEWAY_TYPES = ("network:ApplicationGateway", "network:WebApplicationFirewallPolicy",
                 "network:PublicIPAddress", "managedidentity:UserAssignedIdentity",
                 "network:VirtualNetworkPeering")


@cache
def _view(stack: str, extra: tuple[tuple[str, str], ...]) -> StackView:
    config = {**load_stack_config(stack), **{P + key: value for key, value in extra}}
    for key in [k for k, v in config.items() if v is None]:
        del config[key]
    return StackView(run_stack(stack, config=config))


def isolated(**extra: str) -> StackView:
    base = {"ingress": "applicationGateway", "applicationGatewaySubnet": "10.50.3.0/24"}
    return _view("isolated", tuple(sorted({**base, **extra}.items())))


def standard(**extra: str) -> StackView:
    return _view("prod", tuple(sorted(extra.items())))


def by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


def part(reference: dict) -> str:
    """The name of a gateway part from its sub-resource id (.../httpListeners/<name>)."""
    return reference["id"].rsplit("/", 1)[1]


# --- the gateway ----------------------------------------------------------------------------

def test_isolated_gateway_is_waf_v2_zone_redundant_and_autoscaled_within_config_bounds():
    view = isolated(applicationGatewayMinCapacity="3", applicationGatewayMaxCapacity="7")
    gateway = view.one("network:ApplicationGateway").inputs
    assert gateway["sku"] == {"name": "WAF_v2", "tier": "WAF_v2"}
    assert gateway["autoscaleConfiguration"] == {"minCapacity": 3, "maxCapacity": 7}
    assert gateway["zones"] == ["1", "2", "3"]
    public_ip = view.one("network:PublicIPAddress").inputs
    assert public_ip["sku"]["name"] == "Standard"
    assert public_ip["publicIPAllocationMethod"] == "Static"
    assert public_ip["zones"] == ["1", "2", "3"]
    (frontend,) = gateway["frontendIPConfigurations"]
    assert frontend["publicIPAddress"]["id"].endswith("/" + public_ip["publicIpAddressName"])


def test_gateway_has_its_own_subnet_with_exactly_the_required_inbound_rules():
    view = isolated()
    subnet = view.one("network:Subnet", "snet-gateway").inputs
    assert subnet["addressPrefix"] == "10.50.3.0/24"
    assert ipaddress.ip_network(subnet["addressPrefix"]).subnet_of(ipaddress.ip_network(
        view.one("network:VirtualNetwork").inputs["addressSpace"]["addressPrefixes"][0]))
    nsg = view.one("network:NetworkSecurityGroup", "nsg-gateway").inputs
    assert subnet["networkSecurityGroup"]["id"].endswith("/" + nsg["networkSecurityGroupName"])
    rules = {(r["sourceAddressPrefix"], tuple(r["destinationPortRanges"]), r["protocol"],
              r["access"], r["direction"]) for r in nsg["securityRules"]}
    assert rules == {
        ("Internet", ("443", "80"), "Tcp", "Allow", "Inbound"),
        ("GatewayManager", ("65200-65535",), "Tcp", "Allow", "Inbound"),
        ("AzureLoadBalancer", ("*",), "*", "Allow", "Inbound"),
    }
    gateway = view.one("network:ApplicationGateway").inputs
    (ip_config,) = gateway["gatewayIPConfigurations"]
    assert ip_config["subnet"]["id"].endswith("/subnets/snet-gateway")
    # Azure takes one write per VNet at a time: the gateway subnet waits for the last subnet.
    assert "snet-deployment-scripts" in view.depends_on(view.one("network:Subnet",
                                                                 "snet-gateway"))


def test_waf_policy_blocks_with_the_current_managed_rule_sets():
    view = isolated()
    policy = view.one("network:WebApplicationFirewallPolicy").inputs
    assert policy["policySettings"]["mode"] == "Prevention"
    assert policy["policySettings"]["state"] == "Enabled"
    assert policy["policySettings"]["requestBodyCheck"] is True
    # The site's largest photo (8 MiB plus the form) must get through.
    sets = {(s["ruleSetType"], s["ruleSetVersion"])
            for s in policy["managedRules"]["managedRuleSets"]}
    assert sets == {("Microsoft_DefaultRuleSet", "2.1"), ("Microsoft_BotManagerRuleSet", "1.1")}
    gateway = view.one("network:ApplicationGateway").inputs
    assert gateway["firewallPolicy"]["id"].endswith("/" + policy["policyName"])


def test_https_listener_with_tls_1_2_and_http_only_redirects():
    view = isolated()
    gateway = view.one("network:ApplicationGateway").inputs
    assert gateway["sslPolicy"] == {"policyType": "Predefined",
                                    "policyName": "AppGwSslPolicy20220101S"}
    listeners = by_name(gateway["httpListeners"])
    ports = {p["name"]: p["port"] for p in gateway["frontendPorts"]}
    https = [n for n, listener in listeners.items() if listener["protocol"] == "Https"]
    http = [n for n, listener in listeners.items() if listener["protocol"] == "Http"]
    assert len(https) == 1 and len(http) == 1
    assert ports[part(listeners[https[0]]["frontendPort"])] == 443
    assert ports[part(listeners[http[0]]["frontendPort"])] == 80
    assert part(listeners[https[0]]["sslCertificate"]) == gateway["sslCertificates"][0]["name"]
    rules = {part(rule["httpListener"]): rule for rule in gateway["requestRoutingRules"]}
    assert "redirectConfiguration" not in rules[https[0]]
    assert "backendAddressPool" not in rules[http[0]]
    redirect = by_name(gateway["redirectConfigurations"])[part(
        rules[http[0]]["redirectConfiguration"])]
    assert redirect["redirectType"] == "Permanent"
    assert part(redirect["targetListener"]) == https[0]
    assert redirect["includePath"] and redirect["includeQueryString"]


def test_backend_is_the_apps_ase_host_over_https_with_a_health_probe():
    view = isolated()
    gateway = view.one("network:ApplicationGateway").inputs
    app_host = view.run.outputs["defaultSiteUrl"].removeprefix("https://")
    assert app_host.endswith(".appserviceenvironment.net")
    (pool,) = gateway["backendAddressPools"]
    assert pool["backendAddresses"] == [{"fqdn": app_host}]
    (settings,) = gateway["backendHttpSettingsCollection"]
    assert (settings["protocol"], settings["port"]) == ("Https", 443)
    assert settings["pickHostNameFromBackendAddress"] is True
    (probe,) = gateway["probes"]
    assert part(settings["probe"]) == probe["name"]
    assert probe["protocol"] == "Https" and probe["path"] == "/healthz"
    assert probe["pickHostNameFromBackendHttpSettings"] is True
    (rule,) = [r for r in gateway["requestRoutingRules"] if "backendAddressPool" in r]
    assert part(rule["backendAddressPool"]) == pool["name"]
    assert part(rule["backendHttpSettings"]) == settings["name"]


def test_gateway_tells_the_site_the_public_host_and_a_port_free_client_list():
    view = isolated()
    gateway = view.one("network:ApplicationGateway").inputs
    (rule_set,) = gateway["rewriteRuleSets"]
    (rule,) = [r for r in gateway["requestRoutingRules"] if "backendAddressPool" in r]
    assert part(rule["rewriteRuleSet"]) == rule_set["name"]
    headers = {h["headerName"]: h["headerValue"]
               for r in rule_set["rewriteRules"]
               for h in r["actionSet"]["requestHeaderConfigurations"]}
    assert headers == {"X-Forwarded-For": "{var_add_x_forwarded_for_proxy}",
                       "X-Forwarded-Host": "{var_host}"}
    # ...and the site is told to trust two hops (webapp/security.py), in both slots alike.
    for site in view.sites():
        assert view.settings(site)["TRUSTED_PROXY_HOPS"] == "2"


def test_self_signed_certificate_is_a_pfx_secret_read_by_the_gateways_own_identity():
    view = isolated()
    gateway = view.one("network:ApplicationGateway")
    identity = view.one("managedidentity:UserAssignedIdentity", "gateway-identity")
    assert gateway.inputs["identity"]["type"] == "UserAssigned"
    (identity_id,) = gateway.inputs["identity"]["userAssignedIdentities"]
    assert identity_id.endswith("/userAssignedIdentities/" + identity.inputs["resourceName"])
    secret = view.one("keyvault:Secret", "gateway-self-signed-certificate")
    assert secret.inputs["properties"]["contentType"] == "application/x-pkcs12"
    assert secret.inputs["properties"]["value"] == SECRET
    assert "properties.value" in secret.ignore_changes
    vault = view.one("keyvault:Vault").inputs["vaultName"]
    (certificate,) = gateway.inputs["sslCertificates"]
    assert certificate["keyVaultSecretId"] == (
        f"https://{vault}.vault.azure.net/secrets/{secret.inputs['secretName']}")
    assert "data" not in certificate and "password" not in certificate
    tls_certificate = view.one("tls:index/selfSignedCert:SelfSignedCert").inputs
    host = view.run.outputs["siteUrl"].removeprefix("https://")
    assert tls_certificate["dnsNames"] == [host]
    assert "server_auth" in tls_certificate["allowedUses"]
    grants = [a for a in view.all("authorization:RoleAssignment")
              if a.name == "gateway-key-vault-secrets-user"]
    (grant,) = grants
    assert grant.inputs["roleDefinitionId"].endswith("/" + KEY_VAULT_SECRETS_USER)
    # That one secret, not the vault with the site's SECRET_KEY in it.
    assert grant.inputs["scope"].endswith(f"/vaults/{vault}/secrets/{secret.inputs['secretName']}")
    assert grant.inputs["principalType"] == "ServicePrincipal"


def test_a_named_certificate_is_used_as_is_and_the_host_name_is_the_public_url():
    view = isolated(applicationGatewayCertificateName="reviews-tls",
                    applicationGatewayHostName="reviews.example.com")
    assert view.all("tls:index/privateKey:PrivateKey") == []
    assert [s.name for s in view.all("keyvault:Secret")] == ["flask-secret-key"]
    vault = view.one("keyvault:Vault").inputs["vaultName"]
    gateway = view.one("network:ApplicationGateway").inputs
    assert gateway["sslCertificates"][0]["keyVaultSecretId"] == (
        f"https://{vault}.vault.azure.net/secrets/reviews-tls")
    assert {h for listener in gateway["httpListeners"] for h in listener["hostNames"]} == {
        "reviews.example.com"}
    assert view.run.outputs["siteUrl"] == "https://reviews.example.com"


def test_a_named_certificate_is_the_only_secret_the_gateway_may_read():
    view = isolated(applicationGatewayCertificateName="reviews-tls")
    vault = view.one("keyvault:Vault").inputs["vaultName"]
    (grant,) = [a for a in view.all("authorization:RoleAssignment")
                if a.name == "gateway-key-vault-secrets-user"]
    assert grant.inputs["scope"].endswith(f"/vaults/{vault}/secrets/reviews-tls")


def test_without_a_host_name_the_public_url_is_the_gateways_azure_dns_name():
    view = isolated()
    label = view.one("network:PublicIPAddress").inputs["dnsSettings"]["domainNameLabel"]
    assert view.run.outputs["siteUrl"] == f"https://{label}.westeurope.cloudapp.azure.com"
    assert ipaddress.ip_address(view.run.outputs["gatewayPublicIp"])


def test_pfx_holds_the_key_and_certificate_without_a_password():
    key_pem = mock_private_key_pem("test")
    certificate_pem = mock_certificate_pem(key_pem, "reviews.example.com")
    loaded = pkcs12.load_pkcs12(base64.b64decode(pfx_base64(key_pem, certificate_pem)), None)
    assert loaded.cert.certificate.subject.rfc4514_string() == "CN=reviews.example.com"
    assert loaded.key is not None
    name = self_signed_secret_name(certificate_pem)
    assert name == self_signed_secret_name(certificate_pem)
    assert name != self_signed_secret_name(mock_certificate_pem(key_pem, "other.example.com"))


def test_gateway_logs_go_to_the_stacks_workspace():
    view = isolated()
    setting = view.one("monitor:DiagnosticSetting", "diag-gateway").inputs
    workspace = view.one("operationalinsights:Workspace").inputs["workspaceName"]
    assert setting["workspaceId"].endswith("/workspaces/" + workspace)
    assert "/applicationGateways/" in setting["resourceUri"]
    assert setting["logs"] == [{"categoryGroup": "allLogs", "enabled": True}]


def test_gateway_resources_hang_off_one_ingress_component():
    view = isolated()
    (component,) = [r for r in view.run.resources
                    if r.type == "restaurant-review:ingress:ApplicationGateway"]
    for type_suffix in GATEWAY_TYPES[:4]:
        # The sites and the deployer have user-assigned identities too (infra/identity.py,
        # infra/deployer.py): the gateway's is the one named for it.
        name = "gateway-identity" if type_suffix.startswith("managedidentity:") else None
        assert view.one(type_suffix, name).parent == component.urn, type_suffix


def test_gateway_stack_runs_are_byte_identical():
    config = {**load_stack_config("isolated"), P + "ingress": "applicationGateway",
              P + "applicationGatewaySubnet": "10.50.3.0/24"}
    first, second = run_stack("isolated", config=config), run_stack("isolated", config=config)
    assert json.dumps(asdict(first), sort_keys=True) == json.dumps(asdict(second), sort_keys=True)


# --- standard tier behind the gateway -------------------------------------------------------

def test_standard_behind_the_gateway_admits_only_the_gateway_subnet():
    view = standard(ingress="applicationGateway")
    subnet = view.one("network:Subnet", "snet-gateway").inputs
    assert subnet["serviceEndpoints"] == [{"service": "Microsoft.Web"}]
    gateway = view.one("network:ApplicationGateway").inputs
    app_host = view.run.outputs["defaultSiteUrl"].removeprefix("https://")
    assert gateway["backendAddressPools"][0]["backendAddresses"] == [{"fqdn": app_host}]
    assert "zones" in gateway  # P1v3 is zone redundant by default, so is the gateway
    for site in view.all("web:WebApp"):  # the staging slot: see the slot's test below
        config = site.inputs["siteConfig"]
        (restriction,) = config["ipSecurityRestrictions"]
        assert restriction["vnetSubnetResourceId"].endswith("/subnets/snet-gateway")
        assert restriction["action"] == "Allow"
        assert config["ipSecurityRestrictionsDefaultAction"] == "Deny"
        # The SCM site keeps its own rules: deploys from the runner work as before.
        assert config["scmIpSecurityRestrictionsUseMain"] is False
        assert "scmIpSecurityRestrictions" not in config
    for site in view.sites():
        assert view.settings(site)["TRUSTED_PROXY_HOPS"] == "2"
    assert view.run.outputs["siteUrl"].endswith(".cloudapp.azure.com")


def test_committed_stacks_have_the_gateway_exactly_when_their_config_asks(stack_view):
    wanted = load_stack_config(stack_view.stack).get(P + "ingress", "none") != "none"
    assert bool(stack_view.all("network:ApplicationGateway")) is wanted
    assert bool(stack_view.all("network:WebApplicationFirewallPolicy")) is wanted
    for site in stack_view.sites():
        assert ("TRUSTED_PROXY_HOPS" in stack_view.settings(site)) is wanted
        if stack_view.tier == "isolated" or not wanted:
            # Hub and VNet clients keep reaching the ILB directly; only standard is closed.
            assert "ipSecurityRestrictions" not in site.inputs["siteConfig"]


# --- hub connectivity -----------------------------------------------------------------------

def test_hub_is_peered_both_ways_and_uses_its_gateway():
    view = isolated(hubVirtualNetworkId=HUB_ID)
    peerings = {p.name: p for p in view.all("network:VirtualNetworkPeering")}
    hub_side, stack_side = peerings["peering-hub-to-stack"], peerings["peering-stack-to-hub"]
    vnet = view.one("network:VirtualNetwork").inputs["virtualNetworkName"]
    assert (hub_side.inputs["resourceGroupName"], hub_side.inputs["virtualNetworkName"]) == (
        "rg-hub", "vnet-hub")
    assert hub_side.inputs["remoteVirtualNetwork"]["id"].endswith("/virtualNetworks/" + vnet)
    assert hub_side.inputs["allowGatewayTransit"] is True
    assert stack_side.inputs["virtualNetworkName"] == vnet
    assert stack_side.inputs["resourceGroupName"] == view.run.outputs["resourceGroupName"]
    assert stack_side.inputs["remoteVirtualNetwork"]["id"] == HUB_ID
    assert stack_side.inputs["useRemoteGateways"] is True
    assert hub_side.urn in stack_side.depends_on
    for peering in (hub_side, stack_side):
        assert peering.inputs["allowVirtualNetworkAccess"] is True


def test_every_private_dns_zone_of_the_stack_is_linked_to_the_hub():
    view = isolated(hubVirtualNetworkId=HUB_ID)
    zones = {z.inputs["privateZoneName"] for z in view.all("privatedns:PrivateZone")}
    assert len(zones) == 4  # privatelink postgres, vault, blob + the ASE's zone
    hub_links = [link.inputs for link in view.all("privatedns:VirtualNetworkLink")
                 if link.inputs["virtualNetwork"]["id"] == HUB_ID]
    assert {link["privateZoneName"] for link in hub_links} == zones
    assert all(link["registrationEnabled"] is False for link in hub_links)


def test_hub_without_a_gateway_is_peered_without_transit():
    view = isolated(hubVirtualNetworkId=HUB_ID, hubUseRemoteGateways="false")
    peerings = {p.name: p.inputs for p in view.all("network:VirtualNetworkPeering")}
    assert peerings["peering-stack-to-hub"]["useRemoteGateways"] is False
    assert peerings["peering-hub-to-stack"]["allowGatewayTransit"] is False


def test_standard_tier_can_join_the_hub_too():
    view = standard(hubVirtualNetworkId=HUB_ID)
    assert len(view.all("network:VirtualNetworkPeering")) == 2
    hub_links = [link for link in view.all("privatedns:VirtualNetworkLink")
                 if link.inputs["virtualNetwork"]["id"] == HUB_ID]
    assert len(hub_links) == 3


def test_the_committed_isolated_stack_is_reached_through_the_waf(isolated_view):
    assert load_stack_config(isolated_view.stack)[P + "ingress"] == "applicationGateway"
    gateway = isolated_view.one("network:ApplicationGateway").inputs
    app_host = isolated_view.run.outputs["defaultSiteUrl"].removeprefix("https://")
    assert gateway["backendAddressPools"][0]["backendAddresses"] == [{"fqdn": app_host}]
    policy = isolated_view.one("network:WebApplicationFirewallPolicy").inputs
    assert policy["policySettings"]["mode"] == "Prevention"
    assert isolated_view.run.outputs["siteUrl"].endswith(".westeurope.cloudapp.azure.com")


# --- what the gateway and the slot wait for / admit -----------------------------------------

def _waits_for(view: StackView, resource) -> set[str]:
    """Logical names of everything `resource` waits for, directly or through others."""
    seen: set[str] = set()
    pending = list(resource.depends_on)
    while pending:
        urn = pending.pop()
        if urn not in seen:
            seen.add(urn)
            pending.extend(view.by_urn(urn).depends_on)
    return {view.by_urn(urn).name for urn in seen}


def test_gateway_waits_for_the_vaults_private_endpoint_and_its_dns():
    for view in (isolated(), standard(ingress="applicationGateway")):
        waits_for = _waits_for(view, view.one("network:ApplicationGateway"))
        assert {"pe-vault", "pe-dns-vault", "gateway-key-vault-secrets-user"} <= waits_for


def test_every_committed_gateway_waits_for_the_vaults_private_dns(stack_view):
    for gateway in stack_view.all("network:ApplicationGateway"):
        assert "pe-dns-vault" in _waits_for(stack_view, gateway)


def test_behind_the_gateway_only_production_is_closed_the_staging_slot_stays_probeable():
    view = standard(ingress="applicationGateway")
    production = view.one("web:WebApp").inputs["siteConfig"]
    staging = view.one("web:WebAppSlot").inputs["siteConfig"]
    assert production["ipSecurityRestrictionsDefaultAction"] == "Deny"
    assert "ipSecurityRestrictions" not in staging
    assert "ipSecurityRestrictionsDefaultAction" not in staging


def test_the_waf_admits_every_body_the_site_reads_itself():
    """Over the WAF's limits its bare 413 would replace the site's own, which keeps the form."""
    settings = isolated().one("network:WebApplicationFirewallPolicy").inputs["policySettings"]
    site_body_limit = request_body_limit(DEFAULT_MAX_PHOTO_BYTES)
    assert settings["fileUploadLimitInMb"] * 1024 * 1024 >= site_body_limit
    assert settings["maxRequestBodySizeInKb"] * 1024 >= Flask.default_config["MAX_FORM_MEMORY_SIZE"]
    assert settings["maxRequestBodySizeInKb"] <= 2000 and settings["fileUploadLimitInMb"] <= 4000
