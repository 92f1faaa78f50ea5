"""Indexing a message's images, and a channel's history backfill with live progress.

A backfill walks the channel from its newest message back (discord.py's `history`,
100 messages a request; discord.py waits out 429s), embeds the page's images a few
at a time (`BACKFILL_CONCURRENCY`; each waits behind interactive requests in the
engine), stores them, then writes a checkpoint, so a restart continues after the
last page stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
import numpy as np

from bot.discord.interactions import MessageImage, check_size, download, message_images
from bot.errors import UserFacingError
from bot.search import IndexWorkDropped
from bot.storage.index_settings import ChannelIndex
from bot.storage.vectors import ImageRef

if TYPE_CHECKING:
    from bot.discord.client import ClipBot
    from bot.search import SearchService
    from bot.storage.index_settings import IndexSettings

log = logging.getLogger(__name__)

PAGE = 100
#: Interaction tokens last 15 minutes; progress edits stop a little before.
PROGRESS_FOR_S = 14 * 60


@dataclass(frozen=True, slots=True)
class IndexedImage:
    """One image of a message, with the ids it is stored under."""

    ref: ImageRef
    image: MessageImage

    @property
    def url(self) -> str:
        return self.image.url

    @property
    def size(self) -> int | None:
        return self.image.size


def indexed_images(message: discord.Message) -> list[IndexedImage]:
    """The images of a server message (`message_images`), each with its index ids; none in DMs."""
    if message.guild is None:
        return []
    posted = int(message.created_at.timestamp())
    return [
        IndexedImage(
            ImageRef(
                guild_id=message.guild.id,
                channel_id=message.channel.id,
                message_id=message.id,
                author_id=message.author.id,
                attachment_id=image.attachment_id,
                posted_at=posted,
                embed_index=image.embed_index,
            ),
            image,
        )
        for image in message_images(message)
    ]


class Indexer:
    """Fetches and embeds images for the index (background work) and stores them."""

    def __init__(self, bot: ClipBot, search: SearchService) -> None:
        self.bot = bot
        self.search = search

    async def embed(self, image: IndexedImage, live: bool = False) -> tuple[ImageRef, np.ndarray] | None:
        """One image's vector, or None (logged) if it cannot be fetched or decoded; `live`: a new
        message's image, dropped if too many wait (`SearchService.queue`)."""
        try:
            async with self.search.queue.slot(droppable=live):
                try:
                    check_size(image.size, self.bot.settings.max_image_bytes)
                    data = await download(self.bot, image.url)
                    return image.ref, await self.search.embed_for_index(data)
                except UserFacingError as exc:
                    log.info("Not indexed: image %s (%s)", image.ref.key, exc)
                    return None
        except IndexWorkDropped:
            log.info("Not indexed: image %s (too many new images waiting to be indexed)", image.ref.key)
            return None

    async def index(self, images: list[IndexedImage], live: bool = False) -> int:
        """Embed and store `images`; how many were stored (`live`: see `embed`)."""
        return len(await self.index_vectors(images, live))

    async def index_vectors(self, images: list[IndexedImage], live: bool = False) -> list[tuple[ImageRef, np.ndarray]]:
        """Embed and store `images`: the ones embedded, with their vectors, if any was stored."""
        done = [result for result in await asyncio.gather(*(self.embed(i, live) for i in images)) if result]
        stored = await self.search.store_images([ref for ref, _ in done], [vec for _, vec in done])
        return done if stored else []


@dataclass(slots=True)
class Progress:
    scanned: int
    indexed: int
    started_s: float
    #: Images indexed by this run (for its rate; `indexed` counts earlier runs too).
    run_indexed: int = 0
    fraction: float = 0.0
    fraction_at_start: float = 0.0

    def line(self, channel: str, done: bool = False) -> str:
        elapsed = max(time.monotonic() - self.started_s, 1e-6)
        rate = self.run_indexed / elapsed
        verb = "Done" if done else "Indexing"
        head = f"{verb} {channel}: {self.indexed} images indexed of {self.scanned} messages scanned"
        if done:
            return f"✅ {head} ({rate:.1f} images/s)."
        covered = self.fraction - self.fraction_at_start
        if covered > 0.001:
            left = elapsed * (1 - self.fraction) / covered
            eta = f"about {_duration(left)} left"
        else:
            eta = "estimating time left"
        return f"⏳ {head} · {rate:.1f} images/s · {eta}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def time_fraction(channel: discord.abc.Snowflake, started_from: int | None, cursor: int | None) -> float:
    """How much of the channel's lifetime the backfill has walked back through (for the estimate).

    Messages are spread over time unevenly, so this is an estimate; Discord gives no
    message count for a text channel.
    """
    if started_from is None or cursor is None:
        return 0.0
    born = discord.utils.snowflake_time(channel.id).timestamp()
    start = discord.utils.snowflake_time(started_from).timestamp()
    now = discord.utils.snowflake_time(cursor).timestamp()
    return min(max((start - now) / max(start - born, 1e-6), 0.0), 1.0)


def start_progress(channel: discord.abc.Snowflake, entry: ChannelIndex) -> Progress:
    progress = Progress(entry.scanned, entry.indexed, time.monotonic())
    progress.fraction = progress.fraction_at_start = time_fraction(channel, entry.started_from, entry.cursor)
    return progress


async def report_every(seconds: float, progress: Progress, name: str, report: Callable[[str], Awaitable[None]]) -> None:
    """Edit the progress message every `seconds` until cancelled (when the backfill ends)."""
    started = time.monotonic()
    while time.monotonic() - started < PROGRESS_FOR_S:
        await asyncio.sleep(seconds)
        try:
            await report(progress.line(name))
        except discord.HTTPException as exc:
            log.info("Backfill progress not shown: %s", exc)
            return


async def backfill(
    indexer: Indexer,
    settings_store: IndexSettings,
    channel: discord.TextChannel | discord.ForumChannel,
    entry: ChannelIndex,
    progress: Progress,
    then: Callable[[], Awaitable[object]] | None = None,
) -> Progress:
    """Walk the channel's history from the checkpoint in `entry`, storing images (updates `progress`),
    then run `then` (its threads' backfills) before the backfill is marked done. A forum or media
    channel has no messages of its own: only its posts (threads) are walked."""
    cursor, started_from = entry.cursor, entry.started_from
    while isinstance(channel, discord.TextChannel):
        before = discord.Object(id=cursor) if cursor else None
        page = [message async for message in channel.history(limit=PAGE, before=before)]
        if not page:
            break
        if started_from is None:
            started_from = page[0].id + 1
        stored = await indexer.index([image for message in page for image in indexed_images(message)])
        await indexer.search.store.flush()
        cursor = page[-1].id
        progress.scanned += len(page)
        progress.indexed += stored
        progress.run_indexed += stored
        progress.fraction = time_fraction(channel, started_from, cursor)
        await settings_store.checkpoint(
            channel.id,
            cursor=cursor,
            started_from=started_from,
            scanned=progress.scanned,
            indexed=progress.indexed,
            done=False,
        )
        if len(page) < PAGE:
            break
    if then is not None:
        await then()
    await settings_store.checkpoint(
        channel.id,
        cursor=cursor,
        started_from=started_from,
        scanned=progress.scanned,
        indexed=progress.indexed,
        done=True,
    )
    log.info("Backfill of channel %s done: %d images, %d messages", channel.id, progress.indexed, progress.scanned)
    await indexer.search.retire_old_models(settings_store)
    return progress
