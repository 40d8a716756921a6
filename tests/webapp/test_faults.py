"""The site under load through every fault of `make chaos`: bounded answers, then recovery.

One run of devtools.chaos (its own PostgreSQL, Azurite and gunicorn-served site; about a
minute): PostgreSQL restarted, PostgreSQL paused, Blob Storage down, Blob Storage paused.
"""

from __future__ import annotations

import uuid

import pytest

from devtools.chaos import RECOVERY_LIMIT_SECONDS, format_table, run_chaos

BUDGET_SECONDS = 3.0
FAULT_SECONDS = 5.0
SETTLE_SECONDS = 3.0
CLIENTS = 8
# What a visitor may wait beyond the budget: the site's own time is bounded by the budget, the
# client's adds the wait in gunicorn's accept queue (every thread busy), loopback transfer and
# the load generator's own scheduling: 8 client threads in one Python process on 2 CPUs that
# ~7 engineers share. One second covers that on this loaded machine and still fails a
# dependency wait the budget does not bound (those last seconds: a connect or read timeout).
CLIENT_MARGIN_SECONDS = 1.0


@pytest.fixture(scope="module")
def chaos(services_dir):
    workdir = services_dir / f"chaos-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    workdir.chmod(0o755)
    return run_chaos(workdir, FAULT_SECONDS, SETTLE_SECONDS, CLIENTS, BUDGET_SECONDS,
                     report=lambda _line: None)


def test_every_fault_ran_under_load(chaos):
    names = [phase.name for phase in chaos.phases]
    assert names == ["baseline", "PostgreSQL restart", "PostgreSQL paused 5 s",
                     "Blob Storage down 5 s", "Blob Storage paused 5 s"]
    for phase in chaos.phases:
        kinds = {sample.kind for sample in phase.samples}
        assert {"home", "details", "photo", "review"} <= kinds, phase.name
    # Each outage was seen: the harness really broke something.
    for phase in chaos.phases[1:]:
        assert phase.unavailable > 0, phase.name


def test_faults_give_503s_within_the_budget_and_heal_within_two_seconds(chaos):
    table = format_table(chaos.phases)
    for phase in chaos.phases:
        assert phase.other_errors == 0, table
        # As gunicorn timed it, and as the visitor waited (see CLIENT_MARGIN_SECONDS).
        assert phase.slowest_at_site <= BUDGET_SECONDS, table
        assert phase.slowest <= BUDGET_SECONDS + CLIENT_MARGIN_SECONDS, table
        assert phase.recovery <= RECOVERY_LIMIT_SECONDS, table
    assert chaos.server_errors_logged == 0


def test_accepted_reviews_are_saved_with_their_photos_and_refused_ones_are_not(chaos):
    assert chaos.problems == []


def test_photos_and_revalidations_are_served_while_postgresql_is_paused(chaos):
    paused = next(phase for phase in chaos.phases if phase.name.startswith("PostgreSQL paused"))
    during = [s for s in paused.samples if s.kind in ("photo", "revalidate")
              and paused.started <= s.started < paused.returned]
    assert during
    assert all(s.status in (200, 304) for s in during)


def test_pages_without_photos_and_revalidations_work_while_storage_is_down(chaos):
    down = next(phase for phase in chaos.phases if phase.name.startswith("Blob Storage down"))
    during = [s for s in down.samples if s.started < down.returned]
    for kind, expected in (("home", 200), ("details", 200), ("revalidate", 304)):
        answers = [s.status for s in during if s.kind == kind]
        assert answers, kind
        assert set(answers) == {expected}, kind
