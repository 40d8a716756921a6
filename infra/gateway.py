"""Internet -> Application Gateway WAF_v2 -> the app: how the site's users reach it.

The isolated tier's app answers only on the ASE's internal load balancer and the standard tier's
app can be closed to everything but the gateway, so this gateway, in its own subnet of the
stack's VNet, is the site's one public front door:

* a WAF policy in Prevention mode (Microsoft Default Rule Set 2.1 + Bot Manager 1.1);
* an HTTPS listener whose certificate the gateway reads from the stack's Key Vault with its own
  user-assigned identity (Key Vault Secrets User on that one secret, made minutes before the
  gateway: it reads the certificate once and does not retry); an HTTP listener that only
  redirects to it; TLS 1.2 or later (AppGwSslPolicy20220101S);
* one backend, the app's own host name (<app>.<ase>.appserviceenvironment.net, or
  <app>.azurewebsites.net in the standard tier) over HTTPS, health-probed on the health path.

Host names: the gateway talks to the app by the app's host name, which is what App Service
routes on and what the app's certificate covers, and tells the site the public host in
X-Forwarded-Host (a rewrite rule that replaces any client value). The site trusts it only with
TRUSTED_PROXY_HOPS=2 (webapp/security.py), so absolute URLs, the host-only session cookie and
the Origin check on posted forms all use the public host. The same rule drops the ports the gateway
writes into X-Forwarded-For, so the site can pick the client out of the list.

Certificate: config `applicationGatewayCertificateName` names a certificate (or a secret holding
an unencrypted PFX) in the stack's vault. Without it the program makes a self-signed one
(pulumi-tls key and certificate, turned into a PFX and written as a Key Vault secret through
ARM, like SECRET_KEY in infra/data.py). infra/README.md says how to replace it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls
from cryptography.hazmat.primitives.serialization import (
    NoEncryption,
    load_pem_private_key,
    pkcs12,
)
from cryptography.x509 import load_pem_x509_certificate
from pulumi_azure_native import authorization, keyvault, managedidentity, network

from infra.config import Ingress
from infra.context import Context
from infra.identity import KEY_VAULT_SECRETS_USER, grant, wait_for_grant
from infra.monitoring import diagnostics

TYPE = "restaurant-review:ingress:ApplicationGateway"

SKU = "WAF_v2"
# Predefined policy: TLS 1.2 and 1.3 only, with the strong cipher suites.
TLS_POLICY = "AppGwSslPolicy20220101S"
MANAGED_RULE_SETS = (("Microsoft_DefaultRuleSet", "2.1"), ("Microsoft_BotManagerRuleSet", "1.1"))
# The WAF must admit every body the site itself reads, or its bare 413 page replaces the site's,
# which names the limit and keeps what the visitor typed. Multipart bodies with files count
# against the upload limit: the site reads up to webapp.config.request_body_limit (32.25 MiB
# with the 8 MiB photo limit). Bodies without files count against the request-body limit:
# Flask's MAX_FORM_MEMORY_SIZE (500,000 bytes). CRS 3.2 and later (DRS 2.1 here) on WAF_v2 allow
# up to 2,000 KB and 4,000 MB. tests/infra/test_ingress.py checks both against the site.
WAF_FILE_UPLOAD_LIMIT_MB = 33
WAF_MAX_REQUEST_BODY_KB = 512
# The gateway waits this long for the app (photo uploads included).
BACKEND_TIMEOUT_SECONDS = 60
# Application Gateway v2 needs these from the Azure platform (Microsoft's NSG requirements for
# the gateway subnet); the rest of inbound is what the site serves to the Internet.
GATEWAY_MANAGER_PORTS = "65200-65535"
SELF_SIGNED_VALIDITY_HOURS = 365 * 24
SELF_SIGNED_RENEWAL_HOURS = 30 * 24  # a run within 30 days of expiry issues a new one
# The gateway reads its certificate once, when it is created or its certificate changes, and
# fails (ApplicationGatewayKeyVaultSecretAccessDenied) rather than retry while its identity's
# fresh Key Vault role assignment applies (mspnp/aks-baseline#242): it waits for the grant
# (infra/identity.py, GRANT_PROPAGATION_WAIT).

# Names of the gateway's own parts (ARM sub-resources, referenced by id below).
FRONTEND_IP = "public-frontend"
HTTPS_PORT, HTTP_PORT = "port-443", "port-80"
HTTPS_LISTENER, HTTP_LISTENER = "https-listener", "http-listener"
CERTIFICATE = "listener-certificate"
BACKEND_POOL = "app-service"
BACKEND_SETTINGS = "app-service-https"
PROBE = "app-service-health"
REDIRECT = "http-to-https"
REWRITES = "forwarded-headers"


@dataclass(frozen=True)
class ApplicationGatewayArgs:
    ctx: Context
    # Config `applicationGateway*`: its subnet, autoscale range, public host and certificate.
    ingress: Ingress
    # The public IP and the gateway in zones 1-3 (config zoneRedundant).
    zone_redundant: bool
    health_check_path: str  # what the health probe asks the app for
    vnet_name: pulumi.Input[str]
    backend_host_name: pulumi.Input[str]  # the app's default host name
    vault: keyvault.Vault
    workspace_id: pulumi.Input[str]  # the stack's Log Analytics workspace
    # Standard tier: the app's access restrictions name this subnet, which needs the
    # Microsoft.Web service endpoint for that.
    app_service_endpoint: bool = False
    # The subnet written just before this one: Azure takes one write per VNet at a time.
    after: pulumi.Resource | None = None
    # What makes the vault reachable from the gateway's subnet (its private endpoint and DNS
    # zone group, when public access is off): the gateway reads its certificate at creation.
    vault_reachable: tuple[pulumi.Resource, ...] = ()


def _nsg_rule(name: str, priority: int, source: str, ports: list[str],
              protocol: str = "Tcp") -> network.SecurityRuleArgs:
    return network.SecurityRuleArgs(
        name=name, priority=priority, direction="Inbound", access="Allow", protocol=protocol,
        source_address_prefix=source, source_port_range="*", destination_address_prefix="*",
        destination_port_ranges=ports,
    )


def gateway_nsg_rules() -> list[network.SecurityRuleArgs]:
    return [
        _nsg_rule("allow-internet-https-http", 100, "Internet", ["443", "80"]),
        _nsg_rule("allow-gateway-manager", 110, "GatewayManager", [GATEWAY_MANAGER_PORTS]),
        _nsg_rule("allow-azure-load-balancer", 120, "AzureLoadBalancer", ["*"], protocol="*"),
    ]


def pfx_base64(private_key_pem: str, certificate_pem: str) -> str:
    """The key and certificate as a base64 PKCS#12 without a password (what the gateway reads)."""
    key = load_pem_private_key(private_key_pem.encode(), password=None)
    certificate = load_pem_x509_certificate(certificate_pem.encode())
    pfx = pkcs12.serialize_key_and_certificates(b"listener", key, certificate, None,
                                                NoEncryption())
    return base64.b64encode(pfx).decode()


def self_signed_secret_name(certificate_pem: str) -> str:
    """One secret per certificate: the PFX bytes differ on every run (random MAC salt), so the
    secret ignores value changes and a renewed certificate goes to a new secret instead."""
    return "gateway-self-signed-" + hashlib.sha256(certificate_pem.encode()).hexdigest()[:12]


def default_public_host(ctx: Context) -> str:
    """The public IP's Azure DNS name, <label>.<region>.cloudapp.azure.com."""
    return f"{dns_label(ctx)}.{ctx.location}.cloudapp.azure.com"


def dns_label(ctx: Context) -> str:
    return ctx.names.unique


def _zones(zone_redundant: bool) -> list[str] | None:
    return ["1", "2", "3"] if zone_redundant else None


class ApplicationGateway(pulumi.ComponentResource):
    """The WAF_v2 gateway, its subnet, NSG, public IP, identity, certificate and diagnostics."""

    public_host: str
    public_url: str
    subnet: network.Subnet
    gateway: network.ApplicationGateway

    def __init__(self, name: str, args: ApplicationGatewayArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        ctx, ingress = args.ctx, args.ingress
        self._ctx = ctx
        self._child = pulumi.ResourceOptions(parent=self)
        self.public_host = ingress.host_name or default_public_host(ctx)
        self.public_url = f"https://{self.public_host}"
        self.gateway_name = f"agw-{ctx.names.base}"

        self.subnet = self._subnet(args)
        self.public_ip = self._public_ip(args.zone_redundant)
        self.identity = managedidentity.UserAssignedIdentity(
            "gateway-identity", resource_name_=f"id-{ctx.names.base}-gateway",
            resource_group_name=ctx.rg_name, location=ctx.location, tags=ctx.tags,
            opts=self._child)
        secret_name = self._certificate_secret_name(ingress, args.vault)
        self.vault_access = self._grant_secret(args.vault, secret_name)
        self.vault_access_applied = wait_for_grant("gateway-key-vault-grant-propagation",
                                                   self.vault_access, self)
        self.certificate_secret_id = pulumi.Output.all(
            args.vault.properties.vault_uri, secret_name).apply(
            lambda values: f"{values[0]}secrets/{values[1]}")
        self.waf_policy = self._waf_policy()
        self.gateway = self._gateway(args)
        self.diagnostics = diagnostics(ctx, "gateway", self.gateway.id, args.workspace_id, self,
                                       category_group="allLogs")
        self.register_outputs({"publicUrl": self.public_url, "gatewayId": self.gateway.id,
                               "publicIpAddress": self.public_ip.ip_address})

    # --- network ---------------------------------------------------------------------------------

    def _subnet(self, args: ApplicationGatewayArgs) -> network.Subnet:
        ctx = self._ctx
        nsg = network.NetworkSecurityGroup(
            "nsg-gateway", network_security_group_name=f"nsg-{ctx.names.base}-gateway",
            resource_group_name=ctx.rg_name, location=ctx.location,
            security_rules=gateway_nsg_rules(), tags=ctx.tags, opts=self._child)
        return network.Subnet(
            "snet-gateway", subnet_name="snet-gateway", resource_group_name=ctx.rg_name,
            virtual_network_name=args.vnet_name, address_prefix=args.ingress.subnet,
            network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
            service_endpoints=[network.ServiceEndpointPropertiesFormatArgs(
                service="Microsoft.Web")] if args.app_service_endpoint else None,
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[args.after] if args.after else None))

    def _public_ip(self, zone_redundant: bool) -> network.PublicIPAddress:
        ctx = self._ctx
        return network.PublicIPAddress(
            "gateway-public-ip", public_ip_address_name=f"pip-{ctx.names.base}-gateway",
            resource_group_name=ctx.rg_name, location=ctx.location,
            sku=network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
            public_ip_allocation_method="Static", public_ip_address_version="IPv4",
            dns_settings=network.PublicIPAddressDnsSettingsArgs(domain_name_label=dns_label(ctx)),
            zones=_zones(zone_redundant), tags=ctx.tags, opts=self._child)

    # --- certificate -----------------------------------------------------------------------------

    def _grant_secret(self, vault: keyvault.Vault,
                      secret_name: pulumi.Output[str]) -> authorization.RoleAssignment:
        """Key Vault Secrets User on the certificate's secret alone, not on the whole vault
        (which also holds the site's SECRET_KEY)."""
        ctx = self._ctx
        return grant(
            "gateway-key-vault-secrets-user", role_id=KEY_VAULT_SECRETS_USER,
            scope=pulumi.Output.concat(vault.id, "/secrets/", secret_name),
            scope_key=secret_name.apply(lambda name: f"{ctx.names.key_vault}/secrets/{name}"),
            principal_id=self.identity.principal_id,
            principal_key=f"{ctx.names.base}/gateway-identity",
            subscription_id=ctx.subscription_id, parent=self)

    def _certificate_secret_name(self, ingress: Ingress,
                                 vault: keyvault.Vault) -> pulumi.Output[str]:
        """The listener certificate's secret; the gateway reads it by its versionless id, so it
        follows new versions."""
        name = ingress.certificate_name
        return pulumi.Output.from_input(name) if name else self._self_signed(vault)

    def _self_signed(self, vault: keyvault.Vault) -> pulumi.Output[str]:
        ctx = self._ctx
        key = tls.PrivateKey("gateway-tls-key", algorithm="RSA", rsa_bits=2048, opts=self._child)
        certificate = tls.SelfSignedCert(
            "gateway-tls-certificate", private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=self.public_host,
                                                  organization="restaurant-review"),
            dns_names=[self.public_host],
            validity_period_hours=SELF_SIGNED_VALIDITY_HOURS,
            early_renewal_hours=SELF_SIGNED_RENEWAL_HOURS,
            allowed_uses=["key_encipherment", "digital_signature", "server_auth"],
            opts=self._child)
        pfx = pulumi.Output.all(key.private_key_pem, certificate.cert_pem).apply(
            lambda pems: pfx_base64(pems[0], pems[1]))
        secret = keyvault.Secret(
            "gateway-self-signed-certificate",
            secret_name=certificate.cert_pem.apply(self_signed_secret_name),
            vault_name=vault.name, resource_group_name=ctx.rg_name,
            properties=keyvault.SecretPropertiesArgs(value=pulumi.Output.secret(pfx),
                                                     content_type="application/x-pkcs12"),
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["properties.value"]))
        return secret.name

    # --- WAF and the gateway ---------------------------------------------------------------------

    def _waf_policy(self) -> network.WebApplicationFirewallPolicy:
        ctx = self._ctx
        return network.WebApplicationFirewallPolicy(
            "waf-policy", policy_name=f"waf-{ctx.names.base}", resource_group_name=ctx.rg_name,
            location=ctx.location,
            policy_settings=network.PolicySettingsArgs(
                state="Enabled", mode="Prevention", request_body_check=True,
                max_request_body_size_in_kb=WAF_MAX_REQUEST_BODY_KB,
                file_upload_limit_in_mb=WAF_FILE_UPLOAD_LIMIT_MB),
            managed_rules=network.ManagedRulesDefinitionArgs(managed_rule_sets=[
                network.ManagedRuleSetArgs(rule_set_type=kind, rule_set_version=version)
                for kind, version in MANAGED_RULE_SETS]),
            tags=ctx.tags, opts=self._child)

    def _part(self, kind: str, part: str) -> network.SubResourceArgs:
        """A reference to one of the gateway's own parts (ARM wants ids, even for those)."""
        ctx = self._ctx
        gateway_id = pulumi.Output.all(ctx.subscription_id, ctx.rg_name).apply(
            lambda values: f"/subscriptions/{values[0]}/resourceGroups/{values[1]}/providers/"
            f"Microsoft.Network/applicationGateways/{self.gateway_name}")
        return network.SubResourceArgs(id=gateway_id.apply(lambda gid: f"{gid}/{kind}/{part}"))

    def _listeners(self) -> list[network.ApplicationGatewayHttpListenerArgs]:
        def listener(name: str, port: str, protocol: str, certificate: bool):
            return network.ApplicationGatewayHttpListenerArgs(
                name=name, protocol=protocol,
                frontend_ip_configuration=self._part("frontendIPConfigurations", FRONTEND_IP),
                frontend_port=self._part("frontendPorts", port),
                host_names=[self.public_host],
                require_server_name_indication=certificate or None,
                ssl_certificate=self._part("sslCertificates", CERTIFICATE) if certificate
                else None)

        return [listener(HTTPS_LISTENER, HTTPS_PORT, "Https", True),
                listener(HTTP_LISTENER, HTTP_PORT, "Http", False)]

    def _rules(self) -> list[network.ApplicationGatewayRequestRoutingRuleArgs]:
        return [
            network.ApplicationGatewayRequestRoutingRuleArgs(
                name="https-to-app", rule_type="Basic", priority=100,
                http_listener=self._part("httpListeners", HTTPS_LISTENER),
                backend_address_pool=self._part("backendAddressPools", BACKEND_POOL),
                backend_http_settings=self._part("backendHttpSettingsCollection",
                                                 BACKEND_SETTINGS),
                rewrite_rule_set=self._part("rewriteRuleSets", REWRITES)),
            # Plain HTTP only ever answers with a redirect to the HTTPS listener.
            network.ApplicationGatewayRequestRoutingRuleArgs(
                name="http-redirect", rule_type="Basic", priority=200,
                http_listener=self._part("httpListeners", HTTP_LISTENER),
                redirect_configuration=self._part("redirectConfigurations", REDIRECT)),
        ]

    def _rewrites(self) -> network.ApplicationGatewayRewriteRuleSetArgs:
        header = network.ApplicationGatewayHeaderConfigurationArgs
        return network.ApplicationGatewayRewriteRuleSetArgs(name=REWRITES, rewrite_rules=[
            network.ApplicationGatewayRewriteRuleArgs(
                name="forwarded-for-and-host", rule_sequence=100,
                action_set=network.ApplicationGatewayRewriteRuleActionSetArgs(
                    request_header_configurations=[
                        # The client's list plus the client's address, without ports.
                        header(header_name="X-Forwarded-For",
                               header_value="{var_add_x_forwarded_for_proxy}"),
                        # The host the visitor asked for, replacing any value they sent.
                        header(header_name="X-Forwarded-Host", header_value="{var_host}"),
                    ]))])

    def _backend(self, args: ApplicationGatewayArgs) -> dict:
        health_path = args.health_check_path
        return {
            "backend_address_pools": [network.ApplicationGatewayBackendAddressPoolArgs(
                name=BACKEND_POOL,
                backend_addresses=[network.ApplicationGatewayBackendAddressArgs(
                    fqdn=args.backend_host_name)])],
            "backend_http_settings_collection": [network.ApplicationGatewayBackendHttpSettingsArgs(
                name=BACKEND_SETTINGS, port=443, protocol="Https", cookie_based_affinity="Disabled",
                pick_host_name_from_backend_address=True, request_timeout=BACKEND_TIMEOUT_SECONDS,
                probe=self._part("probes", PROBE))],
            "probes": [network.ApplicationGatewayProbeArgs(
                name=PROBE, protocol="Https", path=health_path, interval=30, timeout=30,
                unhealthy_threshold=3, pick_host_name_from_backend_http_settings=True,
                match=network.ApplicationGatewayProbeHealthResponseMatchArgs(
                    status_codes=["200"]))],
        }

    def _frontend(self) -> dict:
        return {
            "gateway_ip_configurations": [network.ApplicationGatewayIPConfigurationArgs(
                name="gateway-ip", subnet=network.SubResourceArgs(id=self.subnet.id))],
            "frontend_ip_configurations": [network.ApplicationGatewayFrontendIPConfigurationArgs(
                name=FRONTEND_IP, public_ip_address=network.SubResourceArgs(
                    id=self.public_ip.id))],
            "frontend_ports": [network.ApplicationGatewayFrontendPortArgs(name=HTTPS_PORT,
                                                                          port=443),
                               network.ApplicationGatewayFrontendPortArgs(name=HTTP_PORT,
                                                                          port=80)],
            "ssl_certificates": [network.ApplicationGatewaySslCertificateArgs(
                name=CERTIFICATE, key_vault_secret_id=self.certificate_secret_id)],
            "ssl_policy": network.ApplicationGatewaySslPolicyArgs(policy_type="Predefined",
                                                                  policy_name=TLS_POLICY),
            "http_listeners": self._listeners(),
            "redirect_configurations": [network.ApplicationGatewayRedirectConfigurationArgs(
                name=REDIRECT, redirect_type="Permanent",
                target_listener=self._part("httpListeners", HTTPS_LISTENER),
                include_path=True, include_query_string=True)],
        }

    def _gateway(self, args: ApplicationGatewayArgs) -> network.ApplicationGateway:
        ctx, ingress = self._ctx, args.ingress
        return network.ApplicationGateway(
            "application-gateway", application_gateway_name=self.gateway_name,
            resource_group_name=ctx.rg_name, location=ctx.location,
            sku=network.ApplicationGatewaySkuArgs(name=SKU, tier=SKU),
            autoscale_configuration=network.ApplicationGatewayAutoscaleConfigurationArgs(
                min_capacity=ingress.min_capacity, max_capacity=ingress.max_capacity),
            zones=_zones(args.zone_redundant),
            enable_http2=True,
            identity=network.ManagedServiceIdentityArgs(
                type="UserAssigned", user_assigned_identities=[self.identity.id]),
            firewall_policy=network.SubResourceArgs(id=self.waf_policy.id),
            **self._frontend(),
            **self._backend(args),
            request_routing_rules=self._rules(),
            rewrite_rule_sets=[self._rewrites()],
            tags=ctx.tags,
            # The gateway reads the certificate at creation: the role assignment must have
            # applied and the vault's private name must resolve.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vault_access_applied,
                                                                 *args.vault_reachable]))
