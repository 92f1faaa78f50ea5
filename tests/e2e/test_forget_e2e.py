"""`/forget-me` and `/index forget-me` erase a person's images whether or not the image index
was open, or record a pending erasure that runs when it opens, and say which (issue 23: 3).

What is stored is read from the vector database and the database themselves.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakediscord.messages import GuildFakeDiscord
from tests.support.search import answered, count, data_dir, index_channel, ready_index, search_bot, stored
from tests.support.shapes import shape_png

OTHER = 555_000_222


async def _posted_by_two(fake: GuildFakeDiscord, folder: Path) -> None:
    """A first run: the channel indexed, one image by the tester and one by OTHER."""
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        await fake.post(fake.channel_id, images=[(shape_png("red circle", 1), "a.png")])
        await fake.post(fake.channel_id, images=[(shape_png("blue square", 2), "b.png")], author_id=OTHER)
        await stored(cog, 2)


async def test_forget_me_opens_the_index_on_a_shard_without_indexed_channels(guild: GuildFakeDiscord) -> None:
    """Shard 0 of 2 holds no indexed channel (the server is on shard 1), so it never opened the
    index; the person asks in a DM (DMs arrive on shard 0): their images are deleted all the same."""
    fake = guild
    folder = data_dir()
    await _posted_by_two(fake, folder)
    async with search_bot(fake, folder, shard_count=2, shard_ids=(0,), discord_guild_id=None) as bot:
        cog = await ready_index(bot)
        assert list(bot.guilds) == [] and not bot.services.search.ready  # nothing opened it
        rec = await fake.send_command("forget-me", context="dm", user_id=OTHER)
        line = (await answered(rec))["content"]
        assert "deleted from the image search index" in line and "cannot be reached" not in line
        assert await count(cog, author_id=OTHER) == 0
        assert await count(cog) == 1  # the tester's image stays
        assert await bot.services.search.erasures.pending() == []


async def test_an_unreachable_index_gets_a_pending_erasure_that_runs_when_it_opens(
    guild: GuildFakeDiscord, tmp_path: Path
) -> None:
    fake = guild
    folder = data_dir()
    await _posted_by_two(fake, folder)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the vector database's folder is a file: it cannot open
    async with search_bot(fake, folder, vector_db_url=str(blocker / "vectors.db")) as bot:
        await ready_index(bot)
        rec = await fake.send_command("index", {"forget-me": {}}, user_id=OTHER)
        line = (await answered(rec))["content"]
        assert "cannot be reached" in line and "recorded" in line and "deleted from" not in line
        rec = await fake.send_command("forget-me", user_id=OTHER)
        line = (await answered(rec))["content"]
        assert "cannot be reached" in line and "Done" not in line
        assert await bot.services.search.erasures.pending() == [OTHER]
    async with search_bot(fake, folder) as bot:  # the index is back
        cog = await ready_index(bot)
        assert bot.services.search.ready
        assert await count(cog, author_id=OTHER) == 0
        assert await count(cog) == 1
        assert await bot.services.search.erasures.pending() == []
