"""Offline synth: render every stack through the program's mocks into review/snapshots/.

    python -m review.synth            write review/snapshots/<stack>.{json,md,arm.json}, then
                                      run checkov
    python -m review.synth --check    exit 1 with a unified diff when a snapshot is stale

No Pulumi CLI, cloud or credentials: `review.mocks.run_stack` runs the real program in-process.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pulumi import RunError

from review import arm, checkov_scan, diagram, diagram_summary, markdown
from review.model import dump_json, normalize, snapshot_document, tier_of
from review.skips import skips_for
from review.stacks import REPO_ROOT, SNAPSHOT_DIR, discover_stacks

REFRESH_COMMAND = "make synth"


def default_runner(stack: str):
    # Imported late: the mocks import the whole Pulumi program and the azure-native SDK.
    from review.mocks import run_stack

    return run_stack(stack)


@functools.cache
def cached_run(stack: str):
    """One mocked run per stack per process: the run is deterministic, tests share it."""
    return default_runner(stack)


def render_stack(stack: str, runner: Callable = default_runner) -> dict[str, str]:
    """Every snapshot file of one stack, name -> content (nothing touches the disk)."""
    run = runner(stack)
    resources = normalize(run.resources)
    tier = tier_of(resources)
    return {
        f"{stack}.json": dump_json(snapshot_document(stack, resources, run.outputs)),
        f"{stack}.md": markdown.page(stack, tier, resources, diagram.mermaid(resources),
                                     diagram_summary.summary(resources)),
        f"{stack}.arm.json": dump_json(arm.render_template(resources, skips_for(tier))),
    }


def render_all(stacks: Sequence[str], runner: Callable = default_runner) -> dict[str, str]:
    rendered: dict[str, str] = {}
    for stack in stacks:
        rendered.update(render_stack(stack, runner))
    return rendered


def _shown(directory: Path) -> str:
    """The folder as a reviewer types it: relative to the repository when inside it."""
    try:
        return str(directory.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(directory)


def stale_files(rendered: dict[str, str], directory: Path = SNAPSHOT_DIR) -> dict[str, str]:
    """name -> unified diff (committed -> synthesized) for every snapshot that differs."""
    diffs = {}
    for name, content in sorted(rendered.items()):
        path = directory / name
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != content:
            diffs[name] = "".join(difflib.unified_diff(
                committed.splitlines(keepends=True), content.splitlines(keepends=True),
                fromfile=f"{_shown(directory)}/{name} (committed)",
                tofile=f"{_shown(directory)}/{name} (program)"))
    return diffs


def write(rendered: dict[str, str], directory: Path = SNAPSHOT_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in rendered.items():
        (directory / name).write_text(content, encoding="utf-8")


def scan(stacks: Sequence[str], directory: Path = SNAPSHOT_DIR) -> bool:
    """checkov on each ARM rendering; True when no check failed anywhere."""
    results = checkov_scan.scan_many([directory / f"{stack}.arm.json" for stack in stacks])
    clean = True
    for result in results.values():
        print(f"checkov {result.summary()}")
        for finding in result.failed:
            print(f"  {finding}")
        clean = clean and not result.failed and bool(result.passed)
    return clean


def main(argv: Sequence[str] | None = None, runner: Callable = default_runner) -> int:
    parser = argparse.ArgumentParser(prog="python -m review.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed snapshots instead of writing them")
    parser.add_argument("--no-scan", action="store_true", help="skip the checkov scan")
    parser.add_argument("--stack", action="append", help="only this stack (repeatable)")
    parser.add_argument("--dir", type=Path, default=SNAPSHOT_DIR, help="snapshot folder")
    args = parser.parse_args(argv)

    stacks = args.stack or discover_stacks(REPO_ROOT)
    try:
        rendered = render_all(stacks, runner)
    except RunError as error:  # a bad stack file: its one line, as `pulumi up` would print it
        print(f"review.synth: {error}", file=sys.stderr)
        return 2
    if args.check:
        diffs = stale_files(rendered, args.dir)
        for diff in diffs.values():
            sys.stdout.write(diff)
        if diffs:
            print(f"\nsnapshots are stale ({', '.join(diffs)}): run `{REFRESH_COMMAND}` and "
                  f"commit {_shown(args.dir)}/", file=sys.stderr)
            return 1
        print(f"snapshots up to date for {', '.join(stacks)}")
        return 0
    write(rendered, args.dir)
    print(f"wrote {len(rendered)} files to {args.dir}/")
    if args.no_scan:
        return 0
    try:
        return 0 if scan(stacks, args.dir) else 1
    except checkov_scan.CheckovMissingError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
