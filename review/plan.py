"""Offline plan: what a change would do to each stack, from snapshots alone, as PR Markdown.

    python -m review.plan --base origin/main          (or `make diff BASE=<git ref>`)

The BASE side is the snapshot committed at that ref (`git show BASE:review/snapshots/<stack>.json`,
or `snapshots/<stack>.json` in older commits). The other side is the program in the working tree,
run in-process under the same mocks `make synth` uses. No Pulumi CLI, cloud or credentials, so it
runs for pull requests from forks too. A real `pulumi preview` sees state and drift; this sees
only what the code declares, and predicts replacements from review/plan_rules.py.

The site package isn't in the snapshots (the mocks hash its path, not its content), so whether it
changed comes from git: the files `release/build.py` would ship, between BASE and the working
tree.

The parts: review/plan_rules.py (the tables), review/plan_engine.py (`plan_stack(old, new)`, a
pure function of two snapshot documents), review/plan_render.py (the Markdown, within GitHub's
comment limit); this module is git and the command line around them.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from review.plan_engine import ResourcePlan, StackPlan, plan_stack
from review.plan_render import COMMENT_MARKER, render
from review.stacks import REPO_ROOT, discover_stacks

__all__ = ["COMMENT_MARKER", "PlanError", "ResourcePlan", "StackPlan", "build_plans",
           "main", "package_changes", "plan_stack", "render"]

SNAPSHOT_PATHS = ("review/snapshots/{stack}.json", "snapshots/{stack}.json")
# What release/build.py puts in the zip, besides webapp/'s shipped files: the startup script,
# the hash-pinned lock it vendors from, and the build itself.
PACKAGE_SOURCES = ("webapp", "release/startup.py", "release/requirements-py*.txt",
                   "release/build.py")

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


def package_changes(commit: str, root: Path = REPO_ROOT) -> list[str]:
    """The package's source files added, changed or deleted between `commit` and the working
    tree, untracked ones included."""
    changed = _git("diff", "--name-only", "--no-renames", commit, "--", "webapp", "release",
                   root=root)
    if changed.returncode != 0:
        raise PlanError(f"cannot diff the site package against {commit[:12]}: "
                        f"{changed.stderr.strip()}")
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", "webapp", "release",
                     root=root)
    names = set(changed.stdout.splitlines()) | set(untracked.stdout.splitlines())
    return sorted(name for name in names if is_package_source(name))


def is_package_source(path: str) -> bool:
    """Whether release/build.py ships the file (webapp/ minus tests and droppings) or builds
    the package from it."""
    from release.build import is_shipped_dir, is_shipped_file

    parts = PurePosixPath(path).parts
    if parts[0] == PACKAGE_SOURCES[0]:
        return all(is_shipped_dir(d) for d in parts[1:-1]) and is_shipped_file(parts[-1])
    return any(fnmatch.fnmatch(path, pattern) for pattern in PACKAGE_SOURCES[1:])


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
    markdown = render(plans, args.base, package_changes(resolve(args.base)))
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
