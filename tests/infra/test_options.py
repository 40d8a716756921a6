"""Optional features driven by config: custom domain (seed step 07), deployer firewall rule."""

from __future__ import annotations

import json
import shlex

from review.mocks import load_stack_config, run_stack


def test_custom_domain_gets_a_managed_certificate_and_sni_binding():
    config = {**load_stack_config("dev"), "restaurant-review:customDomain": "www.example.com"}
    run = run_stack("dev", config=config)
    resources = {r.name: r for r in run.resources}
    binding, sni = resources["custom-domain"], resources["script-custom-domain-sni"]
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
    # ...and a deployment script (no login on the deployer) switches it to SNI with the managed
    # certificate once that exists.
    # The PUT is retried while the deployer's Website Contributor applies: `until <put>; do`.
    put = next(line for line in sni.inputs["scriptContent"].splitlines()
               if line.startswith("until az rest "))
    args = shlex.split(put.removeprefix("until ").removesuffix("; do"))
    flags = {name: args[i + 1] for i, name in enumerate(args)
             if name in ("--method", "--uri", "--body")}
    assert flags["--method"] == "put"
    assert flags["--uri"].startswith(binding.arm_id + "?api-version=")
    body = json.loads(flags["--body"])["properties"]
    assert body["sslState"] == "SniEnabled" and len(body["thumbprint"]) == 40
    assert {certificate.urn, binding.urn} <= set(sni.depends_on)
    assert resources["deployer-website-contributor"].urn in sni.depends_on
    # Destroying the stack unbinds the certificate first, or Azure refuses to delete it.
    unbind = resources["custom-domain-sni-unbind"]
    assert "create" not in unbind.inputs
    args = shlex.split(unbind.inputs["delete"])
    assert args[:5] == ["az", "webapp", "config", "ssl", "unbind"]
    unbind_flags = dict(zip(args[5::2], args[6::2], strict=True))
    assert unbind_flags["--certificate-thumbprint"] == body["thumbprint"]
    assert certificate.urn in unbind.depends_on
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
