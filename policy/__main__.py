"""Entry point the Pulumi CLI runs for `--policy-pack policy`: serves the baseline over gRPC.

The CLI starts this file as a script from the pack's folder, so the repository root (where the
`policy` package lives) is put on the import path first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.pack import PACK_NAME, policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
