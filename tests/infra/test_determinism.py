"""Reruns are idempotent: same stack, same bytes; role assignment GUIDs never drift."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict

from infra.identity import role_assignment_name
from review.mocks import run_stack


def test_two_runs_are_byte_identical(stack_view):
    again = run_stack(stack_view.stack)
    assert json.dumps(asdict(again), sort_keys=True) == json.dumps(asdict(stack_view.run),
                                                                    sort_keys=True)


def test_role_assignment_names_are_deterministic_guids(stack_view):
    names = [a.inputs["roleAssignmentName"] for a in stack_view.all("authorization:RoleAssignment")]
    assert all(uuid.UUID(name).version == 5 for name in names)
    assert len(set(names)) == len(names)


def test_role_assignment_name_depends_only_on_scope_principal_and_role():
    name = role_assignment_name("st1/photos", "app-1/app", "role-a")
    assert name == role_assignment_name("st1/photos", "app-1/app", "role-a")
    assert len({name, role_assignment_name("st2/photos", "app-1/app", "role-a"),
                role_assignment_name("st1/photos", "app-1/staging", "role-a"),
                role_assignment_name("st1/photos", "app-1/app", "role-b")}) == 4


def test_stacks_do_not_share_role_assignment_names(all_runs):
    seen: dict[str, str] = {}
    for stack, run in all_runs.items():
        for assignment in run.resources:
            if assignment.type.endswith("RoleAssignment"):
                name = assignment.inputs["roleAssignmentName"]
                assert name not in seen, f"{stack} reuses {seen.get(name)}'s assignment {name}"
                seen[name] = stack
