"""Shared by the reviewer-tool tests: every committed stack, synthesized once per session."""

from __future__ import annotations

import pytest

from review.mocks import CapturedResource
from review.model import Resource, normalize
from review.stacks import discover_stacks
from review.synth import cached_run, render_all


@pytest.fixture(scope="session")
def stacks() -> list[str]:
    return discover_stacks()


@pytest.fixture(scope="session")
def rendered(stacks) -> dict[str, str]:
    return render_all(stacks, cached_run)


@pytest.fixture(scope="session")
def resources_by_stack(stacks) -> dict[str, list[Resource]]:
    return {stack: normalize(cached_run(stack).resources) for stack in stacks}


def _urn(type_: str, name: str) -> str:
    return f"urn:pulumi:t::p::{type_}::{name}"


def _captured(type_: str, name: str, inputs: dict | None = None, depends_on: tuple = (),
              protect: bool = False, parent: str | None = None) -> CapturedResource:
    """A hand-made resource as review.mocks captures it; depends_on as `type::name` refs."""
    return CapturedResource(
        type=type_, name=name, urn=_urn(type_, name), parent=parent, inputs=inputs or {},
        protect=protect, retain_on_delete=False,
        depends_on=tuple(_urn(*ref.split("::", 1)) for ref in depends_on),
        custom_timeouts=None,
    )


@pytest.fixture
def captured():
    """Factory for hand-made CapturedResources (see _captured)."""
    return _captured


@pytest.fixture
def urn():
    return _urn


@pytest.fixture(scope="session")
def all_resources(resources_by_stack) -> list[Resource]:
    return [resource for resources in resources_by_stack.values() for resource in resources]
