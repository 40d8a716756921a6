"""The CrossGuard pack wiring: mandatory policies, per-stack config, and a server that starts."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from policy.pack import policies
from policy.rules import KEY_VAULT, POSTGRES_SERVER, RULES
from review.stacks import REPO_ROOT, discover_stacks


def options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def validate(policy, resource_type: str, props: dict, config: dict | None = None,
             protect: bool = True) -> list[str]:
    reported = []
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:s::p::{resource_type}::x",
                                  "x", options(protect), None, config)
    policy.validate(args, lambda message, urn=None: reported.append(message))
    return reported


def test_one_mandatory_policy_per_rule_plus_the_stack_wide_ones():
    built = policies()
    assert [p.name for p in built] == [*(r.name for r in RULES), "every-site-basic-auth-off",
                                       "every-gateway-prevention-waf"]
    assert all(p.enforcement_level is EnforcementLevel.MANDATORY for p in built)


def test_stack_policy_reports_a_site_left_with_basic_auth():
    stack_policy = next(p for p in policies() if p.name == "every-site-basic-auth-off")
    resources = [SimpleNamespace(resource_type="azure-native:web:WebApp", props={}),
                 SimpleNamespace(resource_type="azure-native:web:WebAppFtpAllowed",
                                 props={"allow": False})]
    reported = []
    stack_policy.validate(SimpleNamespace(resources=resources),
                          lambda message, urn=None: reported.append(message))
    assert len(reported) == 1 and "SCM basic-auth" in reported[0]


def test_gateway_stack_policy_reports_a_gateway_behind_a_detection_waf():
    stack_policy = next(p for p in policies() if p.name == "every-gateway-prevention-waf")
    policy_id = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                 "ApplicationGatewayWebApplicationFirewallPolicies/waf-x")
    resources = [
        SimpleNamespace(resource_type="azure-native:network:ApplicationGateway",
                        props={"applicationGatewayName": "agw-x",
                               "firewallPolicy": {"id": policy_id}}),
        SimpleNamespace(resource_type="azure-native:network:WebApplicationFirewallPolicy",
                        props={"policyName": "waf-x", "policySettings": {"mode": "Detection"}}),
    ]
    reported = []
    stack_policy.validate(SimpleNamespace(resources=resources),
                          lambda message, urn=None: reported.append(message))
    assert reported == ["gateway 'agw-x' uses WAF policy 'waf-x', which is not in Prevention "
                        "mode"]


def test_policies_report_through_the_pulumi_api():
    vault_policy = next(p for p in policies() if p.name == "key-vault-rbac-purge-protection")
    bad_vault = {"properties": {"enableRbacAuthorization": True}}
    assert validate(vault_policy, KEY_VAULT, bad_vault) == [
        "properties.enablePurgeProtection must be true outside dev"]
    assert validate(vault_policy, KEY_VAULT, bad_vault, {"requirePurgeProtection": False}) == []
    protect_policy = next(p for p in policies() if p.name == "stateful-resources-protected")
    assert validate(protect_policy, KEY_VAULT, bad_vault, protect=False)
    assert validate(protect_policy, KEY_VAULT, bad_vault, protect=True) == []


def test_configurable_policies_declare_their_schema():
    for policy, rule in zip(policies()[:len(RULES)], RULES, strict=True):
        schema = policy.config_schema
        if rule.config_defaults:
            assert {k: v["default"] for k, v in schema.properties.items()} == dict(
                rule.config_defaults)
        else:
            assert schema is None


@pytest.mark.parametrize("stack", discover_stacks())
def test_each_stack_has_a_policy_config_naming_real_settings(stack):
    config = json.loads((REPO_ROOT / "policy" / "config" / f"{stack}.json").read_text())
    defaults = {rule.name: rule.config_defaults for rule in RULES}
    for policy_name, settings in config.items():
        assert policy_name in defaults, policy_name
        assert set(settings) <= set(defaults[policy_name]), (policy_name, settings)
    relaxed = any(value is False for settings in config.values() for value in settings.values())
    assert relaxed == (stack == "dev")


def test_pulumi_policy_yaml_points_at_the_project_virtualenv():
    spec = yaml.safe_load((REPO_ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert spec["runtime"]["name"] == "python"
    venv = (REPO_ROOT / "policy" / spec["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == REPO_ROOT / ".venv"
    assert spec["version"]


def test_main_serves_the_pack_like_the_cli_starts_it():
    """The CLI starts `python -m pulumi.policy <engine> <pack dir>` (runpy on the folder's
    __main__.py); the pack must import, print its gRPC port and keep serving."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "pulumi.policy", "127.0.0.1:1", "."], cwd=REPO_ROOT / "policy",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "policy pack printed no port within 60 s"
        port = process.stdout.readline().strip()
        assert port.isdigit() and int(port) > 0, f"no port: {port!r} (exit {process.poll()})"
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_rules_take_plain_arguments():
    rule = next(r for r in RULES if r.name == "web-app-https-only")
    options_ = SimpleNamespace(protect=False)
    assert rule("azure-native:web:WebApp", {"httpsOnly": True}, options_) == []


def test_rules_read_props_the_way_the_analyzer_wraps_them(real_props):
    """The analyzer hands policies a read-only Mapping proxy, not dicts: nested reads still work."""
    postgres_policy = next(p for p in policies() if p.name == "postgresql-entra-private")
    server = real_props("prod", POSTGRES_SERVER)
    assert validate(postgres_policy, POSTGRES_SERVER, unknown_checking_proxy(server)) == []
    server["authConfig"]["passwordAuth"] = "Enabled"
    assert validate(postgres_policy, POSTGRES_SERVER, unknown_checking_proxy(server)) == [
        "authConfig.passwordAuth must be Disabled in private tiers"]
