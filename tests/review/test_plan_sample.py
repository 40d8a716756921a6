"""The sample plans in README.md and review/README.md are exactly what the plan prints."""

from __future__ import annotations

from review import plan_sample


def test_both_readmes_show_the_generated_sample_plan():
    expected = plan_sample.sample_block()
    for path in plan_sample.SAMPLE_FILES:
        assert plan_sample.current_block(path) == expected, (
            f"{path.name}'s sample plan is stale: run `.venv/bin/python -m review.plan_sample`")


def test_the_sample_shows_each_kind_of_warning_and_the_package_line():
    text = plan_sample.sample()
    for expected in ("PostgreSQL storage shrinks: Azure refuses", "geo-redundant backup off",
                     "storage redundancy lowered", "`useRemoteGateways`: `true`",
                     "in another subscription", "`roleDefinitionId`: `Key Vault Secrets User`",
                     "**The site package changes**", "**isolated**: the `staging` slot"):
        assert expected in text, expected
