"""When startup.py sweeps orphaned photos (the sweep itself: tests/webapp/test_sweep.py)."""

from __future__ import annotations

import pytest

from release.startup import (
    DEFAULT_SWEEP_INTERVAL_MINUTES,
    PARENT_CHECK_SECONDS,
    StartupError,
    start_photo_sweeper,
    sweep_interval_seconds,
    sweep_periodically,
)


def test_the_interval_defaults_to_six_hours_and_zero_turns_the_sweep_off():
    assert sweep_interval_seconds({}) == DEFAULT_SWEEP_INTERVAL_MINUTES * 60 == 6 * 3600
    assert sweep_interval_seconds({"PHOTO_SWEEP_INTERVAL_MINUTES": "15"}) == 900
    assert sweep_interval_seconds({"PHOTO_SWEEP_INTERVAL_MINUTES": "0"}) == 0
    assert start_photo_sweeper({}, interval=0) is None


@pytest.mark.parametrize("value", ["-5", "1.5", "hourly"])
def test_a_bad_interval_is_refused_by_name(value):
    with pytest.raises(StartupError, match="PHOTO_SWEEP_INTERVAL_MINUTES must be a whole number"):
        sweep_interval_seconds({"PHOTO_SWEEP_INTERVAL_MINUTES": value})


class Timeline:
    """A fake clock for sweep_periodically: sleeping advances it; the parent dies at `end`."""

    def __init__(self, end: float) -> None:
        self.now, self.end, self.sweeps = 0.0, end, []

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= PARENT_CHECK_SECONDS  # the parent is checked often
        self.now += seconds

    def parent_alive(self) -> bool:
        return self.now < self.end

    def sweep(self) -> None:
        self.sweeps.append(self.now)


def test_sweeps_every_interval_until_gunicorn_is_gone():
    timeline = Timeline(end=3 * 600 + 100)

    sweep_periodically(timeline.sweep, interval=600, parent_alive=timeline.parent_alive,
                       sleep=timeline.sleep, first_delay=50)

    assert timeline.sweeps == [50, 650, 1250, 1850]


def test_a_failed_round_is_logged_and_the_next_one_still_runs(caplog):
    timeline = Timeline(end=1000)
    outcomes = iter([ConnectionError("storage down"), None])

    def sweep() -> None:
        timeline.sweeps.append(timeline.now)
        outcome = next(outcomes, None)
        if outcome is not None:
            raise outcome

    sweep_periodically(sweep, interval=400, parent_alive=timeline.parent_alive,
                       sleep=timeline.sleep, first_delay=0)

    assert timeline.sweeps == [0, 400, 800]
    assert "orphaned-photo sweep failed; trying again next round" in caplog.text


def test_the_first_round_waits_a_random_part_of_the_interval():
    timeline = Timeline(end=10_000)
    sweep_periodically(timeline.sweep, interval=3600, parent_alive=timeline.parent_alive,
                       sleep=timeline.sleep)
    assert 0 <= timeline.sweeps[0] <= 3600
    assert timeline.sweeps[1] - timeline.sweeps[0] == pytest.approx(3600)
