"""Offline plan: what a change would do to each stack, from snapshots alone, as PR Markdown.

    python -m review.plan --base origin/main          (or `make diff BASE=<git ref>`)

The BASE side is the snapshot committed at that ref (`git show BASE:review/snapshots/<stack>.json`,
or `snapshots/<stack>.json` in older commits). The other side is the program in the working tree,
run in-process under the same mocks `make synth` uses. No Pulumi CLI, cloud or credentials, so it
runs for pull requests from forks too. A real `pulumi preview` sees state and drift; this sees
only what the code declares, and predicts replacements from the rules below.

`plan_stack(old, new)` is a pure function of two snapshot documents; everything else is git and
Markdown around it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from review.resource_types import arm_id
from review.stacks import REPO_ROOT, discover_stacks

SNAPSHOT_PATHS = ("review/snapshots/{stack}.json", "snapshots/{stack}.json")
COMMENT_MARKER = "<!-- offline-plan -->"
SECRET = "[secret]"  # noqa: S105 - the snapshots' placeholder for sealed values
MASKED = "[masked]"

# --- what makes a change dangerous --------------------------------------------------------------

# Losing one of these loses data (or the keys to it): replacing or deleting is never routine.
STATEFUL_TYPES = frozenset({
    "azure-native:dbforpostgresql:Server",
    "azure-native:dbforpostgresql:Database",
    "azure-native:storage:StorageAccount",
    "azure-native:storage:BlobContainer",
    "azure-native:keyvault:Vault",
    "azure-native:keyvault:Secret",
})
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"

# Every change to one of these (create, update, replace, delete) opens or closes a path in.
EXPOSURE_TYPES = frozenset({
    "azure-native:dbforpostgresql:FirewallRule",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:SecurityRule",
    "azure-native:network:PublicIPAddress",
    "azure-native:web:WebAppFtpAllowed",
    "azure-native:web:WebAppScmAllowed",
    "azure-native:web:WebAppFtpAllowedSlot",
    "azure-native:web:WebAppScmAllowedSlot",
    # The site's public front door and its WAF (e.g. Prevention -> Detection).
    "azure-native:network:ApplicationGateway",
    "azure-native:network:WebApplicationFirewallPolicy",
    # Which other networks reach the VNet, and which resolve its private names (the hub's).
    "azure-native:network:VirtualNetworkPeering",
    "azure-native:privatedns:VirtualNetworkLink",
})
# An updated input whose path has one of these keys changes who can reach the resource, or how.
EXPOSURE_KEYS = frozenset({
    "publicNetworkAccess", "publicNetworkAccessForIngestion", "publicNetworkAccessForQuery",
    "networkAcls", "networkRuleSet", "defaultAction", "ipRules", "virtualNetworkRules", "bypass",
    "securityRules", "firewallRules", "ipSecurityRestrictions", "scmIpSecurityRestrictions",
    "ipSecurityRestrictionsDefaultAction", "scmIpSecurityRestrictionsDefaultAction",
    "scmIpSecurityRestrictionsUseMain", "publicIPAddress", "publicIpAddress", "httpsOnly",
    "minTlsVersion", "scmMinTlsVersion", "minimumTlsVersion", "ftpsState",
    "allowBlobPublicAccess", "publicAccess", "allowSharedKeyAccess", "internalLoadBalancingMode",
    "clientCertEnabled", "clientCertMode", "enableRbacAuthorization", "passwordAuth",
    "activeDirectoryAuth", "serviceEndpoints",
})

# --- values that must never reach a PR comment ----------------------------------------------------

# A path segment naming a secret value: its string values, and everything beneath it, are masked.
# Anchored at the end so settings *about* secrets (`passwordAuth`, `allowSharedKeyAccess`) show.
_SECRET_SEGMENT = re.compile(
    r"(password|passwd|secret|token|connection_?strings?|sas"
    r"|(access|account|shared|instrumentation|api|private|primary|secondary|master|secret)_?key)"
    r"(_?value)?s?\]?$",
    re.IGNORECASE,
)
# Inputs that hold a secret whatever they are called.
SECRET_INPUTS = {"azure-native:keyvault:Secret": ("properties.value",)}

# --- properties that cannot change in place ----------------------------------------------------


@dataclass(frozen=True)
class ImmutableRule:
    """Changing `path` on `type` makes Azure (or the provider) recreate the resource."""

    type: str
    path: str  # dotted input path; "*" = any input
    reason: str
    applies: Callable[[Any, Any], bool] = lambda old, new: True


def _storage_kind_change(old: Any, new: Any) -> bool:
    return not (old == "Storage" and new == "StorageV2")  # the one in-place upgrade Azure offers


def _storage_tier_change(old: Any, new: Any) -> bool:
    def tier(sku):
        return str(sku).split("_", 1)[0]
    return tier(old) != tier(new)


def _major(version: Any) -> int:
    match = re.match(r"\d+", str(version))
    return int(match.group()) if match else 0


def _version_downgrade(old: Any, new: Any) -> bool:
    return _major(new) < _major(old)


# Kept short on purpose: each entry is a documented Azure or provider constraint that applies to
# a resource type this program declares. Name, resource group and parent resource changes are
# not listed: they change the ARM id, which is checked separately. Location is create-only for
# every tracked Azure resource (ARM's PUT guideline: `location` is `x-ms-mutability: create,
# read`), so it is checked for every type.
IMMUTABLE_RULES = (
    # App Service can't convert a site or a plan between Linux and Windows.
    ImmutableRule("azure-native:web:WebApp", "kind", "a site can't switch between Linux and "
                  "Windows", lambda old, new: ("linux" in str(old)) != ("linux" in str(new))),
    ImmutableRule("azure-native:web:WebAppSlot", "kind", "a slot can't switch between Linux and "
                  "Windows", lambda old, new: ("linux" in str(old)) != ("linux" in str(new))),
    ImmutableRule("azure-native:web:AppServicePlan", "reserved", "a plan can't switch between "
                  "Linux (reserved) and Windows"),
    # A plan lives in one ASE, or in the multi-tenant service, for its whole life.
    ImmutableRule("azure-native:web:AppServicePlan", "hostingEnvironmentProfile.id",
                  "a plan can't move into, out of or between App Service Environments"),
    # An ASE v3 is built into its subnet at creation (moving means migrating to a new one).
    ImmutableRule("azure-native:web:AppServiceEnvironment", "virtualNetwork.id",
                  "an App Service Environment can't move to another subnet"),
    # A private endpoint's network interface is allocated in its subnet.
    ImmutableRule("azure-native:network:PrivateEndpoint", "subnet.id",
                  "a private endpoint can't move to another subnet"),
    # PostgreSQL flexible server: networking mode and admin login are chosen at creation;
    # in-place major *upgrades* exist, downgrades don't.
    ImmutableRule("azure-native:dbforpostgresql:Server", "network.delegatedSubnetResourceId",
                  "the connectivity method (VNet integration or public access) is fixed at "
                  "creation"),
    ImmutableRule("azure-native:dbforpostgresql:Server", "administratorLogin",
                  "the administrator login is set only at creation"),
    ImmutableRule("azure-native:dbforpostgresql:Server", "version",
                  "PostgreSQL can't be downgraded in place", _version_downgrade),
    ImmutableRule("azure-native:dbforpostgresql:Database", "charset",
                  "a database's encoding is set at creation"),
    ImmutableRule("azure-native:dbforpostgresql:Database", "collation",
                  "a database's collation is set at creation"),
    # Storage: the account kind (except Storage -> StorageV2) and performance tier are fixed.
    ImmutableRule("azure-native:storage:StorageAccount", "kind", "a storage account's kind "
                  "can't change (only Storage -> StorageV2 upgrades)", _storage_kind_change),
    ImmutableRule("azure-native:storage:StorageAccount", "sku.name", "a storage account can't "
                  "move between Standard and Premium performance", _storage_tier_change),
    # Azure rejects updates to a role assignment's principal or role
    # (RoleAssignmentUpdateNotPermitted): the program deletes before it replaces them.
    ImmutableRule(ROLE_ASSIGNMENT, "principalId", "a role assignment's principal can't change"),
    ImmutableRule(ROLE_ASSIGNMENT, "roleDefinitionId", "a role assignment's role can't change"),
    # The random provider marks every argument ForceNew: a change generates a new value.
    ImmutableRule("random:index/randomPassword:RandomPassword", "*",
                  "any argument change generates a new password"),
    ImmutableRule("random:index/randomString:RandomString", "*",
                  "any argument change generates a new string"),
    # pulumiverse-time: a changed trigger runs the wait again, as a replacement.
    ImmutableRule("time:index/sleep:Sleep", "triggers", "a changed trigger waits again"),
    # pulumi_command's Command sets replace_on_changes=["triggers[*]"] on itself.
    ImmutableRule("command:local:Command", "triggers", "a changed trigger re-runs the command "
                  "as a replacement"),
)

# --- the plan model --------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any
    masked: bool = False


@dataclass
class ResourcePlan:
    """One logical resource: what happens to it and why."""

    action: str  # create | update | replace | delete | move (URN change only)
    type: str
    name: str
    parent: str | None
    old_parent: str | None = None  # set when the resource moved to another parent
    changes: list[Change] = field(default_factory=list)
    option_changes: list[Change] = field(default_factory=list)
    replace_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dangers: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.type}::{self.name}"

    @property
    def moved(self) -> bool:
        return self.old_parent is not None


ACTIONS = ("create", "update", "replace", "delete")


@dataclass
class StackPlan:
    stack: str
    resources: list[ResourcePlan]
    output_changes: list[Change]
    note: str | None = None

    def count(self, action: str) -> int:
        return sum(1 for r in self.resources if r.action == action)

    @property
    def moved(self) -> int:
        return sum(1 for r in self.resources if r.moved)

    @property
    def dangers(self) -> list[tuple[ResourcePlan, str]]:
        return [(r, d) for r in self.resources for d in r.dangers]

    @property
    def unchanged(self) -> bool:
        return not self.resources and not self.output_changes


# --- diffing inputs ----------------------------------------------------------------------------


def _keyed_by_name(old: list, new: list) -> bool:
    """Lists of named objects (app settings, NSG rules) are compared by name, not position."""
    items = [*old, *new]
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                            for i in items):
        return False
    return all(len({i["name"] for i in side}) == len(side) for side in (old, new))


_MISSING = object()


def _walk(old: Any, new: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(path, old, new) for every leaf that differs; _MISSING where a side has no value."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _walk(old.get(key, _MISSING), new.get(key, _MISSING),
                             f"{path}.{key}" if path else key)
    elif isinstance(old, list) and isinstance(new, list):
        if _keyed_by_name(old, new):
            old_by, new_by = ({i["name"]: i for i in side} for side in (old, new))
            for name in sorted(set(old_by) | set(new_by)):
                yield from _walk(old_by.get(name, _MISSING), new_by.get(name, _MISSING),
                                 f"{path}[{name}]")
        else:
            for index in range(max(len(old), len(new))):
                yield from _walk(old[index] if index < len(old) else _MISSING,
                                 new[index] if index < len(new) else _MISSING,
                                 f"{path}[{index}]")
    elif isinstance(old, dict | list) and old is not _MISSING and new is _MISSING:
        yield from _walk(old, type(old)(), path) if old else [(path, old, new)]
    elif isinstance(new, dict | list) and old is _MISSING:
        yield from _walk(type(new)(), new, path) if new else [(path, old, new)]
    elif old != new:
        yield path, old, new


def _segments(path: str) -> list[str]:
    return [s for s in re.split(r"\.|\[", path) if s]


def is_secret_path(resource_type: str, path: str) -> bool:
    if any(path == p or path.startswith(p + ".") for p in SECRET_INPUTS.get(resource_type, ())):
        return True
    return any(_SECRET_SEGMENT.search(segment) for segment in _segments(path))


def _mask(value: Any) -> Any:
    # Booleans and numbers name a setting, never a credential: `allowSharedKeyAccess` stays.
    if value is _MISSING or isinstance(value, bool | int | float) or value is None:
        return value
    return MASKED if value != SECRET else SECRET


def diff_inputs(resource_type: str, old: Mapping, new: Mapping) -> list[Change]:
    changes = []
    for path, before, after in _walk(dict(old), dict(new), ""):
        if path == "location" and _same_location(before, after):
            continue
        secret = is_secret_path(resource_type, path) or SECRET in (before, after)
        if secret:
            before, after = _mask(before), _mask(after)
        changes.append(Change(path, before, after, masked=secret))
    return changes


def _same_location(old: Any, new: Any) -> bool:
    """The provider ignores case and spaces: "West Europe" is "westeurope"."""
    def norm(value):
        return str(value).replace(" ", "").lower()
    return isinstance(old, str) and isinstance(new, str) and norm(old) == norm(new)


def _input(inputs: Mapping, path: str) -> Any:
    value: Any = inputs
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


# --- ARM ids -----------------------------------------------------------------------------------


def arm_id_of(resource: Mapping) -> str | None:
    """The snapshot's `armId` when recorded, else computed from the type and inputs.

    None when it can't be known (not an Azure resource, or an input the id needs is missing):
    no prediction rather than a wrong one.
    """
    if resource.get("armId"):
        return resource["armId"]
    # The snapshots' ids carry the mocks' subscription. Imported late: it loads the program.
    from review.mocks import SUBSCRIPTION_ID

    try:
        return arm_id(resource["type"], resource.get("inputs") or {}, SUBSCRIPTION_ID,
                      logical_name=resource.get("name"))
    except (KeyError, ValueError):  # a type outside review/resource_types.py, an input missing
        return None


# --- planning ----------------------------------------------------------------------------------

OPTION_FIELDS = ("protect", "retainOnDelete", "deleteBeforeReplace", "ignoreChanges",
                 "customTimeouts")


def _id_difference(old_id: str, new_id: str) -> tuple[str, str]:
    """The two ids from the first segment that differs (with its `type/` label), `…` elsewhere."""
    old_parts, new_parts = old_id.split("/"), new_id.split("/")
    first = next((i for i, (a, b) in enumerate(zip(old_parts, new_parts, strict=False))
                  if a != b), min(len(old_parts), len(new_parts)))
    start = max(first - 1, 1)

    def tail(parts: list[str]) -> str:
        shown = parts[start:first + 1]
        return ("…/" if start > 1 else "/") + "/".join(shown) + ("/…" if first + 1 < len(parts)
                                                                else "")
    return tail(old_parts), tail(new_parts)


def _replace_reasons(old: Mapping, new: Mapping, changes: list[Change]) -> list[str]:
    reasons = []
    old_id, new_id = arm_id_of(old), arm_id_of(new)
    if old_id and new_id and old_id != new_id:
        before_part, after_part = _id_difference(old_id, new_id)
        reasons.append(f"its ARM id changes ({_code(before_part)} → {_code(after_part)})")
    before, after = old.get("inputs") or {}, new.get("inputs") or {}
    if "location" in {c.path for c in changes}:
        reasons.append("`location` is fixed at creation")
    changed_paths = [c.path for c in changes]
    for rule in IMMUTABLE_RULES:
        if rule.type != new["type"]:
            continue
        if rule.path == "*":
            if changes:
                reasons.append(rule.reason)
            continue
        hit = any(p == rule.path or p.startswith((rule.path + ".", rule.path + "["))
                  for p in changed_paths)
        if hit and rule.applies(_input(before, rule.path), _input(after, rule.path)):
            reasons.append(f"`{rule.path}`: {rule.reason}")
    return reasons


def _is_exposure_path(path: str) -> bool:
    return any(segment.rstrip("]") in EXPOSURE_KEYS for segment in _segments(path))


def _dangers(plan: ResourcePlan, old: Mapping | None, new: Mapping | None) -> list[str]:
    dangers = []
    protected = bool(old and old.get("protect"))
    stateful = plan.type in STATEFUL_TYPES
    if plan.action in ("replace", "delete") and (stateful or protected):
        what = ", ".join(w for w, on in (("stateful", stateful), ("protected", protected)) if on)
        verb = "replaced" if plan.action == "replace" else "deleted"
        stop = ("; `pulumi up` refuses while `protect` is set" if protected else "")
        dangers.append(f"{what} resource {verb}: its data is lost unless restored{stop}")
    if plan.moved and (stateful or protected):
        dangers.append("stateful resource moved to another parent (URN change): once deployed, "
                       "add an alias or Pulumi deletes and recreates it")
    if old and new:
        for flag in ("protect", "retainOnDelete"):
            if old.get(flag) and not new.get(flag):
                dangers.append(f"`{flag}` removed")
    if plan.action == "move":  # nothing changes in Azure: only the URN (see above)
        return dangers
    if plan.type == ROLE_ASSIGNMENT:
        dangers.append(f"role assignment {plan.action}d")
    if plan.type in EXPOSURE_TYPES:
        dangers.append(f"network exposure: {plan.type.rsplit(':', 1)[-1]} {plan.action}d")
    elif plan.action in ("update", "replace"):
        exposed = sorted({c.path for c in plan.changes if _is_exposure_path(c.path)})
        if exposed:
            dangers.append("network exposure: " + ", ".join(f"`{p}`" for p in exposed))
    return dangers


def _identity(resource: Mapping) -> tuple[str, str, str | None]:
    return resource["type"], resource["name"], resource.get("parent")


def _match(old: list[Mapping], new: list[Mapping]):
    """(old, new) pairs: same type::name and parent first, then same type::name (a move)."""
    old_left = {_identity(r): r for r in old}
    pairs, created = [], []
    for resource in new:
        match = old_left.pop(_identity(resource), None)
        if match is not None:
            pairs.append((match, resource))
        else:
            created.append(resource)
    still_created = []
    for resource in created:
        moved = next((key for key in sorted(old_left, key=str)
                      if key[:2] == _identity(resource)[:2]), None)
        if moved is None:
            still_created.append(resource)
        else:
            pairs.append((old_left.pop(moved), resource))
    return pairs, still_created, list(old_left.values())


def _ignored(path: str, ignore_changes: Sequence[str]) -> bool:
    """Pulumi keeps the deployed value of an `ignoreChanges` path (`a.b`, `a[*]`, `a`)."""
    for ignored in ignore_changes:
        pattern = re.escape(ignored).replace(r"\[\*\]", r"\[[^\]]+\]")
        if re.match(f"{pattern}($|[.[])", path):
            return True
    return False


def _plan_pair(old: Mapping, new: Mapping) -> ResourcePlan | None:
    changes = [c for c in diff_inputs(new["type"], old.get("inputs") or {},
                                      new.get("inputs") or {})
               if not _ignored(c.path, new.get("ignoreChanges") or ())]
    options = [Change(f, old.get(f), new.get(f)) for f in OPTION_FIELDS
               if (old.get(f) or None) != (new.get(f) or None)]
    moved = old.get("parent") != new.get("parent")
    reasons = _replace_reasons(old, new, changes)
    if not (changes or options or moved or reasons):
        return None
    action = "replace" if reasons else "update" if (changes or options) else "move"
    plan = ResourcePlan(action, new["type"], new["name"], new.get("parent"),
                        old_parent=(old.get("parent") or "the stack") if moved else None,
                        changes=changes, option_changes=options, replace_reasons=reasons)
    if changes == [] and options and action == "update":
        plan.notes.append("resource options only: nothing changes in Azure")
    plan.dangers = _dangers(plan, old, new)
    return plan


def plan_stack(stack: str, old_doc: Mapping | None, new_doc: Mapping | None) -> StackPlan:
    """The plan from one snapshot document to another (None: the stack doesn't exist there)."""
    old = list((old_doc or {}).get("resources", []))
    new = list((new_doc or {}).get("resources", []))
    pairs, created, deleted = _match(old, new)
    plans = [p for p in (_plan_pair(o, n) for o, n in pairs) if p is not None]
    deleted_by_id = {arm_id_of(r): r for r in deleted if arm_id_of(r)}
    for resource in created:
        plan = ResourcePlan("create", resource["type"], resource["name"], resource.get("parent"))
        twin = deleted_by_id.get(arm_id_of(resource))
        if twin is not None and twin["type"] == resource["type"]:
            plan.notes.append(
                f"same Azure resource as the deleted `{twin['name']}` (a Pulumi rename): add "
                f"`aliases=[pulumi.Alias(name=\"{twin['name']}\")]`, or the deploy deletes it "
                "and creates it again")
        plan.dangers = _dangers(plan, None, resource)
        plans.append(plan)
    for resource in deleted:
        plan = ResourcePlan("delete", resource["type"], resource["name"], resource.get("parent"))
        plan.dangers = _dangers(plan, resource, None)
        plans.append(plan)
    order = {action: i for i, action in enumerate(("replace", "delete", "create", "update",
                                                   "move"))}
    plans.sort(key=lambda p: (order[p.action], p.type, p.name))
    outputs = diff_inputs("", (old_doc or {}).get("outputs") or {},
                          (new_doc or {}).get("outputs") or {})
    note = None
    if old_doc is None and new_doc is not None:
        note = "New stack: every resource is created."
    elif new_doc is None and old_doc is not None:
        note = "Stack removed: every resource is deleted."
    return StackPlan(stack, plans, outputs, note)


# --- Markdown ---------------------------------------------------------------------------------


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    if value in (MASKED, SECRET):
        return value
    return _code(json.dumps(value, ensure_ascii=False))


LONG = 100


def _show_pair(old: Any, new: Any) -> tuple[str, str]:
    """Long strings are cut around their first difference, so the change stays visible."""
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > LONG:
        start = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                     min(len(old), len(new)))
        begin = max(0, start - 30)

        def cut(text: str) -> str:
            piece = text[begin:begin + LONG]
            return ("…" if begin else "") + piece + ("…" if begin + LONG < len(text) else "")
        return (_code(cut(old)) + f" ({len(old)} chars)", _code(cut(new)) + f" ({len(new)} chars)")
    return _show(old), _show(new)


def _change_line(change: Change) -> str:
    old, new = _show_pair(change.old, change.new)
    hidden = " (value changed)" if change.masked and old == new else ""
    return f"  - `{change.path}`: {old} → {new}{hidden}"


def _resource_lines(plan: ResourcePlan) -> list[str]:
    where = f" (under `{plan.parent}`)" if plan.parent else ""
    lines = [f"- **{plan.action}** `{plan.ref}`{where}"]
    if plan.moved:
        lines.append(f"  - moved from under `{plan.old_parent}`")
    lines.extend(f"  - replaced because {reason}" for reason in plan.replace_reasons)
    lines.extend(f"  - {note}" for note in plan.notes)
    lines.extend(_change_line(c) for c in plan.changes)
    lines.extend(_change_line(Change(f"options.{c.path}", c.old, c.new))
                 for c in plan.option_changes)
    return lines


def summary_table(plans: Sequence[StackPlan]) -> list[str]:
    rows = ["| stack | create | update | replace | delete | moved | warnings |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for plan in plans:
        counts = " | ".join(str(plan.count(a)) for a in ACTIONS)
        warnings = len(plan.dangers)
        rows.append(f"| {plan.stack} | {counts} | {plan.moved} | "
                    f"{'**' + str(warnings) + '**' if warnings else 0} |")
    return rows


def stack_section(plan: StackPlan) -> list[str]:
    lines = [f"### {plan.stack}", ""]
    if plan.dangers:
        lines.append("> [!CAUTION]")
        lines.append(f"> **{len(plan.dangers)} change(s) to review with care**")
        lines.extend(f"> - `{r.ref}`: {danger}" for r, danger in plan.dangers)
        lines.append("")
    if plan.note:
        lines.extend([plan.note, ""])
    if plan.moved:
        lines.extend([f"{plan.moved} resource(s) moved to another parent: a URN change, free "
                      "before the first deploy; once deployed, each needs "
                      "`aliases=[pulumi.Alias(parent=...)]` or Pulumi replaces it.", ""])
    if plan.unchanged:
        return [*lines, "No changes.", ""]
    for plan_ in plan.resources:
        lines.extend(_resource_lines(plan_))
    if plan.output_changes:
        lines.extend(["", "Stack outputs:"])
        lines.extend(_change_line(c) for c in plan.output_changes)
    return [*lines, ""]


def render(plans: Sequence[StackPlan], base: str) -> str:
    lines = [COMMENT_MARKER, f"## Offline plan: `{base}` → this change", ""]
    if all(p.unchanged for p in plans):
        lines.extend(["No changes.", ""])
        return "\n".join(lines)
    lines.extend([
        "Computed from the committed snapshots and the program under mocks: no cloud, no "
        "state. Replacements are predicted from ARM ids, `location` and the create-only "
        "properties listed in `review/plan.py`; the real `pulumi preview` (where credentials "
        "exist) is the authority on drift.", ""])
    lines.extend(summary_table(plans))
    lines.append("")
    for plan in plans:
        lines.extend(stack_section(plan))
    return "\n".join(lines)


# --- git and the program -----------------------------------------------------------------------


class PlanError(RuntimeError):
    """Bad input (an unknown ref, an unreadable snapshot): the message says which."""


def _git(*args: str, root: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args],  # noqa: S603, S607 - our args
                              capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise PlanError("git is not installed: the plan reads BASE's snapshots with git") from error


def resolve(base: str, root: Path = REPO_ROOT) -> str:
    result = _git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", root=root)
    if result.returncode != 0:
        raise PlanError(f"BASE {base!r} is not a commit in {root} (try origin/main or HEAD~1)")
    return result.stdout.strip()


def stacks_at(commit: str, root: Path = REPO_ROOT) -> list[str]:
    result = _git("ls-tree", "--name-only", commit, root=root)
    if result.returncode != 0:
        raise PlanError(f"cannot list {commit}: {result.stderr.strip()}")
    return sorted(name[len("Pulumi."):-len(".yaml")] for name in result.stdout.splitlines()
                  if re.fullmatch(r"Pulumi\.[^.]+\.yaml", name))


def snapshot_at(commit: str, stack: str, root: Path = REPO_ROOT) -> dict | None:
    for template in SNAPSHOT_PATHS:
        path = template.format(stack=stack)
        result = _git("show", f"{commit}:{path}", root=root)
        if result.returncode == 0:
            try:
                return json.loads(result.stdout)
            except json.JSONDecodeError as error:
                raise PlanError(f"{path} at {commit[:12]} is not valid JSON: {error}") from error
    return None


def _run_stack(stack: str):
    # Imported late: the mocks import the whole Pulumi program and the azure-native SDK.
    from review.mocks import run_stack

    return run_stack(stack)


def current_snapshot(stack: str, runner: Callable = _run_stack) -> dict:
    """The working tree's program for `stack`, exactly as `make synth` would write it."""
    from review.synth import render_stack

    rendered = render_stack(stack, runner)
    return json.loads(rendered[f"{stack}.json"])


def build_plans(base: str, stacks: Sequence[str] | None = None, root: Path = REPO_ROOT,
                current: Callable[[str], dict] = current_snapshot) -> list[StackPlan]:
    commit = resolve(base, root)
    before = stacks_at(commit, root)
    now = discover_stacks(root) if any(root.glob("Pulumi.*.yaml")) else []
    wanted = stacks or sorted(set(before) | set(now))
    unknown = sorted(set(wanted) - set(before) - set(now))
    if unknown:
        raise PlanError(f"no stack {', '.join(unknown)} at {base} or in the working tree "
                        f"(stacks: {', '.join(sorted(set(before) | set(now)))})")
    plans = []
    for stack in wanted:
        old = snapshot_at(commit, stack, root) if stack in before else None
        try:
            new = current(stack) if stack in now else None
        except ValueError as error:  # the program's own config errors name the key
            raise PlanError(f"the program fails for stack {stack}: {error}") from error
        plan = plan_stack(stack, old, new)
        if stack in before and old is None:
            plan.note = (f"No committed snapshot at `{base}`: every resource is shown as "
                         "created.")
        plans.append(plan)
    return plans


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m review.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git ref whose snapshots are the 'before'")
    parser.add_argument("--stack", action="append", help="only this stack (repeatable)")
    parser.add_argument("--output", type=Path, help="write the Markdown here instead of stdout")
    parser.add_argument("--fail-on-danger", action="store_true",
                        help="exit 3 when any change is flagged")
    args = parser.parse_args(argv)
    try:
        plans = build_plans(args.base, args.stack)
    except PlanError as error:
        print(f"review.plan: {error}", file=sys.stderr)
        return 2
    markdown = render(plans, args.base)
    if args.output:
        args.output.write_text(markdown, encoding="utf-8")
        print(f"wrote the plan to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(markdown)
    if args.fail_on_danger and any(p.dangers for p in plans):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
