"""`pulumi up` runs this file with infra/ as the working directory."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Import the program as the `infra` package from the repository root, and take infra/ itself off
# the path so its modules (config, data, app...) can't shadow top-level modules of the same name.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from infra.program import main  # noqa: E402 - needs the path above

main()
