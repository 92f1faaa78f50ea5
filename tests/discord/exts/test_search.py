"""Image search, one extension (bot.discord.exts.search: indexing, backfill, queries).

The full flow (Milvus Lite, backfills, deletions, results) runs through the Discord
stand-in in `tests/e2e/test_search_e2e.py`; these check each part's own rules.
"""

from __future__ import annotations

import time
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import numpy as np
import pytest
from discord import app_commands

from bot.discord.client import ClipBot
from bot.discord.exts.search.backfill import Progress, indexed_images
from bot.discord.exts.search.gallery import results_view
from bot.discord.exts.search.indexing import Indexing
from bot.discord.exts.search.queries import Search
from bot.discord.exts.search.reposts import RepostAlerts, alert_line
from bot.discord.failures import failure_for
from bot.errors import UserFacingError
from bot.storage.vectors import Hit, ImageRef
from tests.discord.exts.conftest import make_attachment, make_interaction, make_message

GUILD = 31


@pytest.mark.parametrize("name", ["add", "remove", "rebuild", "repost"])
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


def test_results_arrive_as_one_gallery_with_a_line_per_result_and_the_query_escaped() -> None:
    shown = []
    for rank in range(1, 11):
        photo = make_attachment(f"{rank}.png", "image/png", attachment_id=5000 + rank)
        message = make_message([photo], guild_id=GUILD, channel_id=600, message_id=700 + rank, author_id=800)
        ref = ImageRef(GUILD, 600, 700 + rank, 800, 5000 + rank, 1_700_000_000)
        shown.append((Hit(ref, 1 - rank / 100), message))
    payload = results_view(shown, "@everyone *cats* <@123>", 0.25).to_components()
    [container] = payload
    assert container["type"] == 17
    kinds = [child["type"] for child in container["components"]]
    assert kinds == [10, 12, 14, 10]  # heading, gallery, separator, the results
    heading, gallery, _, lines = container["components"]
    assert [item["media"]["url"] for item in gallery["items"]] == [m.attachments[0].url for _, m in shown]
    assert "@\u200beveryone" in heading["content"] and "\\*cats\\*" in heading["content"]
    assert "<@123>" not in heading["content"]  # defused: a typed mention never renders
    rows = lines["content"].splitlines()
    assert rows[0] == (
        "` 1.` score **0.990** · <#600> · <@800> · <t:1700000000:d> · "
        f"[Jump to the message](https://discord.com/channels/{GUILD}/600/701)"
    )
    assert len([row for row in rows if "Jump to the message" in row]) == 10


def test_a_repost_alert_links_the_earlier_message_with_its_similarity() -> None:
    hit = Hit(ImageRef(GUILD, 600, 701, 800, 5001, 0), 0.99712)
    line = alert_line(hit)
    assert f"https://discord.com/channels/{GUILD}/600/701" in line and "(similarity 0.997)" in line
    assert "<@" not in line


async def test_a_repost_alert_needs_the_threshold_an_earlier_message_and_pings_nobody(clip_bot: ClipBot) -> None:
    alerts = RepostAlerts(clip_bot, clip_bot.services.search)
    message = make_message(guild_id=GUILD, channel_id=600, message_id=900)
    message.channel = MagicMock(spec=discord.TextChannel)
    message.channel.id = 600
    message.reply = AsyncMock()
    alerts.channels.add(600)
    alerts.linkable_channels = AsyncMock(return_value=[600])  # type: ignore[method-assign]
    threshold = clip_bot.settings.repost_threshold
    stored = [(ImageRef(GUILD, 600, 900, 800, 1, 0), np.zeros(4, dtype=np.float32))]

    def found(*hits: tuple[int, float]) -> None:
        results = [Hit(ImageRef(GUILD, 600, mid, 800, 2, 0), score) for mid, score in hits]
        clip_bot.services.search.search = AsyncMock(return_value=results)  # type: ignore[method-assign]

    found((900, 1.0), (850, threshold - 0.001))  # itself first; the earlier one just below
    assert await alerts.check(message, stored) is None and not message.reply.await_count
    found((950, 1.0), (850, threshold))  # a newer message does not count; the earlier one is at it
    hit = await alerts.check(message, stored)
    assert hit is not None and hit.ref.message_id == 850
    kwargs = message.reply.await_args.kwargs
    assert kwargs["mention_author"] is False and kwargs["allowed_mentions"].to_dict() == {"parse": []}
    assert "/600/850" in message.reply.await_args.args[0]
    alerts.channels.discard(600)
    assert await alerts.check(message, stored) is None  # alerts off there


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
