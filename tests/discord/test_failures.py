"""The error table (bot.discord.failures): one row per kind of failure, for the reply and the metrics."""

from __future__ import annotations

from unittest.mock import MagicMock

import discord
import pytest
from discord import app_commands

from bot.discord.failures import failure_for
from bot.errors import BackendUnavailableError, BusyError, EngineError, ImageError, RateLimitedError


def interaction() -> discord.Interaction:
    found = MagicMock(spec=discord.Interaction)
    found.command = None
    return found  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("cause", "outcome", "reply"),
    [
        (BackendUnavailableError("No CLIP server answers; try again in a minute."), "unavailable", "No CLIP server"),
        (BusyError("I'm busy; try again shortly."), "busy", "I'm busy"),
        (ImageError("That file is not an image I can read."), "refused", "not an image I can read"),
        (RateLimitedError("Slow down a little: try again in 2.5 s."), "cooldown", "try again in 2.5 s"),
        (TimeoutError(), "timeout", "That took too long"),
        (EngineError("onnxruntime failed"), "engine_error", "CLIP failed on my side"),
        (RuntimeError("a bug"), "error", "something went wrong on my side"),
    ],
)
def test_each_failure_has_one_outcome_and_one_line(cause: BaseException, outcome: str, reply: str) -> None:
    failure = failure_for(cause)
    assert failure.outcome == outcome
    line = failure.reply(cause, interaction())
    assert reply in line and "\n" not in line


def test_internal_details_never_reach_the_user() -> None:
    cause = RuntimeError("secret path /srv/token.txt")
    assert "secret" not in failure_for(cause).reply(cause, interaction())


def test_a_missing_permission_outside_a_known_command_still_names_it() -> None:
    cause = app_commands.MissingPermissions(["manage_guild"])
    assert failure_for(cause).reply(cause, interaction()) == "Only members with Manage Server can use this command."
