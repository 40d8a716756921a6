"""Runs every committed Pulumi.<stack>.yaml through the real program under mocks, once each
(review.synth.cached_run: the same runs the review and policy tests read).

Tests ask for a view of a stack by what they check:
  stack_view      every committed stack
  basic_view / standard_view / isolated_view   the stacks of one tier
  vnet_view       the tiers with a VNet and private endpoints (standard, isolated)
  protected_view  the tiers whose data must survive `pulumi destroy` (standard, isolated)
A new stack file is picked up by the glob and tested without touching the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from review.mocks import CapturedResource, StackRun, load_stack_config
from review.synth import cached_run

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPONENT_PREFIX = "restaurant-review:"
STACKS = sorted(path.name.split(".")[1] for path in REPO_ROOT.glob("Pulumi.*.yaml"))

VIEW_TIERS = {
    "stack_view": ("basic", "standard", "isolated"),
    "basic_view": ("basic",),
    "standard_view": ("standard",),
    "isolated_view": ("isolated",),
    "vnet_view": ("standard", "isolated"),
    "protected_view": ("standard", "isolated"),
}


def stack_tier(stack: str) -> str:
    return load_stack_config(stack).get("restaurant-review:tier", "")


@dataclass(frozen=True)
class StackView:
    """A captured stack run with the look-ups the assertions need."""

    run: StackRun

    @property
    def stack(self) -> str:
        return self.run.stack

    @property
    def tier(self) -> str:
        return self.run.outputs["tier"]

    def all(self, type_suffix: str) -> list[CapturedResource]:
        """Resources whose type ends with e.g. 'web:WebApp' (so 'WebApp' != 'WebAppSlot').

        The program's own components match only by their full type token, so
        'network:VirtualNetwork' is the Azure VNet, not the component holding it.
        """
        return [r for r in self.run.resources
                if r.type == type_suffix or (r.type.endswith(":" + type_suffix)
                                             and not r.type.startswith(COMPONENT_PREFIX))]

    def one(self, type_suffix: str, name: str | None = None) -> CapturedResource:
        found = [r for r in self.all(type_suffix) if name is None or r.name == name]
        assert len(found) == 1, f"{self.stack}: expected one {type_suffix} {name or ''}, " \
                                f"found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> CapturedResource:
        return next(r for r in self.run.resources if r.urn == urn)

    def depends_on(self, resource: CapturedResource) -> set[str]:
        """Logical names of everything `resource` waits for."""
        return {self.by_urn(urn).name for urn in resource.depends_on}

    def sites(self) -> list[CapturedResource]:
        return self.all("web:WebApp") + self.all("web:WebAppSlot")

    @staticmethod
    def settings(site: CapturedResource) -> dict[str, str]:
        return {pair["name"]: pair["value"] for pair in site.inputs["siteConfig"]["appSettings"]}


def _stacks_for(tiers: Iterable[str]) -> list[str]:
    return [stack for stack in STACKS if stack_tier(stack) in tiers]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, tiers in VIEW_TIERS.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, _stacks_for(tiers), indirect=True)


def _view_fixture(name: str):
    @pytest.fixture(name=name)
    def view(request: pytest.FixtureRequest) -> StackView:
        # request.param: a stack, from pytest_generate_tests
        return StackView(cached_run(request.param))

    return view


# stack_view, basic_view, ... : one fixture per VIEW_TIERS entry.
for _fixture_name in VIEW_TIERS:
    globals()[_fixture_name] = _view_fixture(_fixture_name)


@pytest.fixture
def committed_stacks() -> list[str]:
    return list(STACKS)


@pytest.fixture
def all_runs() -> dict[str, StackRun]:
    return {stack: cached_run(stack) for stack in STACKS}


@pytest.fixture
def valid_config() -> dict[str, str]:
    """A complete, valid basic-tier config (project-relative keys) for the error tests to spoil."""
    return {
        "azure-native:location": "westeurope",
        "tier": "basic",
        "alertEmail": "alerts@example.com",
        "postgresAdminObjectId": "11111111-2222-3333-4444-555555555555",
        "postgresAdminPrincipalName": "db-admins",
    }


# The Azure-like PostgreSQL the SQL step's tests share (tests/azure_postgres.py).
from tests.azure_postgres import azure_like_server  # noqa: E402, F401 - a fixture, registered by import
