"""``python -m bench``'s command line: what it asks of the run's settings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.run import _parser, main, run_settings
from bench.settings import BenchSettings


def test_rounds_and_leg_seconds_replace_the_defaults() -> None:
    args = _parser().parse_args(["--telemetry", "--rounds", "12", "--leg-seconds", "1.5"])
    settings = run_settings(args)
    assert (settings.rounds, settings.leg_seconds) == (12, 1.5)
    assert settings.high_concurrency == BenchSettings().high_concurrency  # the rest as it was


def test_without_them_the_full_and_smoke_settings_stand() -> None:
    assert run_settings(_parser().parse_args(["--telemetry"])) == BenchSettings()
    smoke = run_settings(_parser().parse_args(["--telemetry", "--smoke", "--rounds", "3"]))
    assert smoke == replace(BenchSettings.smoke(), rounds=3)


@pytest.mark.parametrize(
    "argv",
    [
        ["--telemetry", "--rounds", "0"],
        ["--telemetry", "--rounds", "two"],
        ["--telemetry", "--leg-seconds", "-1"],
        ["--telemetry", "--leg-seconds", "nan"],
        ["--telemetry", "--leg-seconds", "inf"],
    ],
)
def test_a_count_or_length_not_finite_and_above_zero_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        _parser().parse_args(argv)
    assert stopped.value.code == 2
    assert "--" in capsys.readouterr().err


def test_they_go_with_telemetry_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--rounds", "3"])
    assert stopped.value.code == 2
    assert "--rounds and --leg-seconds go with --telemetry" in capsys.readouterr().err
