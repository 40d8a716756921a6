"""Every committed stack as the policy pack would see it (inputs + options), synthesized once."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from review.model import normalize
from review.stacks import REPO_ROOT, discover_stacks
from review.synth import cached_run

POLICY_DIR = REPO_ROOT / "policy"


@pytest.fixture(scope="session")
def stack_resources() -> dict:
    return {stack: normalize(cached_run(stack).resources) for stack in discover_stacks()}


@pytest.fixture
def real_props(stack_resources):
    """A deep copy of the inputs of the first `type` resource in `stack` (a compliant baseline)."""
    def find(stack: str, type_: str) -> dict:
        resource = next(r for r in stack_resources[stack] if r.type == type_)
        return copy.deepcopy(dict(resource.inputs))
    return find


@pytest.fixture
def policy_dir() -> Path:
    return POLICY_DIR
