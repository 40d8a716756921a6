"""The offline plan as one PR comment: every stack's warnings first, then the details that fit.

GitHub refuses a comment longer than COMMENT_LIMIT characters. The comment is rendered at the
most detailed level that fits (DETAIL_LEVELS); the warnings are never shortened while any detail
is left to drop, so a long plan for one stack can't push another stack's warnings out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from review.plan_engine import _MISSING, ACTIONS, Change, ResourcePlan, StackPlan, code
from review.plan_rules import MASKED, SECRET

COMMENT_MARKER = "<!-- offline-plan -->"
COMMENT_LIMIT = 65_536  # characters GitHub accepts in one issue or PR comment
# full: every changed input; brief: what happens and why, inputs counted; counts: actions only.
DETAIL_LEVELS = ("full", "brief", "counts")
LONG = 100
SHOWN_PACKAGE_FILES = 5

INTRO = ("Computed from the committed snapshots and the program under mocks: no cloud, no "
         "state. Replacements are predicted from ARM ids, `location` and the create-only "
         "properties listed in `review/plan_rules.py`; the real `pulumi preview` (where "
         "credentials exist) is the authority on drift.")


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    if value in (MASKED, SECRET):
        return value
    return code(json.dumps(value, ensure_ascii=False))


def _show_pair(old: Any, new: Any) -> tuple[str, str]:
    """Long strings are cut around their first difference, so the change stays visible."""
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > LONG:
        start = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                     min(len(old), len(new)))
        begin = max(0, start - 30)

        def cut(text: str) -> str:
            piece = text[begin:begin + LONG]
            return ("…" if begin else "") + piece + ("…" if begin + LONG < len(text) else "")
        return (code(cut(old)) + f" ({len(old)} chars)", code(cut(new)) + f" ({len(new)} chars)")
    return _show(old), _show(new)


def _change_line(change: Change) -> str:
    old, new = _show_pair(change.old, change.new)
    hidden = " (value changed)" if change.masked and old == new else ""
    return f"  - `{change.path}`: {old} → {new}{hidden}"


def _resource_lines(plan: ResourcePlan, level: str) -> list[str]:
    where = f" (under `{plan.parent}`)" if plan.parent else ""
    lines = [f"- **{plan.action}** `{plan.ref}`{where}"]
    if plan.moved:
        lines.append(f"  - moved from under `{plan.old_parent}`")
    lines.extend(f"  - replaced because {reason}" for reason in plan.replace_reasons)
    lines.extend(f"  - {note}" for note in plan.notes)
    lines.extend(f"  - {shown}" for shown in plan.key_inputs)
    changes = [*plan.changes, *(Change(f"options.{c.path}", c.old, c.new)
                                for c in plan.option_changes)]
    if level == "full":
        lines.extend(_change_line(c) for c in changes)
    elif changes:
        lines.append(f"  - {len(changes)} input(s) changed")
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


def package_note(plans: Sequence[StackPlan], package_files: Sequence[str]) -> list[str]:
    """What merging redeploys when the site package's sources changed (empty when they didn't)."""
    if not package_files:
        return []
    shown = ", ".join(f"`{f}`" for f in package_files[:SHOWN_PACKAGE_FILES])
    more = len(package_files) - SHOWN_PACKAGE_FILES
    files = shown + (f" and {more} more" if more > 0 else "")
    targets = "; ".join(f"**{p.stack}**: {p.redeploy}" for p in plans if p.redeploy)
    return ["> [!NOTE]",
            f"> **The site package changes** ({len(package_files)} source file(s): {files}). "
            f"Merging redeploys it: {targets}.", ""]


def warning_blocks(plans: Sequence[StackPlan]) -> list[str]:
    """One CAUTION block per stack with warnings, every warning on its own line."""
    lines: list[str] = []
    for plan in plans:
        if plan.dangers:
            lines.extend(["> [!CAUTION]",
                          f"> **{plan.stack}: {len(plan.dangers)} change(s) to review with care**"])
            lines.extend(f"> - `{r.ref}`: {danger}" for r, danger in plan.dangers)
            lines.append("")
    return lines


def stack_section(plan: StackPlan, level: str = "full") -> list[str]:
    lines = [f"### {plan.stack}", ""]
    if plan.note:
        lines.extend([plan.note, ""])
    if plan.moved:
        lines.extend([f"{plan.moved} resource(s) moved to another parent: a URN change, free "
                      "before the first deploy; once deployed, each needs "
                      "`aliases=[pulumi.Alias(parent=...)]` or Pulumi replaces it.", ""])
    if plan.unchanged:
        return [*lines, "No infrastructure changes.", ""]
    if level == "counts":
        counts = ", ".join(f"{plan.count(a)} {a}" for a in ACTIONS if plan.count(a))
        return [*lines, f"{len(plan.resources)} resource(s): {counts or 'moves only'}.", ""]
    for resource in plan.resources:
        lines.extend(_resource_lines(resource, level))
    if plan.output_changes:
        lines.extend(["", "Stack outputs:"])
        if level == "full":
            lines.extend(_change_line(c) for c in plan.output_changes)
        else:
            lines.append(f"  - {len(plan.output_changes)} output(s) changed")
    return [*lines, ""]


def _head(plans: Sequence[StackPlan], base: str, package_files: Sequence[str]) -> list[str]:
    return [COMMENT_MARKER, f"## Offline plan: `{base}` → this change", "", INTRO, "",
            *summary_table(plans), "", *package_note(plans, package_files)]


def _shortened(base: str) -> list[str]:
    return [f"_Details shortened to fit GitHub's {COMMENT_LIMIT:,}-character comment limit: "
            f"`make diff BASE={base}` (or the `offline-plan` artifact) has them in full._", ""]


def _at_level(plans: Sequence[StackPlan], base: str, package_files: Sequence[str],
              level: str) -> str:
    lines = [*_head(plans, base, package_files), *warning_blocks(plans)]
    if level != "full":
        lines.extend(_shortened(base))
    for plan in plans:
        lines.extend(stack_section(plan, level))
    return "\n".join(lines)


def _more_warnings(count: int) -> str:
    return f"> - … and {count} more warning(s), in the full plan"


def _warnings_only(plans: Sequence[StackPlan], base: str, package_files: Sequence[str],
                   limit: int) -> str:
    """The last resort: no details, and as many warnings as fit, the rest counted.

    Sizes are those of the lines as printed, the count line included, so the comment itself
    stays within `limit`.
    """
    lines = [*_head(plans, base, package_files), *_shortened(base), "> [!CAUTION]"]
    warnings = [f"> - **{p.stack}** `{r.ref}`: {d}" for p in plans for r, d in p.dangers]
    size = len("\n".join(lines)) + 1  # the comment's last newline
    kept = 0
    for line in warnings:
        left = len(warnings) - kept - 1
        count_line = len(_more_warnings(left)) + 1 if left else 0
        if size + len(line) + 1 + count_line > limit:
            break
        size += len(line) + 1
        kept += 1
    left = len(warnings) - kept
    return "\n".join([*lines, *warnings[:kept], *([_more_warnings(left)] if left else []), ""])


def render(plans: Sequence[StackPlan], base: str, package_files: Sequence[str] = (),
           limit: int = COMMENT_LIMIT) -> str:
    if all(p.unchanged for p in plans) and not package_files:
        return "\n".join([COMMENT_MARKER, f"## Offline plan: `{base}` → this change", "",
                          "No changes.", ""])
    for level in DETAIL_LEVELS:
        text = _at_level(plans, base, package_files, level)
        if len(text) <= limit:
            return text
    return _warnings_only(plans, base, package_files, limit)
