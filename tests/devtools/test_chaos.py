"""devtools.chaos's bookkeeping: phases, the table and what counts as a failure.

The harness itself runs against the real site in tests/webapp/test_faults.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools import chaos
from devtools.chaos import Phase, Sample, assign, format_table, problems
from devtools.services import REPO_ROOT
from devtools.site_setup import child_environment
from webapp.images import DecodeBudget, validate_photo
from webapp.storage import photo_name_for

BUDGET = 3.0


def sample(kind: str, started: float, seconds: float, status: int | None,
           error: str | None = None) -> Sample:
    """An answer the site timed as the client did (none when the client gave up)."""
    return Sample("id", kind, started, started + seconds, status, error,
                  server_seconds=None if status is None else seconds)


def fault_phase(*samples: Sample) -> Phase:
    """A fault from t=10 to t=15, the dependency answering again at t=16."""
    phase = Phase("PostgreSQL paused 5 s", started=10.0, returned=16.0, resumed=15.0, ended=30.0)
    phase.samples = list(samples)
    return phase


def test_answers_belong_to_the_phase_in_which_they_came():
    baseline = Phase("baseline", 0.0, 0.0, 0.0, ended=10.0)
    fault = fault_phase()
    in_flight_at_the_fault = sample("home", 9.5, 2.0, 503)
    assign([baseline, fault], [sample("home", 1.0, 0.1, 200), in_flight_at_the_fault])
    assert len(baseline.samples) == 1
    assert fault.samples == [in_flight_at_the_fault]


def test_a_clean_fault_has_no_problems_and_its_recovery_is_measured_from_the_return():
    phase = fault_phase(
        sample("details", 11.0, 2.6, 503),  # during the fault: a bounded 503
        sample("details", 16.2, 0.5, 503),  # just after: still failing, within 2 s
        sample("details", 17.0, 0.1, 200),
        sample("revalidate", 12.0, 0.01, 304),
    )
    assert phase.recovery == 16.2 + 0.5 - 16.0
    assert phase.unavailable == 2
    assert problems([phase], BUDGET) == []
    table = format_table([phase])
    assert "PostgreSQL paused 5 s" in table
    assert "+1.00 s" in table  # the dependency answered 1 s after the fault ended


def test_bare_500s_slow_answers_and_late_failures_are_problems():
    phase = fault_phase(
        sample("home", 11.0, 0.2, 500),
        sample("photo", 11.0, 30.0, None, error="ReadTimeout"),
        sample("photo", 12.0, 3.4, 503),
        sample("review", 18.5, 0.1, 503),  # sent 2.5 s after the dependency answered
    )
    found = problems([phase], BUDGET)
    assert any("2 answers neither expected nor 503 (home: 500, photo: ReadTimeout)" in p
               for p in found)
    assert any("slowest answer took 3.40 s, over the 3 s budget (photo 503, sent 2.00 s into "
               "the phase)" in p for p in found)
    assert any("1 failures to requests sent more than 2 s after" in p for p in found)


class PopenCalled(Exception):
    """Stops devtools.chaos.site once it has shown the environment it starts the site with."""


def test_the_site_under_chaos_gets_the_same_environment_as_make_dev(monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_CLIENT_ID", "a-developers-identity")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://169.254.1.1/identity")
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=x")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    seen: dict[str, str] = {}

    def fake_popen(*_args, env, **_kwargs):
        seen.update(env)
        raise PopenCalled

    monkeypatch.setattr(chaos.subprocess, "Popen", fake_popen)
    with pytest.raises(PopenCalled), chaos.site({"SECRET_KEY": "k"}, tmp_path / "log",
                                                tmp_path / "access"):
        pass

    assert seen == child_environment({"SECRET_KEY": "k"})
    assert seen["UNRELATED_SETTING"] == "kept"
    assert not {"AZURE_CLIENT_ID", "IDENTITY_ENDPOINT",
                "APPLICATIONINSIGHTS_CONNECTION_STRING"} & seen.keys()


def test_a_review_with_a_photo_expects_the_blob_the_site_stores_for_it():
    write = chaos.LoadGenerator._write_attempt(with_photo=True)
    stored = validate_photo(write.photo, len(write.photo), DecodeBudget(1024 * 1024, 0))

    assert write.stored_photo == stored.data
    assert write.photo_name == photo_name_for(stored.data, "png")


def test_chaos_loads_its_site_without_the_benchmark():
    """Seeding and site setup are shared modules; the chaos harness needs no part of bench."""
    probe = "import sys, devtools.chaos; print('devtools.bench' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True)
    assert imported.stdout.strip() == "False"
