"""Where stacks and snapshots live: every committed Pulumi.<stack>.yaml at the repo root."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_DIR = REPO_ROOT / "review" / "snapshots"


def discover_stacks(root: Path = REPO_ROOT) -> list[str]:
    """Stack names from Pulumi.<stack>.yaml (Pulumi.yaml itself is the project file)."""
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
    if not stacks:
        raise FileNotFoundError(f"no Pulumi.<stack>.yaml in {root}: nothing to synthesize")
    return stacks
