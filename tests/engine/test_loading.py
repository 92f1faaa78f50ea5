"""`bot.engine.loading`: what the process tells Roboflow Inference before importing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.loading import OFFLINE_LATCH_ENV, latch_offline_mode


@pytest.mark.parametrize(
    ("env", "dotenv", "latched"),
    [
        ({"OFFLINE_MODE": "True", OFFLINE_LATCH_ENV: "False"}, None, "True"),  # an inherited latch loses
        ({"OFFLINE_MODE": "false", OFFLINE_LATCH_ENV: "True"}, None, "False"),
        ({}, "OFFLINE_MODE=true\n", "True"),  # the project's .env, as inference reads it
        ({"OFFLINE_MODE": "False"}, "OFFLINE_MODE=true\n", "False"),  # the variable first
        ({OFFLINE_LATCH_ENV: "True"}, None, "False"),  # nothing asked: online
        ({"OFFLINE_MODE": "maybe", OFFLINE_LATCH_ENV: "False"}, None, None),  # inference refuses it itself
    ],
)
def test_the_offline_decision_is_this_process_own(
    env: dict[str, str], dotenv: str | None, latched: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    latch_offline_mode(env)
    assert env.get(OFFLINE_LATCH_ENV) == latched
