"""The offline plan's engine: a pure function from two snapshot documents to what would happen.

`plan_stack(stack, old, new)` matches resources by `type::name` and parent, diffs their inputs
(secrets masked), predicts replacements and flags dangers from the tables in
review/plan_rules.py. No git, no program, no Markdown: those live in review/plan.py and
review/plan_render.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from review.diagram import BUILT_IN_ROLES
from review.plan_rules import (
    CREATE_KEY_INPUTS,
    EXPOSURE_KEYS,
    EXPOSURE_TYPES,
    IMMUTABLE_RULES,
    MASKED,
    RESILIENCE_RULES,
    ROLE_ASSIGNMENT,
    SECRET,
    SECRET_INPUTS,
    SECRET_SEGMENT,
    STATEFUL_TYPES,
    redundancy_lost,
)
from review.resource_types import arm_id

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
    key_inputs: list[str] = field(default_factory=list)  # a create's inputs worth seeing

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
    redeploy: str | None = None  # what a changed site package redeploys in this stack

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
        """Nothing in the infrastructure changes (the site package may still redeploy)."""
        return not self.resources and not self.output_changes


def code(text: str) -> str:
    """Inline Markdown code, fenced so that a backtick inside can't end it."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


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
    return any(SECRET_SEGMENT.search(segment) for segment in _segments(path))


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
        reasons.append(f"its ARM id changes ({code(before_part)} → {code(after_part)})")
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
        dangers.extend(_resilience_dangers(plan.type, old, new))
    if plan.action == "move":  # nothing changes in Azure: only the URN (see above)
        return dangers
    inputs = f" ({'; '.join(plan.key_inputs)})" if plan.key_inputs else ""
    if plan.type == ROLE_ASSIGNMENT:
        dangers.append(f"role assignment {plan.action}d{inputs}")
    if plan.type in EXPOSURE_TYPES:
        dangers.append(f"network exposure: {plan.type.rsplit(':', 1)[-1]} {plan.action}d{inputs}")
    elif plan.action in ("update", "replace"):
        exposed = sorted({c.path for c in plan.changes if _is_exposure_path(c.path)})
        if exposed:
            dangers.append("network exposure: " + ", ".join(f"`{p}`" for p in exposed))
    return dangers


def _resilience_dangers(resource_type: str, old: Mapping, new: Mapping) -> list[str]:
    """Each rule of RESILIENCE_RULES the change breaks: what it means, the values, the source."""
    before, after = old.get("inputs") or {}, new.get("inputs") or {}
    protected = "protected data: " if old.get("protect") else ""
    found = []
    for rule in RESILIENCE_RULES:
        if rule.type != resource_type:
            continue
        was, now = _input(before, rule.path), _input(after, rule.path)
        if was is _MISSING or not rule.lowers(was, None if now is _MISSING else now):
            continue
        lost = redundancy_lost(was, now) if rule.path == "sku.name" else set()
        what = f" (loses {', '.join(sorted(lost))})" if lost else ""
        found.append(f"{protected}{rule.warning}{what}: `{rule.path}` {_plain(was)} → "
                     f"{_plain(now)} ([why]({rule.source}))")
    return found


def _plain(value: Any) -> str:
    return "(unset)" if value is _MISSING else code(json.dumps(value, ensure_ascii=False))


# --- a new resource's key inputs ---------------------------------------------------------------


@dataclass(frozen=True)
class StackContext:
    """What ids in a resource's inputs are read against: the stack's own resources."""

    ids: frozenset[str]  # every ARM id the stack declares (lower case)
    subscription: str | None  # the one most of them live in
    names: Mapping[str, str]  # "type::name" ref -> logical name, for principals


def _subscription_of(resource_id: str) -> str | None:
    match = re.match(r"/subscriptions/([^/]+)", resource_id, re.IGNORECASE)
    return match.group(1).lower() if match else None


def stack_context(doc: Mapping | None) -> StackContext:
    resources = list((doc or {}).get("resources", []))
    ids = {i.lower() for i in (arm_id_of(r) for r in resources) if i}
    subscriptions = Counter(s for s in map(_subscription_of, ids) if s)
    home = subscriptions.most_common(1)[0][0] if subscriptions else None
    return StackContext(frozenset(ids), home, {f"{r['type']}::{r['name']}": r["name"]
                                               for r in resources})


PRINCIPAL_TYPES = ("azure-native:managedidentity:UserAssignedIdentity",
                   "azure-native:web:WebApp", "azure-native:web:WebAppSlot")


def _show_id(resource_id: str, context: StackContext) -> str:
    """`…/virtualNetworks/hub`, and where it lives when that isn't this stack."""
    parts = resource_id.rstrip("/").split("/")
    shown = code("…/" + "/".join(parts[-2:]) if len(parts) > 3 else resource_id)
    where = []
    if resource_id.lower() not in context.ids:
        where.append("outside this stack")
    subscription = _subscription_of(resource_id)
    if subscription and context.subscription and subscription != context.subscription:
        where.append(f"in another subscription {code(subscription)}")
    return shown + (f" ({', '.join(where)})" if where else "")


def _key_value(path: str, value: Any, resource: Mapping, context: StackContext) -> str:
    if path == "roleDefinitionId":
        guid = str(value).rsplit("/", 1)[-1].lower()
        return code(BUILT_IN_ROLES.get(guid, str(value)))
    if path == "principalId":
        names = [context.names.get(d, d.split("::", 1)[-1]) for d in resource.get("dependsOn") or ()
                 if d.split("::", 1)[0] in PRINCIPAL_TYPES]
        return code(names[0]) if len(names) == 1 else code(str(value))
    if isinstance(value, str) and (path == "scope" or path.endswith(".id")):
        return _show_id(value, context)
    return code(json.dumps(value, ensure_ascii=False))


def _outside_parent(resource: Mapping, context: StackContext) -> str | None:
    """The resource this child is created in, when the stack doesn't declare it: a hub-side
    peering writes into the hub's VNet, which needs rights there and changes someone else's
    network. None for a child of the stack's own resources, and for role assignments (whose
    `scope` is shown instead)."""
    own = arm_id_of(resource)
    if not own or resource["type"] == ROLE_ASSIGNMENT:
        return None
    container = own.rsplit("/", 2)[0]
    if container.split("/")[-2:-1] == ["providers"] or container.lower() in context.ids:
        return None  # a top-level resource (`…/providers/<namespace>`), or a child of the stack's
    return container


def key_inputs(resource: Mapping, context: StackContext) -> list[str]:
    """Where it is created, if outside the stack, and `path`: value for each CREATE_KEY_INPUTS
    path the new resource sets."""
    inputs = resource.get("inputs") or {}
    shown = []
    if resource["type"] in CREATE_KEY_INPUTS and (parent := _outside_parent(resource, context)):
        shown.append(f"created in {_show_id(parent, context)}")
    for path in CREATE_KEY_INPUTS.get(resource["type"], ()):
        value = _input(inputs, path)
        if value is not _MISSING:
            shown.append(f"`{path}`: {_key_value(path, value, resource, context)}")
    return shown


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
    context = stack_context(new_doc) if created else None
    for resource in created:
        plan = ResourcePlan("create", resource["type"], resource["name"], resource.get("parent"),
                            key_inputs=key_inputs(resource, context))
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
    return StackPlan(stack, plans, outputs, note, redeploy=deploy_target(new_doc))


def deploy_target(doc: Mapping | None) -> str | None:
    """Where `pulumi up` ships the site package: the staging slot when there is one, else the
    app itself (the program deploys to a slot whenever the tier has slots)."""
    resources = list((doc or {}).get("resources", []))
    slots = sorted(str((r.get("inputs") or {}).get("slot") or r["name"]) for r in resources
                   if r["type"] == "azure-native:web:WebAppSlot")
    if slots:
        return f"the `{slots[0]}` slot (production after the swap)"
    if any(r["type"] == "azure-native:web:WebApp" for r in resources):
        return "the app (production)"
    return None
