"""/autotag, one extension (bot.discord.exts.autotag): who may change it, what it needs, and the
lines it writes. The whole flow (stand-in, tiny CLIP, database) is in tests/e2e/test_autotag_e2e.py."""

from __future__ import annotations

import discord
import pytest
from discord import app_commands

from bot.autotag import Tag, TagLabel
from bot.discord.client import ClipBot
from bot.discord.exts.autotag import Autotag, missing_permissions, reply_line, shown
from bot.discord.failures import failure_for
from tests.discord.exts.conftest import make_interaction

GUILD = 31


@pytest.mark.parametrize("name", ["add", "remove", "list"])
async def test_every_autotag_command_needs_manage_server(clip_bot: ClipBot, name: str) -> None:
    cog = Autotag(clip_bot)
    command = cog.autotag.get_command(name)
    assert isinstance(command, app_commands.Command)
    member = make_interaction(clip_bot, guild_id=GUILD, manage_guild=False, command=command)
    with pytest.raises(app_commands.MissingPermissions) as refused:
        for check in command.checks:
            check(member)
    reply = failure_for(refused.value).reply(refused.value, member)
    assert reply == "Only members with Manage Server can change which channels tag their images."
    manager = make_interaction(clip_bot, guild_id=GUILD, manage_guild=True, command=command)
    assert all(check(manager) for check in command.checks)


def test_the_group_is_for_servers_and_hidden_from_members_without_manage_server(clip_bot: ClipBot) -> None:
    group = Autotag(clip_bot).autotag
    assert group.default_permissions == discord.Permissions(manage_guild=True)
    assert group.allowed_contexts is not None
    assert (group.allowed_contexts.guild, group.allowed_contexts.dm_channel) == (True, False)


def test_what_each_mode_needs() -> None:
    everything = discord.Permissions(view_channel=True, read_message_history=True, add_reactions=True)
    assert missing_permissions(everything, "react") == []
    assert missing_permissions(everything, "reply") == ["Send Messages"]
    nothing = discord.Permissions.none()
    assert missing_permissions(nothing, "react") == ["Read Message History", "Add Reactions"]


def test_the_reply_line_is_inert_and_says_the_probability() -> None:
    tag = Tag(TagLabel("**cat** @everyone <@123>"), 0.875)
    line = reply_line(tag, 1, 1)
    assert "**cat**" not in line and "@everyone" not in line and "<@123>" not in line
    assert line.endswith(" · 87.5%")
    assert reply_line(Tag(TagLabel("cat", "🐱"), 0.9), 2, 3).startswith("Image 2: 🐱 cat · ")


def test_labels_show_their_emoji_as_is_and_their_words_escaped() -> None:
    labels = [TagLabel("green_triangle", "<:tri:123456789012345678>"), TagLabel("*fox*")]
    assert shown(labels, 200) == r"<:tri:123456789012345678> green\_triangle, \*fox\*"
    assert len(shown(labels * 20, 50)) == 50
