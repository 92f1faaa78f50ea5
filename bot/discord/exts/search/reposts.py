"""Repost alerts: a new image that is a near-duplicate of one already indexed gets one quiet reply.

Opt-in per indexed channel (`/index add … repost:True`, `/index repost`). After a new
message's images are embedded for the index, the nearest earlier image of the same server
is looked up, among the indexed channels that everyone who can view this channel can also
view and read (`bot.discord.audience`): the reply is public, so it never links a message
some of its readers could not see. Those channel ids go into the vector query as a filter,
as for /search. At or above `REPOST_THRESHOLD` (cosine; measured in BENCHMARKS.md) the
reply links the earlier message with the similarity, pinging nobody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
import numpy as np

from bot.discord.audience import audience_can_read, two_channels
from bot.search import Query
from bot.storage.vectors import Hit, ImageRef

if TYPE_CHECKING:
    from bot.discord.client import ClipBot
    from bot.search import SearchService

log = logging.getLogger(__name__)

#: Extra neighbours asked for, past the message's own images, in case newer ones come first.
SPARE = 4


def alert_line(hit: Hit) -> str:
    """The reply: where the earlier copy is, and how alike (no user text, nothing that pings)."""
    ref = hit.ref
    link = f"https://discord.com/channels/{ref.guild_id}/{ref.channel_id}/{ref.message_id}"
    return f"♻️ This image looks like a repost of {link} (similarity {hit.score:.3f})."


class RepostAlerts:
    """Which channels have alerts on, and the check run on each new message's stored images."""

    def __init__(self, bot: ClipBot, search: SearchService) -> None:
        self.bot = bot
        self.search = search
        #: Indexed channels with repost alerts on.
        self.channels: set[int] = set()

    async def linkable_channels(self, channel: discord.abc.GuildChannel) -> list[int]:
        """The server's indexed channels whose messages everyone who views `channel` may see."""
        guild = channel.guild
        candidates = [
            other
            for channel_id, guild_id in self.search.indexed.items()
            if guild_id == guild.id and isinstance(other := guild.get_channel(channel_id), discord.abc.GuildChannel)
        ]
        snapshots = [(other.id, two_channels(channel, other)) for other in candidates]
        # Every role combination is tried: CPU work, off the event loop.
        return await asyncio.to_thread(lambda: [cid for cid, pair in snapshots if audience_can_read(pair)])

    async def nearest_earlier(
        self, message: discord.Message, stored: Sequence[tuple[ImageRef, np.ndarray]]
    ) -> Hit | None:
        """The most similar earlier image (another message) to any of `stored`, among linkable channels."""
        if not isinstance(message.channel, discord.abc.GuildChannel):
            return None
        allowed = await self.linkable_channels(message.channel)
        if not allowed:
            return None
        best: Hit | None = None
        for ref, vector in stored:
            # Its own images (and any posted since) may be the closest: ask for enough to see past them.
            hits = await self.search.search(Query(vector), ref.guild_id, allowed, len(stored) + SPARE)
            earlier = next((hit for hit in hits if hit.ref.message_id < message.id), None)
            if earlier is not None and (best is None or earlier.score > best.score):
                best = earlier
        return best

    async def check(self, message: discord.Message, stored: Sequence[tuple[ImageRef, np.ndarray]]) -> Hit | None:
        """Reply once if a stored image of `message` is a near-duplicate; the match replied about."""
        if message.channel.id not in self.channels or not stored:
            return None
        hit = await self.nearest_earlier(message, stored)
        if hit is None or hit.score < self.bot.settings.repost_threshold:
            return None
        try:
            await message.reply(
                alert_line(hit),
                mention_author=False,
                allowed_mentions=discord.AllowedMentions.none(),
                silent=True,
            )
        except discord.HTTPException as exc:  # no Send Messages there, or the message is gone
            log.info("Repost alert for message %s not sent: %s", message.id, exc)
            return None
        self.bot.metrics.repost_alerts.inc()
        return hit
