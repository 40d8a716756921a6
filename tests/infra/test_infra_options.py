"""Optional features driven by config: custom domain (seed step 07), deployer firewall rule."""

from __future__ import annotations

from infra.mocks import load_stack_config, run_stack


def test_custom_domain_gets_a_managed_certificate_and_sni_binding():
    config = {**load_stack_config("dev"), "restaurant-review:customDomain": "www.example.com"}
    run = run_stack("dev", config=config)
    resources = {r.name: r for r in run.resources}
    plain, sni = resources["custom-domain"], resources["custom-domain-sni"]
    certificate = resources["custom-domain-certificate"]
    assert plain.inputs["hostName"] == sni.inputs["hostName"] == "www.example.com"
    assert plain.inputs["sslState"] == "Disabled" and sni.inputs["sslState"] == "SniEnabled"
    assert certificate.inputs["canonicalName"] == "www.example.com"
    assert "pfxBlob" not in certificate.inputs and "password" not in certificate.inputs
    assert plain.urn in certificate.depends_on and certificate.urn in sni.depends_on
    assert len(sni.inputs["thumbprint"]) == 40
    assert run.outputs["siteUrl"] == "https://www.example.com"
    assert run.outputs["customDomainVerificationId"]


def test_no_custom_domain_by_default(stack_view):
    assert not stack_view.all("web:WebAppHostNameBinding")
    assert not stack_view.all("web:Certificate")


def test_deployer_ip_opens_postgres_to_the_deployer_in_dev_only():
    config = {**load_stack_config("dev"), "restaurant-review:deployerIpAddress": "20.50.1.2"}
    run = run_stack("dev", config=config)
    rules = {r.inputs["firewallRuleName"]: (r.inputs["startIpAddress"], r.inputs["endIpAddress"])
             for r in run.resources if r.type.endswith("FirewallRule")}
    assert rules["deployer"] == ("20.50.1.2", "20.50.1.2")
    assert len(rules) == 2
