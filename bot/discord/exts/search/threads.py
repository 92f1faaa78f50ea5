"""Threads and forum posts in the image index: which are indexed, their backfills, who may see them.

A thread's images are stored with the thread's id as their channel id; `ThreadPlaces`
remembers (in the database and in memory) each indexed thread's parent channel and
whether it is private. Per Discord's docs (topics/threads.mdx "Permissions"), a thread
inherits its parent's permissions, and a private thread is visible only to its members
and to moderators (Manage Threads): `visible_threads` applies both at query time, asking
Discord whether the member is in each private thread (Get Thread Member, which needs no
privileged intent, unlike listing a thread's members).

A channel's backfill walks its own history, then its threads': the active ones (List
Active Guild Threads), the archived public ones, and the archived private ones (all of
them with Manage Threads, else those the bot joined), each with its own checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

import discord

from bot.discord.exts.search.backfill import Indexer, Progress, indexed_images
from bot.storage.index_threads import IndexThreads, ThreadIndex

log = logging.getLogger(__name__)

#: Channels `/index add` accepts: text and announcement channels, forum and media channels.
Indexable = discord.TextChannel | discord.ForumChannel
#: Private threads whose membership one /search asks Discord about, at most (the newest first).
MEMBERSHIP_CHECKS = 50
PAGE = 100


class ThreadPlaces:
    """The indexed threads: rows in the database, and a map in memory the listeners read."""

    def __init__(self, store: IndexThreads) -> None:
        self.store = store
        #: Thread id -> its entry (parent, guild, private).
        self.known: dict[int, ThreadIndex] = {}

    async def load(self, guild_id: int) -> None:
        for entry in await self.store.guild(guild_id):
            self.known[entry.thread_id] = entry

    async def add(self, thread: discord.Thread, *, backfill: bool) -> ThreadIndex:
        entry = await self.store.add(
            thread.id, thread.parent_id, thread.guild.id, private=thread.is_private(), backfill=backfill
        )
        self.known[thread.id] = entry
        return entry

    def of_parent(self, parent_id: int) -> list[int]:
        return [tid for tid, entry in self.known.items() if entry.parent_id == parent_id]

    async def forget(self, thread_id: int) -> None:
        self.known.pop(thread_id, None)
        await self.store.remove(thread_id)

    async def forget_parent(self, parent_id: int) -> list[int]:
        """Forget a channel's threads; their ids (known in memory or in the database)."""
        ids = set(self.of_parent(parent_id)) | set(await self.store.remove_parent(parent_id))
        for thread_id in ids:
            self.known.pop(thread_id, None)
        return sorted(ids)

    async def forget_guild(self, guild_id: int) -> None:
        for thread_id in [t for t, e in self.known.items() if e.guild_id == guild_id]:
            del self.known[thread_id]
        await self.store.remove_guild(guild_id)


async def thread_of(bot: discord.Client, channel: object, guild: discord.Guild | None) -> discord.Thread | None:
    """The thread a message was posted in, or None for a channel. An uncached thread (archived,
    or not synced yet) arrives as a `PartialMessageable`: it is fetched to learn its parent."""
    if isinstance(channel, discord.Thread):
        return channel
    if guild is None or not isinstance(channel, discord.PartialMessageable):
        return None
    try:
        fetched = await bot.fetch_channel(channel.id)
    except discord.HTTPException as exc:
        log.info("Channel %s of a message could not be looked up: %s", channel.id, exc)
        return None
    return fetched if isinstance(fetched, discord.Thread) else None


async def threads_of(channel: Indexable) -> AsyncIterator[discord.Thread]:
    """Every thread of `channel` the bot may list (active and archived; see the module doc)."""
    seen: set[int] = set()
    for thread in await channel.guild.active_threads():
        if thread.parent_id == channel.id:
            seen.add(thread.id)
            yield thread
    me = channel.guild.me
    permissions = channel.permissions_for(me)
    if not permissions.read_message_history:
        return
    listings = [channel.archived_threads(limit=None)]
    if isinstance(channel, discord.TextChannel):
        # docs: resources/channel.mdx "List Private Archived Threads" needs Manage Threads too;
        # "List Joined Private Archived Threads" only Read Message History.
        private = channel.archived_threads(private=True, limit=None)
        joined = channel.archived_threads(private=True, joined=True, limit=None)
        listings.append(private if permissions.manage_threads else joined)
    for listing in listings:
        async for thread in listing:
            if thread.id not in seen:
                seen.add(thread.id)
                yield thread


async def backfill_thread(
    indexer: Indexer, places: ThreadPlaces, thread: discord.Thread, entry: ThreadIndex, progress: Progress
) -> None:
    """Walk a thread's history from its checkpoint (as a channel's backfill does)."""
    cursor, scanned, indexed = entry.cursor, entry.scanned, entry.indexed
    while True:
        before = discord.Object(id=cursor) if cursor else None
        page = [message async for message in thread.history(limit=PAGE, before=before)]
        if page:
            stored = await indexer.index([image for message in page for image in indexed_images(message)])
            await indexer.search.store.flush()
            cursor = page[-1].id
            scanned += len(page)
            indexed += stored
            progress.scanned += len(page)
            progress.indexed += stored
            progress.run_indexed += stored
        done = len(page) < PAGE
        await places.store.checkpoint(thread.id, cursor=cursor, scanned=scanned, indexed=indexed, done=done)
        if done:
            return


async def backfill_threads(indexer: Indexer, places: ThreadPlaces, channel: Indexable, progress: Progress) -> int:
    """Find `channel`'s threads, then backfill each not done yet; how many threads it walked."""
    walked = 0
    async for thread in threads_of(channel):
        entry = await places.add(thread, backfill=True)
        if entry.backfill != "running":
            continue
        try:
            await backfill_thread(indexer, places, thread, entry, progress)
        except discord.Forbidden as exc:  # e.g. a private thread the bot was removed from meanwhile
            log.info("Thread %s not backfilled: %s", thread.id, exc)
            continue
        walked += 1
    return walked


async def visible_threads(
    bot: discord.Client, guild: discord.Guild, member: discord.Member, entries: Iterable[ThreadIndex]
) -> list[int]:
    """The threads among `entries` that `member` can see now (module doc): parent viewable and
    readable, and for a private thread, Manage Threads there or membership (asked of Discord)."""
    visible: list[int] = []
    to_ask: list[int] = []
    for entry in entries:
        parent = guild.get_channel(entry.parent_id)
        if parent is None or entry.guild_id != guild.id:
            continue
        permissions = parent.permissions_for(member)
        if not (permissions.view_channel and permissions.read_message_history):
            continue
        if not entry.private or permissions.manage_threads:
            visible.append(entry.thread_id)
        else:
            to_ask.append(entry.thread_id)
    to_ask = sorted(to_ask, reverse=True)[:MEMBERSHIP_CHECKS]
    answers = await asyncio.gather(*(is_member(bot, thread_id, member.id) for thread_id in to_ask))
    return visible + [thread_id for thread_id, yes in zip(to_ask, answers, strict=True) if yes]


async def is_member(bot: discord.Client, thread_id: int, user_id: int) -> bool:
    """docs: resources/channel.mdx "Get Thread Member": a thread member object, or 404 if not one."""
    try:
        await bot.http.get_thread_member(thread_id, user_id)
    except discord.NotFound:
        return False
    except discord.HTTPException as exc:  # unsure: not shown
        log.info("Membership of thread %s not checked: %s", thread_id, exc)
        return False
    return True
