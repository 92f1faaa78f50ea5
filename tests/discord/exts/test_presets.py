"""`/labels` and `/forget-me` (bot.discord.exts.presets), against a real SQLite database."""

from __future__ import annotations

import pytest
from discord import app_commands

from bot.discord.client import ClipBot
from bot.discord.exts.presets import PresetCommands
from bot.discord.failures import failure_for
from bot.errors import LabelError
from tests.discord.exts.conftest import make_interaction

GUILD = 4242


def command(cog: PresetCommands, name: str) -> app_commands.Command:  # type: ignore[type-arg]
    found = cog.labels.get_command(name)
    assert isinstance(found, app_commands.Command)
    return found


async def test_a_saved_personal_preset_is_listed_and_shown(clip_bot: ClipBot) -> None:
    cog = PresetCommands(clip_bot)
    save = make_interaction(clip_bot, user_id=7)
    await command(cog, "save").callback(cog, save, "animals", "cat, dog, fox")
    assert "Saved personal preset `@animals` with 3 labels" in save.response.send_message.await_args.args[0]
    listing = make_interaction(clip_bot, user_id=7)
    await command(cog, "list").callback(cog, listing)
    embed = listing.response.send_message.await_args.kwargs["embed"]
    assert "`@animals` · 3 labels" in embed.fields[0].value
    assert listing.response.send_message.await_args.kwargs["ephemeral"] is True


async def test_a_member_without_manage_server_cannot_save_a_server_preset(clip_bot: ClipBot) -> None:
    cog = PresetCommands(clip_bot)
    save = command(cog, "save")
    interaction = make_interaction(clip_bot, guild_id=GUILD, manage_guild=False, command=save)
    with pytest.raises(app_commands.MissingPermissions) as refused:
        await save.callback(cog, interaction, "team", "cat, dog", "server")
    reply = failure_for(refused.value).reply(refused.value, interaction)
    assert reply == "Only members with Manage Server can change this server's presets."
    assert await clip_bot.presets.get("guild", GUILD, "team") is None, "nothing was saved"


async def test_a_server_manager_saves_a_server_preset_everyone_there_can_use(clip_bot: ClipBot) -> None:
    cog = PresetCommands(clip_bot)
    manager = make_interaction(clip_bot, user_id=8, guild_id=GUILD, manage_guild=True)
    await command(cog, "save").callback(cog, manager, "shapes", "circle, square", "server")
    preset = await clip_bot.presets.resolve("shapes", 9, GUILD)
    assert preset is not None and preset.scope == "guild" and preset.labels == ["circle", "square"]


async def test_server_presets_are_refused_in_dms(clip_bot: ClipBot) -> None:
    cog = PresetCommands(clip_bot)
    interaction = make_interaction(clip_bot, guild_id=None, manage_guild=True)
    with pytest.raises(LabelError, match="Server presets exist only in a server"):
        await command(cog, "save").callback(cog, interaction, "x", "a, b", "server")


async def test_forget_me_deletes_presets_and_recent_label_sets(clip_bot: ClipBot) -> None:
    cog = PresetCommands(clip_bot)
    await clip_bot.presets.save("user", 11, "mine", ["a", "b"], by=11)
    clip_bot.presets.remember(11, None, ["a", "b"])
    interaction = make_interaction(clip_bot, user_id=11)
    await cog.forget_me.callback(cog, interaction)
    interaction.response.defer.assert_awaited_once()  # the image index may have to open first
    line = interaction.edit_original_response.await_args.kwargs["content"]
    assert "Deleted 1 presets, 1 recent label sets" in line
    assert await clip_bot.presets.owned("user", 11) == [] and await clip_bot.presets.recent(11, None) == []
