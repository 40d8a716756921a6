"""Application Gateway rules: a WAF in Prevention mode, and no public listener without TLS.

The baseline is what the program declares for an isolated stack with `ingress:
applicationGateway`; each test spoils one property and expects the rule to trip.
"""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest

from policy import rules
from review.mocks import load_stack_config, run_stack
from review.model import normalize

GATEWAY, WAF = rules.APPLICATION_GATEWAY, rules.WAF_POLICY


@pytest.fixture(scope="module")
def gateway_stack() -> list:
    config = {**load_stack_config("isolated"),
              "restaurant-review:ingress": "applicationGateway",
              "restaurant-review:applicationGatewaySubnet": "10.50.3.0/24"}
    return normalize(run_stack("isolated", config=config).resources)


@pytest.fixture
def props(gateway_stack):
    def find(resource_type: str) -> dict:
        return copy.deepcopy(dict(next(r for r in gateway_stack if r.type == resource_type).inputs))
    return find


def resources(gateway_stack, **replaced: dict) -> list[tuple[str, dict]]:
    """(type, props) of the stack, with the props of a type replaced where given."""
    by_key = {GATEWAY: "gateway", WAF: "waf"}
    return [(r.type, replaced.get(by_key.get(r.type, ""), r.inputs)) for r in gateway_stack]


def test_the_gateway_stack_passes_every_rule(gateway_stack, policy_dir):
    config = json.loads((policy_dir / "config" / "isolated.json").read_text())
    found = {r.ref: v for r in gateway_stack
             if (v := rules.violations(r.type, r.inputs, SimpleNamespace(protect=r.protect),
                                       config))}
    assert found == {}
    assert rules.check_every_gateway_has_a_prevention_waf(resources(gateway_stack)) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p["policySettings"].update(mode="Detection"), "mode must be Prevention"),
    (lambda p: p["policySettings"].update(state="Disabled"), "state must be Enabled"),
    (lambda p: p["managedRules"].update(managedRuleSets=[
        {"ruleSetType": "OWASP", "ruleSetVersion": "3.1"}]), "DefaultRuleSet 2.1+ or OWASP 3.2+"),
])
def test_waf_policy_must_block_with_a_current_rule_set(props, change, message):
    waf = props(WAF)
    assert rules.check_gateway_has_waf(WAF, waf) == []
    change(waf)
    (violation,) = rules.check_gateway_has_waf(WAF, waf)
    assert message in violation


def test_gateway_must_be_waf_v2_with_a_policy(props):
    gateway = props(GATEWAY)
    assert rules.check_gateway_has_waf(GATEWAY, gateway) == []
    gateway["sku"] = {"name": "Standard_v2", "tier": "Standard_v2"}
    del gateway["firewallPolicy"]
    assert len(rules.check_gateway_has_waf(GATEWAY, gateway)) == 2


def test_stack_rule_catches_a_gateway_on_a_detection_policy_or_none(gateway_stack, props):
    waf = props(WAF)
    waf["policySettings"]["mode"] = "Detection"
    (message,) = rules.check_every_gateway_has_a_prevention_waf(resources(gateway_stack, waf=waf))
    assert "not in Prevention mode" in message
    gateway = props(GATEWAY)
    gateway["firewallPolicy"] = {"id": "/subscriptions/s/.../ApplicationGatewayWebApplication"
                                       "FirewallPolicies/someone-elses"}
    (message,) = rules.check_every_gateway_has_a_prevention_waf(
        resources(gateway_stack, gateway=gateway))
    assert "has no WAF policy of this stack" in message


def test_http_listener_that_serves_the_app_is_refused(props):
    gateway = props(GATEWAY)
    assert rules.check_gateway_listeners_use_tls(GATEWAY, gateway) == []
    serving = next(r for r in gateway["requestRoutingRules"] if "backendAddressPool" in r)
    redirect = next(r for r in gateway["requestRoutingRules"] if "redirectConfiguration" in r)
    # Point the app's rule at the HTTP listener: plain HTTP would then reach the site.
    serving["httpListener"] = copy.deepcopy(redirect["httpListener"])
    (violation,) = rules.check_gateway_listeners_use_tls(GATEWAY, gateway)
    assert "may only redirect to HTTPS" in violation


def test_http_redirect_must_lead_to_https(props):
    gateway = props(GATEWAY)
    (redirect,) = gateway["redirectConfigurations"]
    http = next(listener for listener in gateway["httpListeners"]
                if listener["protocol"] == "Http")
    redirect["targetListener"]["id"] = redirect["targetListener"]["id"].rsplit(
        "/", 1)[0] + "/" + http["name"]
    (violation,) = rules.check_gateway_listeners_use_tls(GATEWAY, gateway)
    assert f"'{http['name']}' may only redirect to HTTPS" in violation


def test_https_listener_needs_a_certificate(props):
    gateway = props(GATEWAY)
    https = next(listener for listener in gateway["httpListeners"]
                 if listener["protocol"] == "Https")
    del https["sslCertificate"]
    assert rules.check_gateway_listeners_use_tls(GATEWAY, gateway) == [
        f"HTTPS listener {https['name']!r} has no certificate"]


@pytest.mark.parametrize(("policy", "allowed"), [
    ({"policyType": "Predefined", "policyName": "AppGwSslPolicy20150501"}, False),
    ({"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101"}, True),
    ({"policyType": "CustomV2", "minProtocolVersion": "TLSv1_0"}, False),
    ({"policyType": "CustomV2", "minProtocolVersion": "TLSv1_3"}, True),
    (None, False),
])
def test_tls_policy_must_require_tls_1_2(props, policy, allowed):
    gateway = props(GATEWAY)
    gateway["sslPolicy"] = policy
    violations = rules.check_gateway_listeners_use_tls(GATEWAY, gateway)
    assert (violations == []) is allowed
    if not allowed:
        assert violations[0].startswith("sslPolicy must set TLS 1.2 or later")


def test_the_committed_isolated_stack_gives_the_gateway_rules_something_to_check(
        stack_resources):
    types = {r.type for r in stack_resources["isolated"]}
    assert {GATEWAY, WAF} <= types
    resources = [(r.type, r.inputs) for r in stack_resources["isolated"]]
    assert rules.check_every_gateway_has_a_prevention_waf(resources) == []
