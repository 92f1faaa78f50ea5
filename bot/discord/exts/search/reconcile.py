"""After downtime: forget what belongs to servers the bot left and to channels deleted meanwhile.

Discord sends no GUILD_DELETE or CHANNEL_DELETE for what happened while the bot was
offline, so on each READY (per shard) the stored data of the servers this shard owns is
compared with what READY brought:

- a server the bot is known to have been in (it was seen there, or indexed a channel
  there) and is no longer in: its vectors, indexed channels, server presets and
  defaults are deleted, so being invited back starts from nothing (no indexing resumes);
- an indexed channel that no longer exists in a server the bot is in: its vectors and
  its row are deleted, with its threads';
- an indexed thread deleted meanwhile: READY's active threads lack it, and an archived
  thread is never in them, so each channel's threads are listed (as a backfill lists
  them) and an indexed thread missing there is asked of Discord (Get Channel): an Unknown
  Channel answer deletes its vectors and its row.

Server presets in a server the bot never joined (made through a user install) are kept:
people there use them, and a member with Manage Server can delete them (`/labels delete`).
A server that is only unavailable (an outage) is never purged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.discord.exts.search.threads import Indexable, threads_of
from bot.storage.index_threads import ThreadIndex

if TYPE_CHECKING:
    from bot.discord.client import ClipBot
    from bot.discord.exts.search.indexing import Indexing

log = logging.getLogger(__name__)


@dataclass
class Purged:
    guilds: int = 0
    channels: int = 0
    threads: int = 0
    vectors: int = 0
    presets: int = 0


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's sharding formula (docs: events/gateway.mdx, "Sharding")."""
    return (guild_id >> 22) % shard_count


class Reconcile(commands.Cog):
    """Runs `reconcile` in the background after each READY (never blocking the gateway)."""

    def __init__(self, bot: ClipBot, indexing: Indexing) -> None:
        self.bot = bot
        self.indexing = indexing
        self.search = bot.services.search
        self.channels = bot.services.index_channels
        self.presets = bot.services.presets
        self._tasks: set[asyncio.Task[Purged | None]] = set()

    def _start(self, shards: Collection[int] | None) -> None:
        task = asyncio.get_running_loop().create_task(self._run(shards), name="reconcile")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cog_unload(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        if not isinstance(self.bot, discord.AutoShardedClient):
            self._start(None)  # one connection: every server is this one's

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        self._start({shard_id})  # only sharded clients dispatch this

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.presets.joined([guild.id])

    async def _run(self, shards: Collection[int] | None) -> Purged | None:
        try:
            return await self.reconcile(shards)
        except Exception:
            log.exception("The reconcile after READY failed; it runs again on the next READY")
            return None

    def _owns(self, guild_id: int, shards: Collection[int] | None) -> bool:
        count = self.bot.shard_count
        return shards is None or not count or shard_of(guild_id, count) in shards

    async def reconcile(self, shards: Collection[int] | None) -> Purged:
        """Purge what belongs to the left servers and deleted channels of `shards` (None: all)."""
        present = {guild.id: guild for guild in self.bot.guilds if self._owns(guild.id, shards)}
        await self.presets.joined([gid for gid, guild in present.items() if not guild.unavailable])
        indexed = [entry for entry in await self.channels.everywhere() if self._owns(entry.guild_id, shards)]
        known = {gid for gid in await self.presets.joined_guilds() if self._owns(gid, shards)}
        left = (known | {entry.guild_id for entry in indexed}) - set(present)
        gone_channels = [
            entry.channel_id
            for entry in indexed
            if (guild := present.get(entry.guild_id)) is not None
            and not guild.unavailable
            and guild.get_channel(entry.channel_id) is None
        ]
        purged = Purged()
        if left or gone_channels:
            if any(entry.guild_id in left for entry in indexed) or gone_channels:
                # Vectors first: if the index cannot open, the rows stay and the next READY retries.
                await self.search.ensure_open()
            for guild_id in sorted(left):
                purged.vectors += await self.search.store.count(guild_id=guild_id) if self.search.ready else 0
                if self.search.ready:
                    await self.search.forget_guild(guild_id)
                purged.channels += await self.channels.remove_guild(guild_id)
                await self.indexing.places.forget_guild(guild_id)
                purged.presets += await self.presets.forget_guild(guild_id)
                purged.guilds += 1
            for channel_id in gone_channels:
                purged.vectors += await self.search.store.count(channel_id=channel_id)
                await self.search.forget_channel(channel_id)
                await self.indexing.forget_channel(channel_id)
                purged.channels += 1
        purged.threads = await self._gone_threads(present)
        where = "every shard" if shards is None else f"shard {', '.join(map(str, sorted(shards)))}"
        log.info(
            "Reconciled %s: %d servers left, %d indexed channels, %d images and %d server presets deleted; "
            "%d threads found deleted",
            where,
            purged.guilds,
            purged.channels,
            purged.vectors,
            purged.presets,
            purged.threads,
        )
        return purged

    async def _gone_threads(self, present: dict[int, discord.Guild]) -> int:
        """Forget the indexed threads of `present` servers that Discord says no longer exist.

        A channel's threads are listed as a backfill lists them (100 a request); only those
        missing from the listing are looked up one by one (a private thread the bot was removed
        from is not listed, yet still exists)."""
        by_parent: dict[int, list[ThreadIndex]] = defaultdict(list)
        for entry in await self.indexing.places.store.everywhere():
            guild = present.get(entry.guild_id)
            if guild is not None and not guild.unavailable and guild.get_thread(entry.thread_id) is None:
                by_parent[entry.parent_id].append(entry)
        gone = 0
        for parent_id, entries in by_parent.items():
            parent = present[entries[0].guild_id].get_channel(parent_id)
            listed: set[int] = set()
            if isinstance(parent, Indexable):
                with contextlib.suppress(discord.HTTPException):
                    listed = {thread.id async for thread in threads_of(parent)}
            for entry in entries:
                if entry.thread_id not in listed and await self._thread_gone(entry.thread_id):
                    await self.search.ensure_open()  # vectors first (as for channels above)
                    await self.indexing.forget_thread(entry.thread_id)
                    gone += 1
        return gone

    async def _thread_gone(self, thread_id: int) -> bool:
        try:
            await self.bot.fetch_channel(thread_id)
        except discord.NotFound:
            return True
        except discord.HTTPException as exc:  # no access now, or a failure: kept, asked again next READY
            log.info("Thread %s not checked: %s", thread_id, exc)
        return False
