"""The example systemd unit agrees with the exit codes `python -m bot run` uses."""

from __future__ import annotations

from bot.cli import EXIT_CONFIG
from tests.support.paths import REPO

UNIT = REPO / "deploy" / "clipbot.service"


def unit_settings() -> dict[str, list[str]]:
    """`Key=value` lines of the unit (a key may repeat, as systemd allows)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_restarts_crashes_with_backoff_but_not_configuration_errors() -> None:
    unit = unit_settings()
    assert unit["Restart"] == ["on-failure"]  # 1 restarts; 0 (a clean stop) does not
    assert str(EXIT_CONFIG) in " ".join(unit["RestartPreventExitStatus"]).split()
    assert unit["RestartSec"] and unit["RestartMaxDelaySec"] and unit["RestartSteps"]
    assert unit["ExecStart"][0].endswith("python -m bot run"), "the bot itself, not the installing script"
    assert unit["KillSignal"] == ["SIGTERM"]


def test_the_exit_code_for_configuration_errors_is_ex_config() -> None:
    assert EXIT_CONFIG == 78  # sysexits.h; the README, the unit and compose files rely on it
