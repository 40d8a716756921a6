"""Bad config fails before any resource is declared.

Each error names the key, the bad value and what is allowed.
"""

from __future__ import annotations

import re

import pulumi
import pytest
import yaml

from infra.config import KEYS, TIER_SKUS, TIERS, ConfigError, Key, parse_config
from review import mocks


def parse(values: dict[str, str]):
    location = values.get("azure-native:location")
    return parse_config("test", values.get, location, mocks.SUBSCRIPTION_ID)


def spoil(valid_config, **changes):
    values = {**valid_config}
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values


def standard(valid_config, **changes):
    return spoil(valid_config, tier="standard", sku="P1v3", **changes)


def isolated(valid_config, **changes):
    return spoil(valid_config, tier="isolated", sku="I1v2", **changes)


def test_the_valid_baseline_parses(valid_config):
    cfg = parse(valid_config)
    assert (cfg.tier, cfg.sku, cfg.python_version, cfg.network) == ("basic", "B1", "3.11", None)


def test_unknown_tier(valid_config):
    with pytest.raises(ConfigError, match=r"'tier': 'premium' .* one of basic, standard, isolated"):
        parse(spoil(valid_config, tier="premium"))


@pytest.mark.parametrize(("tier", "sku"), [("basic", "P1v3"), ("standard", "B1"),
                                           ("isolated", "P1v3"), ("standard", "I1v2")])
def test_sku_not_valid_for_the_tier(valid_config, tier, sku):
    with pytest.raises(ConfigError, match=rf"'sku': '{sku}' is not allowed; expected one of"):
        parse(spoil(valid_config, tier=tier, sku=sku))


def test_overlapping_subnets(valid_config):
    values = standard(valid_config, integrationSubnet="10.40.2.0/26",
                      privateEndpointSubnet="10.40.2.0/27")
    with pytest.raises(ConfigError, match=r"'integrationSubnet': '10.40.2.0/26' .* does not "
                                          r"overlap privateEndpointSubnet 10.40.2.0/27"):
        parse(values)


@pytest.mark.parametrize(("tier", "key", "cidr", "minimum"), [
    ("isolated", "aseSubnet", "10.40.0.0/25", "/24"),
    ("standard", "integrationSubnet", "10.40.1.0/29", "/28"),
    ("standard", "privateEndpointSubnet", "10.40.2.0/29", "/28"),
    ("isolated", "deploymentScriptSubnet", "10.40.4.0/29", "/28"),
])
def test_too_small_subnets(valid_config, tier, key, cidr, minimum):
    values = (isolated if tier == "isolated" else standard)(valid_config, **{key: cidr})
    with pytest.raises(ConfigError, match=rf"'{key}': '{cidr}' .* a {minimum} or larger block"):
        parse(values)


def test_deployment_script_subnet_is_validated_like_the_others(valid_config):
    cfg = parse(standard(valid_config))
    assert cfg.network.script_subnet == "10.40.4.0/28"
    with pytest.raises(ConfigError, match=r"'deploymentScriptSubnet': '10.40.2.0/28' .* does not "
                                          r"overlap privateEndpointSubnet 10.40.2.0/27"):
        parse(standard(valid_config, deploymentScriptSubnet="10.40.2.0/28"))
    with pytest.raises(ConfigError, match=r"'deploymentScriptSubnet': .* unset in the basic tier"):
        parse(spoil(valid_config, deploymentScriptSubnet="10.40.4.0/28"))


def test_subnet_outside_the_vnet(valid_config):
    with pytest.raises(ConfigError, match=r"'privateEndpointSubnet': '192.168.0.0/27' .* inside "
                                          r"vnetAddressSpace 10.40.0.0/16"):
        parse(standard(valid_config, privateEndpointSubnet="192.168.0.0/27"))


@pytest.mark.parametrize("cidr", ["10.40.0.0/33", "10.40.1.5/24", "not-a-network"])
def test_malformed_cidr(valid_config, cidr):
    with pytest.raises(ConfigError, match=r"'vnetAddressSpace': .* an IPv4 CIDR block"):
        parse(standard(valid_config, vnetAddressSpace=cidr))


@pytest.mark.parametrize("email", ["alerts", "alerts@", "a b@example.com", "x@example"])
def test_bad_alert_email(valid_config, email):
    with pytest.raises(ConfigError, match=r"'alertEmail': .* an e-mail address"):
        parse(spoil(valid_config, alertEmail=email))


@pytest.mark.parametrize("domain", ["example.com", "WWW.Example.com", "-bad.example.com",
                                    "shop.example.com.", "mysite.azurewebsites.net"])
def test_bad_custom_domain(valid_config, domain):
    with pytest.raises(ConfigError, match=r"'customDomain': "):
        parse(spoil(valid_config, customDomain=domain))


def test_good_custom_domain(valid_config):
    assert parse(spoil(valid_config, customDomain="www.example.com")).custom_domain == \
        "www.example.com"


@pytest.mark.parametrize("key", ["tier", "alertEmail", "postgresAdminObjectId",
                                 "postgresAdminPrincipalName", "azure-native:location"])
def test_required_keys(valid_config, key):
    with pytest.raises(ConfigError, match=rf"^config '{key}' is required: .+ \(pulumi config set "
                                          rf"{key} <value>\)$"):
        parse(spoil(valid_config, **{key: None}))


def test_config_errors_are_run_errors_pulumi_prints_as_one_line(valid_config):
    """Pulumi prints a RunError's message alone; any other exception as a traceback."""
    with pytest.raises(pulumi.RunError) as raised:
        parse(spoil(valid_config, tier="premium"))
    assert "\n" not in str(raised.value)


def test_an_unquoted_version_that_yaml_made_a_number_gets_a_quoting_hint(valid_config):
    stack_file = yaml.safe_load("config:\n  restaurant-review:pythonVersion: 3.10\n")
    assert stack_file["config"]["restaurant-review:pythonVersion"] == 3.1
    values = {f"{mocks.PROJECT}:{key}": value for key, value in valid_config.items()
              if ":" not in key}
    values.update(stack_file["config"], **{"azure-native:location": "westeurope"})
    with pytest.raises(ConfigError, match=r"'pythonVersion': '3.1' is not allowed; expected one "
                                          r"of 3.10, 3.11, 3.12, 3.13 \(YAML read an unquoted "
                                          r"3.10 as the number 3.1: quote it in the stack file, "
                                          r'"3.10"\)$'):
        mocks.run_stack("unquoted", config=values)


@pytest.mark.parametrize("version", ["3.8", "3.11.0", "python3.11"])
def test_no_quoting_hint_where_quoting_would_not_help(valid_config, version):
    with pytest.raises(ConfigError) as raised:
        parse(spoil(valid_config, pythonVersion=version))
    assert "quote" not in str(raised.value)


def test_a_program_run_names_the_stack_file(valid_config):
    values = {**valid_config, "tier": "premium"}
    with pytest.raises(ConfigError, match=r"^Pulumi\.broken\.yaml: config 'tier': 'premium'"):
        mocks.run_stack("broken", config=values)


def test_admin_object_id_must_be_a_guid(valid_config):
    with pytest.raises(ConfigError, match=r"'postgresAdminObjectId': 'db-admins' .* a GUID"):
        parse(spoil(valid_config, postgresAdminObjectId="db-admins"))


@pytest.mark.parametrize("version", ["3.8", "3", "python3.11"])
def test_python_version(valid_config, version):
    with pytest.raises(ConfigError, match=r"'pythonVersion': .* one of 3.10, 3.11, 3.12, 3.13"):
        parse(spoil(valid_config, pythonVersion=version))


@pytest.mark.parametrize(("changes", "message"), [
    ({"minInstances": "1"}, r"'minInstances': '1' .* between 2 and 30"),
    ({"minInstances": "3", "maxInstances": "2"}, r"'maxInstances': '2' .* at least minInstances"),
    ({"maxInstances": "many"}, r"'maxInstances': 'many' .* an integer"),
])
def test_instance_counts(valid_config, changes, message):
    with pytest.raises(ConfigError, match=message):
        parse(standard(valid_config, **changes))


@pytest.mark.parametrize(("sku", "limit"), [("S1", 10), ("S3", 10), ("P1v3", 30), ("P1mv3", 30)])
def test_max_instances_stop_at_what_the_sku_allows(valid_config, sku, limit):
    tier = {"tier": "standard", "sku": sku}
    assert parse(spoil(valid_config, **tier, maxInstances=str(limit))).max_instances == limit
    with pytest.raises(ConfigError, match=rf"'maxInstances': '{limit + 1}' .* between 2 and "
                                          rf"{limit}"):
        parse(spoil(valid_config, **tier, maxInstances=str(limit + 1)))


def test_isolated_plans_scale_to_a_hundred_instances(valid_config):
    assert parse(isolated(valid_config, maxInstances="100")).max_instances == 100
    with pytest.raises(ConfigError, match=r"'maxInstances': '101' .* between 2 and 100"):
        parse(isolated(valid_config, maxInstances="101"))


def test_every_offered_sku_has_an_instance_limit():
    from infra.config import TIER_SKUS, max_instances_for

    assert {sku: max_instances_for(sku) for sku in TIER_SKUS["basic"]} == dict.fromkeys(
        TIER_SKUS["basic"], 3)
    assert all(max_instances_for(sku) >= 10 for skus in TIER_SKUS.values() for sku in skus
               if not sku.startswith("B"))


def test_keys_that_do_not_apply_to_the_tier(valid_config):
    with pytest.raises(ConfigError, match=r"'integrationSubnet': .* unset in the basic tier"):
        parse(spoil(valid_config, integrationSubnet="10.40.1.0/26"))
    with pytest.raises(ConfigError, match=r"'aseSubnet': .* unset in the standard tier"):
        parse(standard(valid_config, aseSubnet="10.40.0.0/24"))


def test_zone_redundancy_needs_a_capable_sku(valid_config):
    with pytest.raises(ConfigError, match=r"'zoneRedundant': 'true' .* false for SKU S1"):
        parse(spoil(valid_config, tier="standard", sku="S1", zoneRedundant="true"))
    assert parse(spoil(valid_config, tier="standard", sku="S1")).zone_redundant is False


@pytest.mark.parametrize(("changes", "message"), [
    ({"postgresSku": "B1ms"}, r"'postgresSku': 'B1ms' .* a Flexible Server SKU"),
    ({"postgresSku": "Standard_B1ms", "postgresHighAvailability": "true"},
     r"'postgresSku': 'Standard_B1ms' .* Burstable servers have no HA"),
    ({"postgresStorageGb": "100"}, r"'postgresStorageGb': 100 .* one of 32, 64, 128"),
    ({"postgresBackupRetentionDays": "3"}, r"'postgresBackupRetentionDays': '3' .* 7 and 35"),
    ({"postgresHighAvailability": "yes"}, r"'postgresHighAvailability': 'yes' .* true or false"),
    ({"postgresAdminPrincipalType": "Robot"}, r"'postgresAdminPrincipalType': 'Robot'"),
])
def test_postgres_settings(valid_config, changes, message):
    with pytest.raises(ConfigError, match=message):
        parse(spoil(valid_config, **changes))


@pytest.mark.parametrize(("key", "value"), [("azure-native:location", "West Europe"),
                                            ("namePrefix", "Restaurant"),
                                            ("nameSuffix", "x"),
                                            ("healthCheckPath", "healthz"),
                                            ("deployerIpAddress", "10.0.0.1"),
                                            ("logRetentionDays", "7"),
                                            ("scriptAttempt", "0"),
                                            ("scriptAttempt", "again")])
def test_names_paths_and_addresses(valid_config, key, value):
    with pytest.raises(ConfigError, match=rf"'{key}': '{value}' is not allowed; expected"):
        parse(spoil(valid_config, **{key: value}))


def test_program_fails_before_declaring_any_resource(valid_config, monkeypatch):
    registered: list[str] = []
    original = mocks.CapturingMonitor.RegisterResource

    def spy(self, request):
        registered.append(request.type)
        return original(self, request)

    monkeypatch.setattr(mocks.CapturingMonitor, "RegisterResource", spy)
    with pytest.raises(ConfigError, match=r"'tier': 'premium'"):
        mocks.run_stack("broken", config=spoil(valid_config, tier="premium"))
    assert registered == ["pulumi:pulumi:Stack"]


def test_committed_stack_files_use_only_known_keys(committed_stacks):
    from infra.config import KNOWN_KEYS

    for stack in committed_stacks:
        for key in mocks.load_stack_config(stack):
            namespace, name = key.split(":", 1)
            if namespace == mocks.PROJECT:
                assert name in KNOWN_KEYS, f"Pulumi.{stack}.yaml: unknown key {name}"


def test_a_misspelt_key_is_an_error_not_a_silent_default(valid_config):
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) 'minInstance'"):
        mocks.run_stack("typo", config={**standard(valid_config),
                                        f"{mocks.PROJECT}:minInstance": "9"})


@pytest.mark.parametrize(("typo", "meant"), [("alertEmial", "alertEmail"),
                                            ("minInstance", "minInstances"),
                                            ("postgresStorageGB", "postgresStorageGb")])
def test_a_misspelt_key_names_the_key_it_is_close_to(valid_config, typo, meant):
    with pytest.raises(ConfigError, match=rf"'{typo}' \(did you mean '{meant}'\?\); known"):
        mocks.run_stack("typo", config={**standard(valid_config), f"{mocks.PROJECT}:{typo}": "9"})


def test_an_unrelated_unknown_key_gets_no_guess(valid_config):
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) 'colour'; known keys"):
        mocks.run_stack("typo", config={**standard(valid_config), f"{mocks.PROJECT}:colour": "9"})


def test_custom_domain_is_refused_behind_the_ase_ilb(valid_config):
    with pytest.raises(ConfigError, match=r"'customDomain'.*unset in the isolated tier"):
        parse(isolated(valid_config, customDomain="www.example.com"))


# --- ingress (Application Gateway) and hub connectivity ------------------------------------------

HUB_ID = ("/subscriptions/22222222-3333-4444-5555-666666666666/resourceGroups/rg-hub/providers/"
          "Microsoft.Network/virtualNetworks/vnet-hub")


def gateway(valid_config, **changes):
    return isolated(valid_config, ingress="applicationGateway", **changes)


def test_ingress_defaults_to_none_and_the_gateway_has_sane_defaults(valid_config):
    assert parse(isolated(valid_config)).ingress is None
    ingress = parse(gateway(valid_config)).ingress
    assert (ingress.subnet, ingress.min_capacity, ingress.max_capacity) == ("10.40.3.0/24", 2, 10)
    assert ingress.host_name is None and ingress.certificate_name is None
    assert parse(standard(valid_config, ingress="applicationGateway")).has_gateway


def test_unknown_ingress_mode(valid_config):
    with pytest.raises(ConfigError, match=r"'ingress': 'frontDoor' .* one of none, "
                                          r"applicationGateway"):
        parse(isolated(valid_config, ingress="frontDoor"))


def test_ingress_needs_a_vnet(valid_config):
    with pytest.raises(ConfigError, match=r"'ingress': 'applicationGateway' .* unset in the basic "
                                          r"tier \(it applies to: standard, isolated\)"):
        parse(spoil(valid_config, ingress="applicationGateway"))


@pytest.mark.parametrize(("key", "value"), [
    ("applicationGatewaySubnet", "10.40.3.0/24"), ("applicationGatewayMinCapacity", "2"),
    ("applicationGatewayMaxCapacity", "4"), ("applicationGatewayHostName", "reviews.example.com"),
    ("applicationGatewayCertificateName", "reviews-tls"),
])
def test_gateway_keys_need_the_gateway(valid_config, key, value):
    with pytest.raises(ConfigError, match=rf"'{key}': '{value}' .* unset while ingress is none"):
        parse(isolated(valid_config, **{key: value}))


@pytest.mark.parametrize(("changes", "message"), [
    ({"applicationGatewaySubnet": "10.40.3.0/27"}, r"'10.40.3.0/27' .* a /26 or larger block"),
    ({"applicationGatewaySubnet": "10.40.3.0/26", "applicationGatewayMaxCapacity": "60"},
     r"'10.40.3.0/26' .* at least 66 addresses for applicationGatewayMaxCapacity 60"),
    ({"applicationGatewaySubnet": "192.168.3.0/24"}, r"inside vnetAddressSpace 10.40.0.0/16"),
    ({"applicationGatewaySubnet": "10.40.0.0/24"}, r"does not overlap aseSubnet 10.40.0.0/24"),
    ({"applicationGatewaySubnet": "10.40.2.0/24"},
     r"does not overlap privateEndpointSubnet 10.40.2.0/27"),
    ({"applicationGatewaySubnet": "10.40.3.1/24"}, r"an IPv4 CIDR block with no host bits"),
    ({"applicationGatewaySubnet": "10.40.4.0/24"},
     r"does not overlap deploymentScriptSubnet 10.40.4.0/28"),
])
def test_bad_gateway_subnet(valid_config, changes, message):
    with pytest.raises(ConfigError, match=r"'applicationGatewaySubnet': .*" + message):
        parse(gateway(valid_config, **changes))


def test_gateway_subnet_must_not_overlap_the_standard_integration_subnet(valid_config):
    with pytest.raises(ConfigError, match=r"does not overlap integrationSubnet 10.40.1.0/26"):
        parse(standard(valid_config, ingress="applicationGateway",
                       applicationGatewaySubnet="10.40.1.0/24"))


@pytest.mark.parametrize(("changes", "message"), [
    ({"applicationGatewayMinCapacity": "-1"}, r"'applicationGatewayMinCapacity': '-1' .* "
                                              r"between 0 and 125"),
    ({"applicationGatewayMinCapacity": "two"}, r"'applicationGatewayMinCapacity': 'two' .* "
                                               r"an integer"),
    ({"applicationGatewayMaxCapacity": "1"}, r"'applicationGatewayMaxCapacity': '1' .* "
                                             r"between 2 and 125"),
    ({"applicationGatewayMaxCapacity": "126"}, r"'applicationGatewayMaxCapacity': '126'"),
    ({"applicationGatewayMinCapacity": "5", "applicationGatewayMaxCapacity": "3"},
     r"'applicationGatewayMaxCapacity': '3' .* at least applicationGatewayMinCapacity \(5\)"),
])
def test_bad_gateway_capacity(valid_config, changes, message):
    with pytest.raises(ConfigError, match=message):
        parse(gateway(valid_config, **changes))


@pytest.mark.parametrize("host", ["Reviews.example.com", "localhost", "-x.example.com",
                                  "reviews.example.com.", "app.azurewebsites.net",
                                  "gw.westeurope.cloudapp.azure.com"])
def test_bad_gateway_host_name(valid_config, host):
    with pytest.raises(ConfigError, match=r"'applicationGatewayHostName': "):
        parse(gateway(valid_config, applicationGatewayHostName=host))


def test_gateway_host_name_may_be_an_apex_domain(valid_config):
    ingress = parse(gateway(valid_config, applicationGatewayHostName="example.com")).ingress
    assert ingress.host_name == "example.com"


@pytest.mark.parametrize("name", ["has space", "under_score", "x" * 128, ""])
def test_bad_gateway_certificate_name(valid_config, name):
    with pytest.raises(ConfigError, match=r"'applicationGatewayCertificateName': .* the name of "
                                          r"a certificate or secret in the stack's Key Vault"):
        parse(gateway(valid_config, applicationGatewayCertificateName=name))


def test_custom_domain_is_refused_behind_the_gateway(valid_config):
    with pytest.raises(ConfigError, match=r"'customDomain': .* unset while ingress is "
                                          r"applicationGateway"):
        parse(standard(valid_config, ingress="applicationGateway",
                       customDomain="www.example.com"))


def test_hub_id_is_split_into_its_parts(valid_config):
    hub = parse(isolated(valid_config, hubVirtualNetworkId=HUB_ID)).hub
    assert (hub.subscription_id, hub.resource_group, hub.vnet_name, hub.use_remote_gateways) == (
        "22222222-3333-4444-5555-666666666666", "rg-hub", "vnet-hub", True)
    assert parse(isolated(valid_config)).hub is None


@pytest.mark.parametrize("vnet_id", [
    "vnet-hub",
    "/subscriptions/22222222-3333-4444-5555-666666666666/resourceGroups/rg-hub",
    HUB_ID.replace("virtualNetworks", "networkSecurityGroups"),
    HUB_ID.replace("22222222-3333-4444-5555-666666666666", "not-a-subscription"),
    HUB_ID.replace("22222222-3333-4444-5555-666666666666", "-" * 36),
    HUB_ID + "/subnets/default",
])
def test_bad_hub_vnet_id(valid_config, vnet_id):
    with pytest.raises(ConfigError, match=r"'hubVirtualNetworkId': .*(resource id of the hub "
                                          r"VNet|subscription is a GUID)"):
        parse(isolated(valid_config, hubVirtualNetworkId=vnet_id))


def test_hub_keys_need_a_vnet_and_a_hub(valid_config):
    with pytest.raises(ConfigError, match=r"'hubVirtualNetworkId': .* unset in the basic tier"):
        parse(spoil(valid_config, hubVirtualNetworkId=HUB_ID))
    with pytest.raises(ConfigError, match=r"'hubUseRemoteGateways': 'false' .* unset while "
                                          r"hubVirtualNetworkId is unset"):
        parse(isolated(valid_config, hubUseRemoteGateways="false"))
    with pytest.raises(ConfigError, match=r"'hubUseRemoteGateways': 'maybe' .* true or false"):
        parse(isolated(valid_config, hubVirtualNetworkId=HUB_ID, hubUseRemoteGateways="maybe"))


def test_synth_prints_a_config_error_as_one_line(valid_config, capsys):
    from review import synth

    def broken_stack(stack):
        return mocks.run_stack(stack, config=spoil(valid_config, pythonVersion="3.1"))

    assert synth.main(["--check", "--no-scan", "--stack", "dev"], runner=broken_stack) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.splitlines() == [
        "review.synth: Pulumi.dev.yaml: config 'pythonVersion': '3.1' is not allowed; expected "
        "one of 3.10, 3.11, 3.12, 3.13 (YAML read an unquoted 3.10 as the number 3.1: quote it "
        'in the stack file, "3.10")']


# --- the checks every row of config.KEYS gets ----------------------------------------------------

# Keys whose value is free text: no value of theirs is refused on its own.
FREE_TEXT_KEYS = {"packagePath", "postgresAdminPrincipalName", "developerGroupName"}
# A valid value for each key another key requires to be set.
REQUIRED_SETTINGS = {"hubVirtualNetworkId": HUB_ID,
                     "developerGroupObjectId": "7f3c2a1e-5b4d-4c3b-9a2f-1e0d9c8b7a65"}


def in_a_tier_of(valid_config, key: Key, **changes):
    """The valid config moved to a tier where the key applies, with what the key requires."""
    tier = key.tiers[-1]
    context = {"tier": tier, "sku": TIER_SKUS[tier][0]}
    if key.requires:
        context[key.requires.key] = (key.requires.value
                                     or REQUIRED_SETTINGS[key.requires.key])
    if tier == "basic":
        context["developerGroupName"] = "rr-dev-developers"
    return spoil(valid_config, **{**context, **changes})


@pytest.mark.parametrize("key", [key for key in KEYS if key.name not in FREE_TEXT_KEYS],
                         ids=lambda key: key.name)
def test_a_bad_value_of_any_key_is_named_with_what_is_allowed(valid_config, key):
    with pytest.raises(ConfigError, match=rf"^config '{key.name}': '%%' is not allowed; "
                                          r"expected \S.+$"):
        parse(in_a_tier_of(valid_config, key, **{key.name: "%%"}))


@pytest.mark.parametrize(("key", "tier"), [(key, tier) for key in KEYS for tier in TIERS
                                           if tier not in key.tiers],
                         ids=lambda value: getattr(value, "name", value))
def test_every_key_is_refused_outside_its_tiers(valid_config, key, tier):
    values = spoil(valid_config, tier=tier, sku=TIER_SKUS[tier][0], **{key.name: "x"})
    with pytest.raises(ConfigError, match=rf"^config '{key.name}': 'x' is not allowed; expected "
                                          rf"unset in the {tier} tier \(it applies to: "
                                          rf"{', '.join(key.tiers)}\)$"):
        parse(values)


@pytest.mark.parametrize("key", [key for key in KEYS if key.requires], ids=lambda key: key.name)
def test_every_key_is_refused_without_what_it_requires(valid_config, key):
    values = in_a_tier_of(valid_config, key, **{key.name: "x", key.requires.key: None})
    with pytest.raises(ConfigError, match=rf"^config '{key.name}': 'x' is not allowed; expected "
                                          rf"unset while {key.requires.key} is \w+ \(set "
                                          rf"{key.requires.key}.*\)$"):
        parse(values)


def test_the_required_keys_are_the_rows_that_say_so():
    assert [key.name for key in KEYS if key.required] == [
        "tier", "alertEmail", "postgresAdminObjectId", "postgresAdminPrincipalName"]
    assert all(key.default is None and key.computed is None for key in KEYS if key.required)


RANGE_KEYS = [(key, *map(int, match.groups())) for key in KEYS
              if (match := re.match(r"(\d+)–(\d+)(?:$|[;,])", key.allowed))]


@pytest.mark.parametrize(("key", "low", "high"), RANGE_KEYS, ids=lambda value: getattr(
    value, "name", value))
def test_a_documented_range_is_the_one_the_parser_enforces(valid_config, key, low, high):
    assert len(RANGE_KEYS) >= 5
    for outside in (low - 1, high + 1):
        with pytest.raises(ConfigError, match=rf"^config '{key.name}': '{outside}' is not "
                                              rf"allowed; expected an integer between {low} "
                                              rf"and {high}$"):
            parse(in_a_tier_of(valid_config, key, **{key.name: str(outside)}))
