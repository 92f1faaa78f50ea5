"""A real `ClipBot` (not logged in) around the session's loaded tiny CLIP, and interactions
spec'd on discord.py's own classes, for focused tests of one extension at a time.

The bot's commands are called as discord.py calls them (`command.callback(cog, interaction,
...)`); whatever the extension sends goes to the spec'd interaction, where the test reads it.
End-to-end behaviour through the Discord stand-in is in `tests/e2e/`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import MagicMock

import discord
import pytest_asyncio

from bot.discord.client import ClipBot
from bot.engine import ClipEngine
from tests.support.settings import make_settings


@pytest_asyncio.fixture(loop_scope="session")
async def clip_bot(engine: ClipEngine) -> AsyncIterator[ClipBot]:
    """The production bot class with its own database (SQLite) and the shared engine."""
    bot = ClipBot(make_settings(), engine=engine)
    await bot.services.start()
    yield bot
    await bot.close()


def make_interaction(
    bot: ClipBot,
    *,
    user_id: int = 1001,
    guild_id: int | None = None,
    manage_guild: bool = False,
    command: Any = None,
) -> Any:
    """An interaction as discord.py hands it to a command (attributes checked against its class)."""
    interaction = MagicMock(spec=discord.Interaction)
    interaction.client = bot
    interaction.user = MagicMock(spec=discord.Member if guild_id else discord.User)
    interaction.user.id = user_id
    interaction.guild_id = guild_id
    interaction.permissions = discord.Permissions(manage_guild=manage_guild)
    interaction.command = command
    interaction.response = MagicMock(spec=discord.InteractionResponse)
    interaction.response.is_done.return_value = False
    return interaction


def make_attachment(filename: str, content_type: str | None, size: int = 1000, attachment_id: int = 77) -> Any:
    attachment = MagicMock(spec=discord.Attachment)
    attachment.filename = filename
    attachment.content_type = content_type
    attachment.size = size
    attachment.id = attachment_id
    attachment.url = f"https://cdn.discordapp.com/attachments/1/{attachment_id}/{filename}"
    return attachment


def make_message(
    attachments: list[Any] = (),  # type: ignore[assignment]
    embeds: list[discord.Embed] = (),  # type: ignore[assignment]
    *,
    guild_id: int | None = None,
    channel_id: int = 500,
    message_id: int = 900,
    author_id: int = 1001,
) -> Any:
    message = MagicMock(spec=discord.Message)
    message.attachments = list(attachments)
    message.embeds = list(embeds)
    message.id = message_id
    message.jump_url = f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"
    message.created_at = discord.utils.snowflake_time(message_id << 22)
    message.channel = MagicMock(spec=discord.TextChannel)
    message.channel.id = channel_id
    message.author = MagicMock(spec=discord.Member)
    message.author.id = author_id
    if guild_id is None:
        message.guild = None
    else:
        message.guild = MagicMock(spec=discord.Guild)
        message.guild.id = guild_id
    return message


def last_edit(interaction: Any) -> dict[str, Any]:
    """The keyword arguments of the interaction's last `edit_original_response` (its final answer)."""
    return dict(interaction.edit_original_response.await_args.kwargs)
