"""The reconcile after READY (issue 23: 5): what belongs to a server the bot left, or to a
channel deleted, while it was offline is deleted when it comes back; nothing resumes on a re-invite.

The stand-in plays the downtime: the bot removed (READY lists no guild), or a channel deleted
with no client connected (the next GUILD_CREATE lacks it). What is stored is read from the
database and the vector database themselves.
"""

from __future__ import annotations

import logging

import pytest

from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.server import DEFAULT_OTHER_GUILD_ID
from tests.support.search import count, data_dir, index_channel, ready_index, search_bot, stored, until
from tests.support.shapes import shape_png

RECONCILE_LOG = "bot.discord.exts.search.reconcile"


async def _reconciled(caplog: pytest.LogCaptureFixture) -> str:
    await until(lambda: any(r.name == RECONCILE_LOG and "Reconciled" in r.message for r in caplog.records), 60)
    return next(r.message for r in caplog.records if r.name == RECONCILE_LOG and "Reconciled" in r.message)


async def test_a_server_that_removed_the_bot_while_it_was_offline_is_purged(
    guild: GuildFakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    fake = guild
    folder = data_dir()
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        await fake.post(fake.channel_id, images=[(shape_png("red circle", 1), "a.png")])
        await stored(cog, 1)
        presets = bot.services.presets
        await presets.save("guild", fake.guild_id, "team", ["cat", "dog"], by=fake.user_id)
        await presets.set_guild_defaults(fake.guild_id, template="a drawing of {}", preset="team")
        # A user install's server preset, in a server the bot never joined: the people there keep it.
        await presets.save("guild", DEFAULT_OTHER_GUILD_ID, "theirs", ["sun", "moon"], by=fake.user_id)
    fake.bot_in_guild = False  # removed while the bot was down: no GUILD_DELETE reaches it
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=RECONCILE_LOG):
        async with search_bot(fake, folder) as bot:
            line = await _reconciled(caplog)
            assert "1 servers left, 1 indexed channels, 1 images and 1 server presets deleted" in line
            presets = bot.services.presets
            assert await bot.services.index_channels.everywhere() == []
            assert await presets.get("guild", fake.guild_id, "team") is None
            assert await presets.guild_defaults(fake.guild_id) == (None, None)
            assert await presets.get("guild", DEFAULT_OTHER_GUILD_ID, "theirs") is not None
            assert bot.services.search.ready
            assert await bot.services.vectors.count(guild_id=fake.guild_id) == 0
    fake.bot_in_guild = True  # invited back: indexing does not resume by itself
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)
        assert cog.indexed == {} and await cog.channels.everywhere() == []


async def test_an_indexed_channel_deleted_while_the_bot_was_offline_is_purged(
    guild: GuildFakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    fake = guild
    folder = data_dir()
    second = fake.add_channel("photos")
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        await index_channel(fake, second)
        await fake.post(fake.channel_id, images=[(shape_png("red circle", 1), "a.png")])
        await fake.post(second, images=[(shape_png("blue square", 2), "b.png")])
        await stored(cog, 2)
    await fake.delete_channel(second, bot_offline=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=RECONCILE_LOG):
        async with search_bot(fake, folder) as bot:
            line = await _reconciled(caplog)
            assert "0 servers left, 1 indexed channels, 1 images" in line
            cog = await ready_index(bot)
            assert [entry.channel_id for entry in await cog.channels.everywhere()] == [fake.channel_id]
            assert await count(cog, channel_id=second) == 0
            assert await count(cog) == 1
            assert second not in cog.indexed
