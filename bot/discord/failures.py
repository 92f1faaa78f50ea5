"""One table for every failed request: exception type → metrics outcome → the user's one line.

`ClipBot.report_failure` reads it for both the reply and the `requests` counter, so
the two cannot drift apart. The first row whose type matches wins: subclasses first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import discord
from discord import app_commands

from bot.discord.replies import error_text
from bot.errors import BackendUnavailableError, BusyError, EngineError, RateLimitedError, UserFacingError

log = logging.getLogger(__name__)

#: What members without Manage Server cannot do, by the command (group) that asked.
MANAGERS_ONLY = {
    "index": "change which channels are indexed",
    "labels": "change this server's presets",
    "autotag": "change which channels tag their images",
}
#: Permission flags as Discord's client names them.
PERMISSION_NAMES = {"manage_guild": "Manage Server", "administrator": "Administrator"}

Reply = Callable[[BaseException, discord.Interaction], str]


def _own_line(cause: BaseException, interaction: discord.Interaction) -> str:
    """A `UserFacingError` carries its own line, safe to show."""
    return str(cause)


def _missing_permissions(cause: BaseException, interaction: discord.Interaction) -> str:
    assert isinstance(cause, app_commands.MissingPermissions)
    names = " and ".join(
        PERMISSION_NAMES.get(perm, perm.replace("_", " ").title()) for perm in cause.missing_permissions
    )
    command = interaction.command
    what = "use this command"
    if isinstance(command, app_commands.Command):
        what = MANAGERS_ONLY.get((command.root_parent or command).name, what)
    return f"Only members with {names} can {what}."


def _fixed(line: str) -> Reply:
    return lambda cause, interaction: line


@dataclass(frozen=True, slots=True)
class Failure:
    """How one kind of failure is counted, logged and answered."""

    kind: type[BaseException]
    #: The `outcome` label of the `requests` metric.
    outcome: str
    reply: Reply
    #: Logged as `log_text % command` at this level; None: the user's own mistake, not logged.
    log_level: int | None = None
    log_text: str = ""
    #: Log the traceback (of what the engine wrapped, for an `EngineError`).
    traceback: bool = False

    def log(self, cause: BaseException, command: str) -> None:
        if self.log_level is None:
            return
        exc_info = (cause.__cause__ or cause) if isinstance(cause, EngineError) else cause
        log.log(self.log_level, self.log_text, command, exc_info=exc_info if self.traceback else None)


FAILURES: tuple[Failure, ...] = (
    Failure(BackendUnavailableError, "unavailable", _own_line),
    Failure(BusyError, "busy", _own_line),
    Failure(RateLimitedError, "cooldown", _own_line),
    Failure(UserFacingError, "refused", _own_line),
    Failure(app_commands.MissingPermissions, "refused", _missing_permissions),
    Failure(
        TimeoutError,
        "timeout",
        _fixed("That took too long and was stopped. Please try again."),
        logging.WARNING,
        "/%s timed out (REQUEST_TIMEOUT_S)",
    ),
    Failure(
        EngineError,
        "engine_error",
        _fixed("Sorry, CLIP failed on my side. Please try again."),
        logging.ERROR,
        "CLIP failed for /%s",
        traceback=True,
    ),
    Failure(
        discord.HTTPException,
        "discord_error",
        _fixed("Sorry, Discord refused my reply. Please try again."),
        logging.ERROR,
        "Discord API error in /%s",
        traceback=True,
    ),
    Failure(
        BaseException,
        "error",
        _fixed("Sorry, something went wrong on my side. Please try again."),
        logging.ERROR,
        "Unexpected error in /%s",
        traceback=True,
    ),
)


def failure_for(cause: BaseException) -> Failure:
    """The first row of `FAILURES` that `cause` is an instance of (the last row takes anything)."""
    return next(row for row in FAILURES if isinstance(cause, row.kind))


async def reply_error(interaction: discord.Interaction, message: str) -> None:
    """One short line: ephemeral before the deferral, else it replaces the "thinking" message.

    After a deferral, Discord documents one way to answer: edit `@original` (a first
    follow-up would only edit it too, keeping its visibility; interactions,
    receiving-and-responding, "Create Followup Message"). Deleting it first and then
    sending a follow-up is undocumented and fails with 10008 Unknown Message.
    """
    text = error_text(message)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
        else:
            await interaction.edit_original_response(content=text, embed=None, attachments=[])
    except discord.HTTPException as exc:
        # e.g. the interaction token expired (15 minutes): nothing left to answer.
        log.warning("Could not deliver an error reply: %s", exc)
