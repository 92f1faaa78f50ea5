"""Settings: env parsing, and `.env.example` documents every setting with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def example_lines() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", EXAMPLE.read_text(), flags=re.M)
    return dict(pairs)


def test_env_example_lists_every_setting_once() -> None:
    documented = example_lines()
    fields = {name.upper() for name in Settings.model_fields}
    assert set(documented) == fields
    text = EXAMPLE.read_text()
    for name in fields:
        line_index = text.splitlines().index(next(line for line in text.splitlines() if line.startswith(f"{name}=")))
        assert text.splitlines()[line_index - 1].startswith("#"), f"{name} needs a one-line comment"


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    from_example = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


def test_env_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLIP_EXECUTION_PROVIDERS", "CPUExecutionProvider")
    monkeypatch.setenv("DISCORD_GUILD_ID", "1234")
    monkeypatch.setenv("CLIP_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token")
    settings = Settings()
    assert settings.clip_execution_providers == ("CPUExecutionProvider",)
    assert settings.discord_guild_id == 1234
    assert settings.model_label == f"local:{tmp_path.name}"
    assert "secret-token" not in repr(settings)
    assert settings.secrets() == ["secret-token"]


def test_invalid_setting_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAX_LABELS", "0")
    with pytest.raises(ValidationError):
        Settings()
