"""Optional features driven by config: custom domain (seed step 07), deployer firewall rule."""

from __future__ import annotations

import shlex

from review.mocks import load_stack_config, run_stack


def test_custom_domain_gets_a_managed_certificate_and_sni_binding():
    config = {**load_stack_config("dev"), "restaurant-review:customDomain": "www.example.com"}
    run = run_stack("dev", config=config)
    resources = {r.name: r for r in run.resources}
    binding, sni = resources["custom-domain"], resources["custom-domain-sni"]
    certificate = resources["custom-domain-certificate"]
    # One ARM binding per host name: a single Pulumi resource manages it...
    assert [r.name for r in run.resources if r.type.endswith("web:WebAppHostNameBinding")] == [
        "custom-domain"]
    assert binding.inputs["hostName"] == "www.example.com"
    assert binding.inputs["sslState"] == "Disabled"
    assert {"sslState", "thumbprint"} <= set(binding.ignore_changes)
    assert certificate.inputs["canonicalName"] == "www.example.com"
    assert "pfxBlob" not in certificate.inputs and "password" not in certificate.inputs
    assert binding.urn in certificate.depends_on
    # ...and the CLI switches it to SNI with the managed certificate once that exists.
    args = shlex.split(sni.inputs["create"])
    assert args[:5] == ["az", "webapp", "config", "ssl", "bind"]
    flags = dict(zip(args[5::2], args[6::2], strict=True))
    assert flags["--hostname"] == "www.example.com" and flags["--ssl-type"] == "SNI"
    assert len(flags["--certificate-thumbprint"]) == 40
    assert sni.inputs["triggers"] == [flags["--certificate-thumbprint"]]
    assert certificate.urn in sni.depends_on
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
