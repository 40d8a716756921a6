"""Resources that read through a fresh role assignment when ARM creates them wait minutes for it.

Azure RBAC takes up to ten minutes to apply a new role assignment. Some resources read through
one once, at creation, and fail instead of retrying: each of those (CREATE_TIME_READERS) must be
ordered behind a wait of at least that long which itself starts after the grant, and which runs
again whenever the grant is made anew. This walks every stack's dependency graph.

The program's other grants were weighed and left out of the table, because their readers retry
or read later:
* the sites' Storage Blob Data Contributor: the app reaches the photos per request and /readyz
  per probe, so a request before the grant applies fails alone and the next one tries again;
* the deployer's Storage Blob Data Reader, Website Contributor and PostgreSQL administration: the
  deploy, database-roles and custom-domain SNI scripts retry their first call on each for
  GRANT_WAIT_SECONDS (infra/deployer.py, infra/app.py; tests/infra/
  test_deployer_scripts.py runs those retries); ARM mounts the scripts' own file share with
  the account key, through no grant;
* the ASE, the vault, the server, the storage accounts, the diagnostic settings: they read
  through no identity of their own; ARM acts with the deployer's standing rights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from infra.identity import KEY_VAULT_SECRETS_USER
from review.mocks import CapturedResource, principal_id
from tests.infra.test_ingress import standard
from tests.infra.test_ordering import dependency_closure

# Azure RBAC: "it can take up to 10 minutes for changes to take effect"
# (learn.microsoft.com/azure/role-based-access-control/troubleshooting, role assignment changes
# not being detected).
RBAC_PROPAGATION = timedelta(minutes=10)
WAIT_TYPE = "time:index/sleep:Sleep"
GRANT_TYPE = "azure-native:authorization:RoleAssignment"


@dataclass(frozen=True)
class CreateTimeReader:
    """A resource type that reads through its identity's role assignments when it is created,
    without retrying."""

    type: str
    roles: frozenset[str]  # role definition ids it reads through
    source: str


# One row per resource type; the roles come from the program's own role table.
CREATE_TIME_READERS = (
    CreateTimeReader(
        "azure-native:network:ApplicationGateway", frozenset({KEY_VAULT_SECRETS_USER}),
        "its listener certificate from Key Vault: a clean deploy intermittently fails with "
        "ApplicationGatewayKeyVaultSecretAccessDenied, a rerun succeeds "
        "(mspnp/aks-baseline#242; the error: MicrosoftDocs/azure-docs#33157)"),
    *(CreateTimeReader(
        site_type, frozenset({KEY_VAULT_SECRETS_USER}),
        "its SECRET_KEY Key Vault reference, when it first starts: App Service keeps the "
        "unresolved reference text and fetches again only on a configuration change or after "
        "24 hours (learn.microsoft.com/azure/app-service/app-service-key-vault-references, "
        "Rotation; Troubleshooting), and the site refuses to start on that text "
        "(webapp/config.py)")
      for site_type in ("azure-native:web:WebApp", "azure-native:web:WebAppSlot")),
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def wait_duration(text: str) -> timedelta:
    """A Go duration as time_sleep takes it ("12m", "1h30m", "90s")."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    seconds = {"h": 3600, "m": 60, "s": 1}
    return timedelta(seconds=sum(float(number) * seconds[unit] for number, unit in parts))


def _principals(reader: CapturedResource) -> set[str]:
    """The principal ids the reader acts as: its user-assigned identities, or its own."""
    identity = reader.inputs.get("identity") or {}
    principals = {principal_id(i) for i in identity.get("userAssignedIdentities") or []}
    if "SystemAssigned" in identity.get("type", ""):
        principals.add(principal_id(reader.arm_id))
    return principals


def grants_read_through(resources: Iterable[CapturedResource],
                        readers: Iterable[CreateTimeReader] = CREATE_TIME_READERS,
                        ) -> Iterator[tuple[CapturedResource, CapturedResource]]:
    """(reader, grant) for each role assignment a create-time reader reads through."""
    resources = list(resources)
    roles_by_type = {reader.type: reader.roles for reader in readers}
    grants = [r for r in resources if r.type == GRANT_TYPE]
    for reader in resources:
        roles = roles_by_type.get(reader.type)
        if roles is None:
            continue
        principals = _principals(reader)
        for grant in grants:
            role = grant.inputs["roleDefinitionId"].rsplit("/", 1)[1]
            if grant.inputs["principalId"] in principals and role in roles:
                yield reader, grant


def _waits_long_enough_after(wait: CapturedResource, grant: CapturedResource,
                             closure: dict[str, set[str]], minimum: timedelta) -> bool:
    triggers = wait.inputs.get("triggers") or {}
    return (grant.urn in closure[wait.urn]
            and wait_duration(wait.inputs.get("createDuration", "0s")) >= minimum
            # Made anew (a new principal or scope), the grant needs the wait again.
            and {grant.inputs["principalId"], grant.inputs["scope"]} <= set(triggers.values()))


def reads_before_grants_apply(resources: Iterable[CapturedResource],
                              readers: Iterable[CreateTimeReader] = CREATE_TIME_READERS,
                              minimum: timedelta = RBAC_PROPAGATION) -> list[str]:
    resources = list(resources)
    closure = dependency_closure(resources)
    waits = [r for r in resources if r.type == WAIT_TYPE]
    problems = []
    for reader, grant in grants_read_through(resources, readers):
        if not any(wait.urn in closure[reader.urn]
                   and _waits_long_enough_after(wait, grant, closure, minimum)
                   for wait in waits):
            problems.append(f"{reader.name} reads through {grant.name} without waiting "
                            f"{minimum} after it")
    return problems


def test_no_stack_reads_through_a_grant_before_it_applies(stack_view):
    assert reads_before_grants_apply(stack_view.run.resources) == []


SITES_READ = [("web-app", "app-key-vault-secrets-user"),
              ("web-app-staging", "app-key-vault-secrets-user")]


def test_the_standard_tier_gateway_waits_too():
    view = standard(ingress="applicationGateway")
    assert [(r.name, g.name) for r, g in grants_read_through(view.run.resources)] == [
        *SITES_READ, ("application-gateway", "gateway-key-vault-secrets-user")]
    assert reads_before_grants_apply(view.run.resources) == []


def test_the_walk_finds_the_gateways_and_the_sites_key_vault_grants(isolated_view):
    assert [(r.name, g.name) for r, g in grants_read_through(isolated_view.run.resources)] == [
        *SITES_READ, ("application-gateway", "gateway-key-vault-secrets-user")]


def test_the_walk_finds_the_dev_sites_key_vault_grant(basic_view):
    assert [(r.name, g.name) for r, g in grants_read_through(basic_view.run.resources)] == [
        ("web-app", "app-key-vault-secrets-user")]


def _without_the_wait(resources: list[CapturedResource]) -> list[CapturedResource]:
    """The stack as it was before the wait: the gateway right behind its grant."""
    waits = {r.urn: r for r in resources if r.type == WAIT_TYPE}

    def rewired(resource: CapturedResource) -> CapturedResource:
        deps = tuple(dep for urn in resource.depends_on
                     for dep in (waits[urn].depends_on if urn in waits else (urn,)))
        return replace(resource, depends_on=deps)

    return [rewired(r) for r in resources if r.urn not in waits]


def test_the_gateway_and_the_sites_right_behind_their_grants_are_caught(isolated_view):
    assert reads_before_grants_apply(_without_the_wait(list(isolated_view.run.resources))) == [
        f"{site} reads through app-key-vault-secrets-user without waiting 0:10:00 after it"
        for site in ("web-app", "web-app-staging")] + [
        "application-gateway reads through gateway-key-vault-secrets-user without waiting "
        "0:10:00 after it"]


def test_a_dev_site_right_behind_its_grant_is_caught(basic_view):
    assert reads_before_grants_apply(_without_the_wait(list(basic_view.run.resources))) == [
        "web-app reads through app-key-vault-secrets-user without waiting 0:10:00 after it"]


def _resource(type_: str, name: str, inputs: dict, depends_on: tuple[str, ...] = (),
              arm_id: str | None = None) -> CapturedResource:
    return CapturedResource(type=type_, name=name, urn=f"urn:{name}", parent="urn:stack",
                            inputs=inputs, protect=False, retain_on_delete=False,
                            depends_on=depends_on, custom_timeouts=None, arm_id=arm_id)


IDENTITY_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/" \
              "userAssignedIdentities/id-gateway"
SCOPE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/secrets/tls"


def _graph(wait_inputs: dict | None, wait_after_grant: bool = True) -> list[CapturedResource]:
    grant = _resource(GRANT_TYPE, "grant", {
        "principalId": principal_id(IDENTITY_ID), "scope": SCOPE,
        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/"
                            f"{KEY_VAULT_SECRETS_USER}"})
    resources = [grant]
    gateway_after = ("urn:grant",)
    if wait_inputs is not None:
        resources.append(_resource(WAIT_TYPE, "wait", wait_inputs,
                                   ("urn:grant",) if wait_after_grant else ()))
        gateway_after = ("urn:wait",)
    resources.append(_resource("azure-native:network:ApplicationGateway", "gateway", {
        "identity": {"type": "UserAssigned", "userAssignedIdentities": [IDENTITY_ID]}},
        gateway_after, arm_id="/subscriptions/s/resourceGroups/rg/providers/"
                              "Microsoft.Network/applicationGateways/agw"))
    return resources


TRIGGERS = {"principalId": principal_id(IDENTITY_ID), "scope": SCOPE}
CAUGHT = ["gateway reads through grant without waiting 0:10:00 after it"]


def test_a_gateway_behind_a_long_enough_wait_after_its_grant_passes():
    assert reads_before_grants_apply(_graph({"createDuration": "10m", "triggers": TRIGGERS})) == []


def test_a_missing_wait_is_caught():
    assert reads_before_grants_apply(_graph(None)) == CAUGHT


def test_a_short_wait_is_caught():
    assert reads_before_grants_apply(_graph({"createDuration": "9m59s",
                                             "triggers": TRIGGERS})) == CAUGHT


def test_a_wait_that_starts_before_the_grant_is_caught():
    graph = _graph({"createDuration": "1h", "triggers": TRIGGERS}, wait_after_grant=False)
    assert reads_before_grants_apply(graph) == CAUGHT


def test_a_wait_that_does_not_rerun_for_a_new_grant_is_caught():
    assert reads_before_grants_apply(_graph({"createDuration": "10m"})) == CAUGHT


def test_durations_read_like_go_durations():
    assert wait_duration("12m") == timedelta(minutes=12)
    assert wait_duration("1h30m") == timedelta(minutes=90)
    assert wait_duration("90s") == timedelta(seconds=90)


@pytest.mark.parametrize("text", ["", "12", "ten minutes", "5m3"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        wait_duration(text)
