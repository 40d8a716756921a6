"""checkov (pinned, own virtualenv) passes every committed ARM rendering; every skip says why."""

from __future__ import annotations

import json
import re

import pytest

from review import checkov_scan
from review.model import Resource
from review.skips import SKIPS
from review.stacks import SNAPSHOT_DIR, discover_stacks

# checkov runs from its own virtualenv (`make checkov-deps`), for seconds per scan.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results():
    if not checkov_scan.CHECKOV.exists():
        pytest.fail(checkov_scan.INSTALL_HINT)
    paths = [SNAPSHOT_DIR / f"{stack}.arm.json" for stack in discover_stacks()]
    return {path.name.split(".")[0]: result
            for path, result in checkov_scan.scan_many(paths).items()}


@pytest.mark.parametrize("stack", discover_stacks())
def test_no_failed_checks_and_some_passed(results, stack):
    result = results[stack]
    assert not result.failed, "\n".join(map(str, result.failed))
    assert len(result.passed) > 10, result.summary()


@pytest.mark.parametrize("stack", discover_stacks())
def test_every_skip_carries_its_justification(results, stack):
    justifications = {skip.comment for skip in SKIPS}
    for finding in results[stack].skipped:
        assert f"{finding.check_id}: {finding.suppress_comment.strip()}" in justifications, finding


def test_skips_are_justified_and_used():
    assert SKIPS
    used = set()
    for stack in discover_stacks():
        template = json.loads((SNAPSHOT_DIR / f"{stack}.arm.json").read_text())
        for resource in template["resources"]:
            used.update(resource["metadata"].get("checkov", []))
    for skip in SKIPS:
        assert skip.check_id.startswith("CKV_AZURE_")
        assert len(skip.justification) > 40, skip
        assert skip.comment in used, f"unused skip, remove it: {skip.comment}"


def test_tier_specific_skips_stay_in_their_tier(results):
    """Private endpoints and purge protection are only excused where B1 makes them meaningless."""
    dev_only = {"CKV_AZURE_189", "CKV_AZURE_110", "CKV_AZURE_59", "CKV_AZURE_35", "CKV_AZURE_225"}
    assert dev_only <= {f.check_id for f in results["dev"].skipped}
    for stack in ("prod", "isolated"):
        # The deployer's artefact account is excused in every tier (review/skips.py); nothing
        # else is.
        excused = {f.check_id for f in results[stack].skipped
                   if not re.search(r"dep[a-z0-9]{4,6}$", f.resource)}
        assert not dev_only & excused
        assert dev_only <= {f.check_id for f in results[stack].passed}


def test_scan_catches_a_regression(tmp_path):
    """Turn HTTPS-only off and drop a skip: checkov must report both."""
    template = json.loads((SNAPSHOT_DIR / "dev.arm.json").read_text())
    site = next(r for r in template["resources"] if r["type"] == "Microsoft.Web/sites")
    site["properties"]["httpsOnly"] = False
    site["metadata"].pop("checkov")
    broken = tmp_path / "dev.arm.json"
    broken.write_text(json.dumps(template))
    failed = {f.check_id for f in checkov_scan.scan(broken).failed}
    assert {"CKV_AZURE_14", "CKV_AZURE_17"} <= failed


def test_missing_checkov_names_the_install_command(tmp_path):
    with pytest.raises(checkov_scan.CheckovMissingError, match="make checkov-deps"):
        checkov_scan.scan(tmp_path / "x.arm.json", checkov=tmp_path / "no-checkov")


def _storage_account(name: str, account_name: str) -> Resource:
    return Resource(type="azure-native:storage:StorageAccount", name=name, parent=None,
                    inputs={"accountName": account_name, "sku": {"name": "Standard_LRS"},
                            "tags": {"purpose": "deployment-artefacts"}},
                    protect=False, retain_on_delete=False, depends_on=(), custom_timeouts=None)


def test_only_the_deployers_own_account_escapes_the_storage_checks():
    def excused(resource: Resource) -> set[str]:
        return {skip.check_id for skip in SKIPS if skip.applies(resource, "standard")}

    artefact_checks = {"CKV_AZURE_59", "CKV_AZURE_35", "CKV_AZURE_206"}
    assert excused(_storage_account("deployer-storage", "strrproddepabc123")) >= artefact_checks
    # Tagged like it, but another account (the photos one) or another logical name: no excuse.
    assert not excused(_storage_account("storage", "strrprodabc123")) & artefact_checks
    assert not excused(_storage_account("storage", "strrproddepabc123")) & artefact_checks
