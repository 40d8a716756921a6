"""Each component takes its settings from its Args, and shares the one grant and diagnostics."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from infra.context import Context

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPONENT_MODULES = sorted(path for path in INFRA.glob("*.py")
                           if "(pulumi.ComponentResource)" in path.read_text(encoding="utf-8"))
# The one function that makes each kind of resource, and the module it lives in.
SHARED_BUILDERS = {"RoleAssignment": "identity.py", "DiagnosticSetting": "monitoring.py"}


def names_used(source: str) -> set[str]:
    """Every name, attribute and imported name the module's code mentions."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
    return used


def constructed(source: str) -> set[str]:
    """The names of what the module calls (`monitor.DiagnosticSetting(...)` gives the last part)."""
    calls = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            calls.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return calls


def test_the_components_are_found():
    assert {path.name for path in COMPONENT_MODULES} >= {
        "app.py", "ase.py", "data.py", "deployer.py", "gateway.py", "hub.py", "identity.py",
        "monitoring.py", "network.py", "private_link.py"}


@pytest.mark.parametrize("path", COMPONENT_MODULES, ids=lambda path: path.name)
def test_a_component_reads_no_stack_config(path):
    used = names_used(path.read_text(encoding="utf-8"))
    assert not used & {"StackConfig", "cfg"}, f"{path.name} reads the stack config"


def test_the_context_carries_no_config():
    types = {str(field.type) for field in dataclasses.fields(Context)}
    assert not any("StackConfig" in kind for kind in types), types


@pytest.mark.parametrize("path", COMPONENT_MODULES, ids=lambda path: path.name)
def test_grants_and_diagnostics_are_made_by_the_shared_helpers(path):
    calls = constructed(path.read_text(encoding="utf-8"))
    for kind, home in SHARED_BUILDERS.items():
        if path.name != home:
            assert kind not in calls, f"{path.name} makes a {kind} itself, not through {home}"
