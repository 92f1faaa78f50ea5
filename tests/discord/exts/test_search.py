"""Image search, one extension (bot.discord.exts.search: indexing, backfill, queries).

The full flow (Milvus Lite, backfills, deletions, results) runs through the Discord
stand-in in `tests/e2e/test_search_e2e.py`; these check each part's own rules.
"""

from __future__ import annotations

import time
from typing import Any
from unittest.mock import MagicMock

import discord
import pytest
from discord import app_commands

from bot.discord.client import ClipBot
from bot.discord.exts.search.backfill import Progress, indexed_images
from bot.discord.exts.search.indexing import Indexing
from bot.discord.exts.search.queries import Search
from bot.discord.failures import failure_for
from bot.errors import UserFacingError
from tests.discord.exts.conftest import make_attachment, make_interaction, make_message

GUILD = 31


@pytest.mark.parametrize("name", ["add", "remove", "rebuild"])
async def test_changing_the_index_needs_manage_server(clip_bot: ClipBot, name: str) -> None:
    cog = Indexing(clip_bot)
    command = cog.index.get_command(name)
    assert isinstance(command, app_commands.Command)
    member = make_interaction(clip_bot, guild_id=GUILD, manage_guild=False, command=command)
    with pytest.raises(app_commands.MissingPermissions) as refused:
        for check in command.checks:
            check(member)
    reply = failure_for(refused.value).reply(refused.value, member)
    assert reply == "Only members with Manage Server can change which channels are indexed."
    assert failure_for(refused.value).outcome == "refused"
    manager = make_interaction(clip_bot, guild_id=GUILD, manage_guild=True, command=command)
    assert all(check(manager) for check in command.checks)


def test_status_and_forget_me_are_open_to_every_member(clip_bot: ClipBot) -> None:
    cog = Indexing(clip_bot)
    for name in ("status", "forget-me"):
        command = cog.index.get_command(name)
        assert isinstance(command, app_commands.Command) and command.checks == []


def test_each_image_of_a_server_message_is_stored_under_its_own_key() -> None:
    photo = make_attachment("photo.png", "image/png", attachment_id=555)
    embed = discord.Embed.from_dict({"type": "image", "thumbnail": {"url": "x", "proxy_url": "https://media/p.png"}})
    message = make_message([photo], [embed], guild_id=GUILD, channel_id=600, message_id=700, author_id=800)
    images = indexed_images(message)
    assert [image.ref.key for image in images] == ["700:a555", "700:e0"]
    assert {(image.ref.guild_id, image.ref.channel_id, image.ref.author_id) for image in images} == {(GUILD, 600, 800)}
    assert indexed_images(make_message([photo], guild_id=None)) == [], "DMs are never indexed"


def channel_allowing(channel_id: int, **permissions: bool) -> Any:
    channel = MagicMock(spec=discord.TextChannel)
    channel.id = channel_id
    channel.permissions_for.return_value = discord.Permissions(**permissions)
    return channel


async def test_search_covers_only_indexed_channels_the_member_can_read_now(clip_bot: ClipBot) -> None:
    cog = Search(clip_bot)
    readable = channel_allowing(1, view_channel=True, read_message_history=True)
    hidden = channel_allowing(2, view_channel=False, read_message_history=True)
    no_history = channel_allowing(3, view_channel=True, read_message_history=False)
    guild = MagicMock(spec=discord.Guild)
    guild.id = GUILD
    guild.get_channel.side_effect = {1: readable, 2: hidden, 3: no_history}.get
    clip_bot.services.search.indexed.update({1: GUILD, 2: GUILD, 3: GUILD, 4: GUILD + 1})
    clip_bot.get_guild = lambda guild_id: guild if guild_id == GUILD else None  # type: ignore[method-assign]
    interaction = make_interaction(clip_bot, guild_id=GUILD)
    assert cog.viewable_channels(interaction) == (guild, [1])
    elsewhere = make_interaction(clip_bot, guild_id=GUILD + 5)
    with pytest.raises(UserFacingError, match="servers the bot has joined"):
        cog.viewable_channels(elsewhere)


def test_backfill_progress_reads_as_one_line() -> None:
    progress = Progress(scanned=200, indexed=12, started_s=time.monotonic(), run_indexed=0)
    head = "12 images indexed of 200 messages scanned"
    assert progress.line("#art").startswith(f"⏳ Indexing #art: {head} · 0.0 images/s · estimating time left")
    assert progress.line("#art", done=True).startswith(f"✅ Done #art: {head}")


# --- threads and forum posts (bot.discord.exts.search.threads) ----------------------------


def test_index_add_and_remove_offer_text_announcement_forum_and_media_channels(clip_bot: ClipBot) -> None:
    cog = Indexing(clip_bot)
    wanted = {
        discord.ChannelType.text,
        discord.ChannelType.news,
        discord.ChannelType.forum,
        discord.ChannelType.media,
    }
    for name in ("add", "remove"):
        command = cog.index.get_command(name)
        assert isinstance(command, app_commands.Command)
        assert set(command._params["channel"].channel_types) == wanted


async def test_a_thread_is_visible_through_its_parent_and_a_private_one_to_members_and_moderators() -> None:
    from bot.discord.exts.search.threads import visible_threads
    from bot.storage.index_threads import ThreadIndex

    readable = channel_allowing(1, view_channel=True, read_message_history=True)
    moderated = channel_allowing(2, view_channel=True, read_message_history=True, manage_threads=True)
    hidden = channel_allowing(3, view_channel=False, read_message_history=True)
    guild = MagicMock(spec=discord.Guild)
    guild.id = GUILD
    guild.get_channel.side_effect = {1: readable, 2: moderated, 3: hidden}.get
    member = MagicMock(spec=discord.Member)
    member.id = 99

    def thread(thread_id: int, parent: int, private: bool) -> ThreadIndex:
        return ThreadIndex(thread_id, parent, GUILD, private, "done")

    asked: list[int] = []

    async def get_thread_member(thread_id: int, user_id: int) -> dict[str, str]:
        asked.append(thread_id)
        if thread_id != 12:  # the member is only in thread 12
            raise discord.NotFound(MagicMock(status=404), "Unknown Member")
        return {"id": str(thread_id), "user_id": str(user_id)}

    bot = MagicMock()  # only its `http` is used
    bot.http.get_thread_member = get_thread_member
    entries = [
        thread(10, 1, False),  # public, parent readable
        thread(11, 1, True),  # private, not a member
        thread(12, 1, True),  # private, a member
        thread(20, 2, True),  # private, but Manage Threads in the parent: no need to ask
        thread(30, 3, False),  # public, parent hidden
        ThreadIndex(40, 1, GUILD + 1, False, "done"),  # another server's
    ]
    assert sorted(await visible_threads(bot, guild, member, entries)) == [10, 12, 20]
    assert sorted(asked) == [11, 12]  # only private threads the member does not moderate
