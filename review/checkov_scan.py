"""Run checkov on ARM renderings, from its own virtualenv (.venv-checkov).

checkov brings ~70 packages and pins `packaging` below the project's version; keeping it apart
leaves the Pulumi program's environment exactly what requirements.txt says.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from review.stacks import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
INSTALL_HINT = (
    "checkov is not installed: run `make checkov-deps` (python3 -m venv .venv-checkov && "
    ".venv-checkov/bin/pip install -r review/requirements-checkov.txt)"
)


class CheckovMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Finding:
    check_id: str
    check_name: str
    resource: str
    result: str  # "passed", "failed" or "skipped"
    suppress_comment: str = ""

    def __str__(self) -> str:
        return f"{self.check_id} {self.result.upper()} on {self.resource}: {self.check_name}"


@dataclass(frozen=True)
class ScanResult:
    path: Path
    findings: tuple[Finding, ...]

    def of(self, result: str) -> list[Finding]:
        return [f for f in self.findings if f.result == result]

    @property
    def passed(self) -> list[Finding]:
        return self.of("passed")

    @property
    def failed(self) -> list[Finding]:
        return self.of("failed")

    @property
    def skipped(self) -> list[Finding]:
        return self.of("skipped")

    def summary(self) -> str:
        return (f"{self.path.name}: {len(self.passed)} passed, {len(self.failed)} failed, "
                f"{len(self.skipped)} skipped")


def _findings(report: dict, result: str) -> list[tuple[str, Finding]]:
    """(file path as checkov prints it, finding) for every check with this result."""
    return [
        (check["file_path"], Finding(
            check_id=check["check_id"],
            check_name=check["check_name"],
            resource=check["resource"],
            result=result,
            suppress_comment=(check.get("check_result") or {}).get("suppress_comment", "") or "",
        ))
        for check in report.get("results", {}).get(f"{result}_checks", [])
    ]


def scan_many(paths: list[Path], checkov: Path = CHECKOV) -> dict[Path, ScanResult]:
    """Scan ARM templates in one checkov run (it starts slowly); offline, no platform calls."""
    if not checkov.exists():
        raise CheckovMissingError(INSTALL_HINT)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    command = [str(checkov), "--framework", "arm", "--output", "json", "--skip-download",
               "--soft-fail", "--file", *map(str, paths)]
    completed = subprocess.run(  # noqa: S603 - fixed executable and arguments
        command, capture_output=True, text=True, env=env, check=False, timeout=600,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"checkov gave no JSON report (exit {completed.returncode}):\n"
                           f"{completed.stderr[-2000:]}") from error
    reports = report if isinstance(report, list) else [report]
    by_name: dict[str, list[Finding]] = {p.name: [] for p in paths}
    for framework_report in reports:
        for kind in ("passed", "failed", "skipped"):
            for file_path, finding in _findings(framework_report, kind):
                by_name.setdefault(Path(file_path).name, []).append(finding)
    return {p: ScanResult(path=p, findings=tuple(by_name[p.name])) for p in paths}


def scan(path: Path, checkov: Path = CHECKOV) -> ScanResult:
    return scan_many([path], checkov)[path]
