"""A first `pulumi up` from an empty subscription, run from outside every network.

What the offline run can prove about it: nothing runs on the deployer but the provider, every
site starts after the grants its first requests need, the alerts wait for code to watch, and the
ASE's address is read with a clear error instead of an IndexError.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from infra.ase import internal_inbound_ip
from tests.infra.test_ordering import dependency_closure


def test_nothing_runs_on_the_deployer_during_up(stack_view):
    """No az CLI or psql on the deployer: its login may expire and it is in no VNet."""
    created_locally = [c.name for c in stack_view.all("command:local:Command")
                       if c.inputs.get("create") or c.inputs.get("update")]
    assert created_locally == []
    scripts = {s.name for s in stack_view.all("resources:AzureCliScript")}
    assert scripts == {"script-database-roles", "script-deploy"}


def test_every_site_starts_after_its_identity_may_read_the_vault_and_the_photos(stack_view):
    for site in stack_view.sites():
        key = site.inputs.get("slot", "app")
        waits_for = stack_view.depends_on(site)
        # The one site identity, which every site runs as, and the wait for its vault grant.
        assert {"app-identity", "app-key-vault-secrets-user", "app-key-vault-grant-propagation",
                "app-blob-data-contributor"} <= waits_for, key
        if stack_view.tier != "basic":  # and after the private DNS its first requests use
            assert {"pe-dns-postgres", "pe-dns-vault", "pe-dns-blob"} <= waits_for


def test_the_sites_key_vault_wait_runs_alongside_the_postgresql_build(stack_view):
    """The sites wait for PostgreSQL (5-15 min) anyway; the Key Vault grant's wait must not, so
    on a first deploy it adds little time (test_propagation.py checks its length)."""
    closure = dependency_closure(stack_view.run.resources)
    wait = stack_view.one("time:index/sleep:Sleep", "app-key-vault-grant-propagation")
    server = stack_view.one("dbforpostgresql:Server")
    assert server.urn not in closure[wait.urn]
    for site in stack_view.sites():
        assert {wait.urn, server.urn} <= closure[site.urn], site.name


def test_alerts_on_the_production_app_wait_for_the_first_package(stack_view):
    """Before the first deploy the app is an empty site: its health check fails and the alerts
    would page. They are created once the deploy script (which, with a slot, also fills the
    empty production app on the first release) has run."""
    alerts = stack_view.all("monitor:MetricAlert")
    assert alerts
    for alert in alerts:
        assert "script-deploy" in stack_view.depends_on(alert), alert.name


def test_the_ase_address_is_read_with_a_clear_error():
    assert internal_inbound_ip(SimpleNamespace(internal_inbound_ip_addresses=["10.50.0.4"])) \
        == "10.50.0.4"
    for networking in (None, SimpleNamespace(internal_inbound_ip_addresses=[]),
                       SimpleNamespace(internal_inbound_ip_addresses=None)):
        with pytest.raises(ValueError, match="reports no internalInboundIpAddresses"):
            internal_inbound_ip(networking)
