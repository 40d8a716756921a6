"""Tier-specific invariants: basic, standard, isolated, data safety (infra/README.md)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from infra.app import SLOT_STICKY_SETTINGS
from infra.private_link import PRIVATE_DNS_ZONES
from tests.slot_swap import (
    SWAP_RESTARTS,
    Restart,
    declared_layout,
    per_slot_identity_layout,
    restart_problems,
)

STATEFUL = ("dbforpostgresql:Server", "dbforpostgresql:Database", "storage:StorageAccount",
            "storage:BlobContainer", "keyvault:Vault", "keyvault:Secret")
NETWORK_TYPES = ("network:VirtualNetwork", "network:Subnet", "network:PrivateEndpoint",
                 "privatedns:PrivateZone", "web:AppServiceEnvironment")


# --- basic ----------------------------------------------------------------------------------

def test_basic_is_a_single_public_b1_app(basic_view):
    assert basic_view.one("web:AppServicePlan").inputs["sku"]["name"] == "B1"
    assert basic_view.all("web:WebAppSlot") == []
    assert basic_view.all("monitor:AutoscaleSetting") == []
    for network_type in NETWORK_TYPES:
        assert basic_view.all(network_type) == [], network_type
    app = basic_view.one("web:WebApp").inputs
    assert "virtualNetworkSubnetId" not in app and "hostingEnvironmentProfile" not in app


def test_basic_postgres_admits_only_azure_services_and_storage_only_entra(basic_view):
    # Storage and Key Vault stay on public endpoints with identity-only access on Basic (no
    # VNet, and App Service is not a trusted service for their firewalls): see infra/README.md.
    rules = basic_view.all("dbforpostgresql:FirewallRule")
    assert [(r.inputs["startIpAddress"], r.inputs["endIpAddress"]) for r in rules] == \
        [("0.0.0.0", "0.0.0.0")]  # ARM's "allow Azure services" marker, nothing else
    assert basic_view.one("dbforpostgresql:Server").inputs["network"]["publicNetworkAccess"] == \
        "Enabled"
    account = basic_view.one("storage:StorageAccount", "storage").inputs
    assert account["allowSharedKeyAccess"] is False and account["defaultToOAuthAuthentication"]


def test_dev_is_disposable(basic_view):
    assert [r.name for r in basic_view.run.resources if r.protect or r.retain_on_delete] == []


# --- standard and isolated: VNet, private endpoints, slot, autoscale ------------------------------

def test_private_endpoints_with_private_dns_for_every_data_service(vnet_view):
    endpoints = vnet_view.all("network:PrivateEndpoint")
    group_ids = {e.inputs["privateLinkServiceConnections"][0]["groupIds"][0]: e for e in endpoints}
    assert set(group_ids) == {"postgresqlServer", "vault", "blob"}
    vnet_id = vnet_view.one("network:VirtualNetwork").inputs["virtualNetworkName"]
    zones = {z.inputs["privateZoneName"]: z for z in vnet_view.all("privatedns:PrivateZone")}
    links = vnet_view.all("privatedns:VirtualNetworkLink")
    groups = vnet_view.all("network:PrivateDnsZoneGroup")
    for group_id, endpoint in group_ids.items():
        zone_name = PRIVATE_DNS_ZONES[group_id]
        assert zone_name in zones
        assert endpoint.inputs["subnet"]["id"].endswith("/subnets/snet-private-endpoints")
        link = [link for link in links if link.inputs["privateZoneName"] == zone_name]
        assert len(link) == 1 and link[0].inputs["registrationEnabled"] is False
        assert link[0].inputs["virtualNetwork"]["id"].endswith(f"/virtualNetworks/{vnet_id}")
        group = [g for g in groups
                 if g.inputs["privateEndpointName"] == endpoint.inputs["privateEndpointName"]]
        assert len(group) == 1
        config = group[0].inputs["privateDnsZoneConfigs"][0]
        assert config["privateDnsZoneId"].endswith(f"/privateDnsZones/{zone_name}")
    assert set(PRIVATE_DNS_ZONES.values()) == {
        "privatelink.postgres.database.azure.com", "privatelink.vaultcore.azure.net",
        "privatelink.blob.core.windows.net"}


def test_public_network_access_is_disabled_on_data_services(vnet_view):
    account = vnet_view.one("storage:StorageAccount", "storage").inputs
    assert account["publicNetworkAccess"] == "Disabled"
    assert account["networkRuleSet"]["defaultAction"] == "Deny"
    vault = vnet_view.one("keyvault:Vault").inputs["properties"]
    assert vault["publicNetworkAccess"] == "Disabled"
    assert vault["networkAcls"]["defaultAction"] == "Deny"
    server = vnet_view.one("dbforpostgresql:Server").inputs
    assert server["network"]["publicNetworkAccess"] == "Disabled"
    assert server["authConfig"]["passwordAuth"] == "Disabled"
    assert vnet_view.all("dbforpostgresql:FirewallRule") == []


def test_every_subnet_has_its_own_nsg(vnet_view):
    subnets = vnet_view.all("network:Subnet")
    nsgs = {n.inputs["networkSecurityGroupName"] for n in vnet_view.all(
        "network:NetworkSecurityGroup")}
    attached = [s.inputs["networkSecurityGroup"]["id"].rsplit("/", 1)[1] for s in subnets]
    assert len(subnets) >= 3 and sorted(attached) == sorted(nsgs)
    space = ipaddress.ip_network(
        vnet_view.one("network:VirtualNetwork").inputs["addressSpace"]["addressPrefixes"][0])
    prefixes = [ipaddress.ip_network(s.inputs["addressPrefix"]) for s in subnets]
    assert all(p.subnet_of(space) for p in prefixes)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(prefixes, 2))
    scripts = vnet_view.one("network:NetworkSecurityGroup", "nsg-deployment-scripts")
    assert [rule["access"] for rule in scripts.inputs["securityRules"]] == ["Deny"]


def test_both_slots_run_as_one_identity_and_database_role(vnet_view):
    app, slot = vnet_view.one("web:WebApp"), vnet_view.one("web:WebAppSlot")
    assert slot.inputs["slot"] == "staging" and slot.inputs["name"] == app.inputs["name"]
    assert slot.inputs["identity"] == app.inputs["identity"]
    assert slot.inputs["keyVaultReferenceIdentity"] == app.inputs["keyVaultReferenceIdentity"]
    # Every setting is identical and none is sticky, so a swap moves exactly the code.
    assert vnet_view.settings(app) == vnet_view.settings(slot)
    sticky = vnet_view.one("web:WebAppSlotConfigurationNames").inputs
    assert sticky.get("appSettingNames", []) == list(SLOT_STICKY_SETTINGS) == []
    for key in ("siteConfig", "httpsOnly", "virtualNetworkSubnetId", "hostingEnvironmentProfile",
                "outboundVnetRouting"):
        if key == "siteConfig":
            assert {k: v for k, v in slot.inputs[key].items() if k != "appSettings"} == \
                {k: v for k, v in app.inputs[key].items() if k != "appSettings"}
        else:
            assert slot.inputs.get(key) == app.inputs.get(key), key


def test_autoscale_keeps_at_least_two_instances(vnet_view):
    setting = vnet_view.one("monitor:AutoscaleSetting").inputs
    plan = vnet_view.one("web:AppServicePlan")
    assert setting["targetResourceUri"].endswith("/serverfarms/" + plan.inputs["name"])
    profile = setting["profiles"][0]
    assert int(profile["capacity"]["minimum"]) >= 2
    assert int(profile["capacity"]["maximum"]) >= int(profile["capacity"]["minimum"])
    directions = sorted(rule["scaleAction"]["direction"] for rule in profile["rules"])
    assert directions == ["Decrease", "Increase"]
    assert plan.inputs["sku"]["capacity"] >= 2
    # Autoscale owns the instance count; a later `up` must not reset it to the minimum.
    assert "sku.capacity" in plan.ignore_changes


def test_production_postgres_is_redundant_with_long_backups(vnet_view):
    server = vnet_view.one("dbforpostgresql:Server").inputs
    assert server["backup"] == {"backupRetentionDays": 35, "geoRedundantBackup": "Enabled"}
    assert server["highAvailability"]["mode"] == "ZoneRedundant"
    assert server["sku"]["tier"] in ("GeneralPurpose", "MemoryOptimized")


def test_stateful_resources_survive_destroy_and_replacement(protected_view):
    for type_suffix in STATEFUL:
        # The gateway's self-signed certificate secret is regenerated, not data: not pinned;
        # nor is the deployer's artefact account (release zips rebuilt from git).
        name = {"storage:StorageAccount": "storage", "storage:BlobContainer": "photo-container",
                "keyvault:Secret": "flask-secret-key"}
        resource = protected_view.one(type_suffix, name.get(type_suffix))
        assert resource.protect and resource.retain_on_delete, resource.name
    assert protected_view.one("resources:ResourceGroup").protect
    # Nothing stateless is pinned: protecting the app would block ordinary replacements.
    assert not protected_view.one("web:WebApp").protect


# --- standard -----------------------------------------------------------------------------

def test_standard_app_routes_all_outbound_traffic_through_its_delegated_subnet(standard_view):
    subnet = standard_view.one("network:Subnet", "snet-app-integration")
    assert subnet.inputs["delegations"][0]["serviceName"] == "Microsoft.Web/serverFarms"
    for site in standard_view.sites():
        assert site.inputs["virtualNetworkSubnetId"].endswith("/subnets/snet-app-integration")
        assert site.inputs["outboundVnetRouting"] == {"allTraffic": True}
        assert site.inputs["siteConfig"]["vnetRouteAllEnabled"] is True


def test_standard_plan_is_zone_redundant_premium_v3(standard_view):
    plan = standard_view.one("web:AppServicePlan").inputs
    assert plan["sku"]["name"] == "P1v3"
    assert plan["zoneRedundant"] is True and plan["reserved"] is True


# --- isolated -----------------------------------------------------------------------------

def test_isolated_runs_in_an_internal_ase_v3(isolated_view):
    ase = isolated_view.one("web:AppServiceEnvironment")
    assert ase.inputs["kind"] == "ASEv3"
    assert ase.inputs["internalLoadBalancingMode"] == "Web, Publishing"
    subnet = isolated_view.one("network:Subnet", "snet-ase")
    assert ase.inputs["virtualNetwork"]["id"].endswith("/subnets/snet-ase")
    assert ipaddress.ip_network(subnet.inputs["addressPrefix"]).prefixlen <= 24
    assert subnet.inputs["delegations"][0]["serviceName"] == "Microsoft.Web/hostingEnvironments"
    assert subnet.inputs["networkSecurityGroup"]["id"].endswith("-ase")
    hours = {k: int(v.rstrip("h")) for k, v in ase.custom_timeouts.items()}
    assert set(hours) == {"create", "update", "delete"} and min(hours.values()) >= 2


def test_isolated_plan_and_apps_live_in_the_ase(isolated_view):
    ase_name = isolated_view.one("web:AppServiceEnvironment").inputs["name"]
    plan = isolated_view.one("web:AppServicePlan").inputs
    assert plan["sku"]["name"] == "I1v2"
    assert plan["hostingEnvironmentProfile"]["id"].endswith(f"/hostingEnvironments/{ase_name}")
    for site in isolated_view.sites():
        assert site.inputs["hostingEnvironmentProfile"] == plan["hostingEnvironmentProfile"]
        assert "virtualNetworkSubnetId" not in site.inputs
    # No regional VNet integration: the ASE already places the apps inside the VNet.
    assert {s.name for s in isolated_view.all("network:Subnet")} == {
        "snet-private-endpoints", "snet-ase", "snet-deployment-scripts"} | (
        {"snet-gateway"} if isolated_view.all("network:ApplicationGateway") else set())


def test_isolated_private_dns_points_the_ase_names_at_its_ilb(isolated_view):
    ase_name = isolated_view.one("web:AppServiceEnvironment").inputs["name"]
    zone = f"{ase_name}.appserviceenvironment.net"
    zones = {z.inputs["privateZoneName"] for z in isolated_view.all("privatedns:PrivateZone")}
    assert zone in zones
    records = [r.inputs for r in isolated_view.all("privatedns:PrivateRecordSet")]
    assert sorted(r["relativeRecordSetName"] for r in records) == ["*", "*.scm", "@"]
    internal_ip = isolated_view.run.outputs["aseInternalIp"]
    ase_subnet = ipaddress.ip_network(
        isolated_view.one("network:Subnet", "snet-ase").inputs["addressPrefix"])
    assert ipaddress.ip_address(internal_ip) in ase_subnet
    for record in records:
        assert record["privateZoneName"] == zone and record["recordType"] == "A"
        assert record["aRecords"] == [{"ipv4Address": internal_ip}]
    assert isolated_view.run.outputs["defaultSiteUrl"].endswith(f".{zone}")


@pytest.mark.parametrize("restart", list(itertools.product(("production", "staging"), repeat=3)),
                         ids=lambda r: "-".join(r))
def test_every_restart_a_swap_can_cause_signs_in(vnet_view, restart):
    """Whichever slot's code and sticky settings the instances of either slot restart with,
    the identity and database role those settings name are the instances' own."""
    runs_in, code_from, sticky_from = restart
    layout = declared_layout(vnet_view.run)
    assert restart_problems(layout, Restart(runs_in, code_from, sticky_from)) == []


def test_the_per_slot_identity_layout_fails_the_swap(vnet_view):
    """The check above catches the layout whose every swap reverted."""
    layout = per_slot_identity_layout(declared_layout(vnet_view.run))
    assert restart_problems(layout, SWAP_RESTARTS["swap"]) == [
        "AZURE_CLIENT_ID names an identity staging does not hold"]
    assert restart_problems(layout, SWAP_RESTARTS["previous-release-in-staging"]) == []
