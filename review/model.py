"""The snapshot model: a stack's captured resources as a deterministic, reviewable document.

The input is what `review.mocks.run_stack` returns (a `StackRun` of `CapturedResource`s); this
module only relies on those attribute names, so hand-made lists work the same way in tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

STACK_TYPE = "pulumi:pulumi:Stack"


class Captured(Protocol):
    """The attributes of `review.mocks.CapturedResource` this package reads."""

    type: str
    name: str
    urn: str
    parent: str | None
    inputs: dict
    protect: bool
    retain_on_delete: bool
    depends_on: tuple[str, ...]
    custom_timeouts: dict | None
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]
    arm_id: str | None


def urn_ref(urn: str) -> str:
    """`type::name` for a URN: stable across stacks and projects, unlike the URN itself.

    A URN is `urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>`; the parent chain is
    already recorded separately, so only the resource's own type and name are kept.
    """
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    qualified_type, name = parts[2], parts[3]
    return f"{qualified_type.rsplit('$', 1)[-1]}::{name}"


def parent_ref(parent: str | None) -> str | None:
    """The parent as a ref, or None when the parent is the stack itself (nothing to show)."""
    if not parent:
        return None
    ref = urn_ref(parent)
    return None if ref.startswith(STACK_TYPE + "::") else ref


@dataclass(frozen=True)
class Resource:
    """One resource as the reviewer tools see it: refs instead of URNs, sorted dependencies."""

    type: str
    name: str
    parent: str | None
    inputs: Mapping[str, Any]
    protect: bool
    retain_on_delete: bool
    depends_on: tuple[str, ...]
    custom_timeouts: Mapping[str, Any] | None
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    arm_id: str | None = None  # the Azure resource id, with the mocks' fixed subscription

    @property
    def ref(self) -> str:
        return f"{self.type}::{self.name}"

    @classmethod
    def from_captured(cls, captured: Captured) -> Resource:
        return cls(
            type=captured.type,
            name=captured.name,
            parent=parent_ref(captured.parent),
            inputs=captured.inputs,
            protect=bool(captured.protect),
            retain_on_delete=bool(captured.retain_on_delete),
            depends_on=tuple(sorted({urn_ref(urn) for urn in captured.depends_on})),
            custom_timeouts=captured.custom_timeouts or None,
            delete_before_replace=bool(captured.delete_before_replace),
            ignore_changes=tuple(captured.ignore_changes),
            arm_id=captured.arm_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "armId": self.arm_id,
            "parent": self.parent,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "deleteBeforeReplace": self.delete_before_replace,
            "ignoreChanges": list(self.ignore_changes),
            "dependsOn": list(self.depends_on),
            "customTimeouts": self.custom_timeouts,
            "inputs": self.inputs,
        }


def normalize(captured: Iterable[Captured]) -> list[Resource]:
    """Resources in a stable order (type, then name), the stack resource itself left out."""
    resources = [Resource.from_captured(c) for c in captured if c.type != STACK_TYPE]
    return sorted(resources, key=lambda r: (r.type, r.name))


def snapshot_document(stack: str, resources: list[Resource], outputs: Mapping[str, Any]) -> dict:
    return {
        "stack": stack,
        "resourceCount": len(resources),
        "resources": [r.to_json() for r in resources],
        "outputs": dict(outputs),
    }


def dump_json(document: Any) -> str:
    """The one serialization every snapshot uses: sorted keys, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def tier_of(resources: Iterable[Resource]) -> str:
    """The hosting tier as the resources show it (an ASE means isolated, a VNet standard)."""
    types = {r.type for r in resources}
    if "azure-native:web:AppServiceEnvironment" in types:
        return "isolated"
    if "azure-native:network:VirtualNetwork" in types:
        return "standard"
    return "basic"
