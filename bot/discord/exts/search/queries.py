"""`/search text:` / `/search image:` and the "Find similar images" message command.

Only channels the asking member can view (and read the history of) right now are
searched: the permission check runs at query time on the bot's live view of the
server's roles and overwrites, and those channel ids go into the database query
as a filter. A thread's images are searched only for a member who can see the thread
(its parent's permissions; for a private thread, membership or Manage Threads: `threads`).
Results are private (ephemeral): someone else in this channel may not see the channels
they come from; they arrive as one Components V2 message, a media gallery and a line per
result (`gallery`). Each result's message is fetched again for a
fresh (signed, expiring) image URL; a message that is gone is dropped from the index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.exts.search.backfill import IndexedImage, indexed_images
from bot.discord.exts.search.gallery import MAX_RESULTS, results_view
from bot.discord.exts.search.threads import ThreadPlaces, visible_threads
from bot.discord.interactions import answered, check_attachment, check_size, download, working
from bot.errors import ImageError, UserFacingError
from bot.search import Query
from bot.storage.vectors import Hit

if TYPE_CHECKING:
    from bot.discord.client import ClipBot

log = logging.getLogger(__name__)

SIMILAR = "Find similar images"
#: In servers only; explicitly not in DMs (the client's defaults fill in whatever is unset).
SERVER_ONLY = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)
#: Extra candidates asked for, in case some results' messages are gone.
SPARE = 5


class Search(commands.Cog):
    """Image search over the channels indexed with `/index`."""

    def __init__(self, bot: ClipBot, places: ThreadPlaces | None = None) -> None:
        self.bot = bot
        self.index = bot.services.search
        self.places = places or ThreadPlaces(bot.services.index_threads)
        self.menu = app_commands.ContextMenu(name=SIMILAR, callback=self.similar)
        self.menu.allowed_contexts = SERVER_ONLY

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def viewable_threads(self, guild: discord.Guild, member: discord.abc.User, channels: list[int]) -> list[int]:
        """The indexed threads of `channels` (those the member can view) the member can see now
        (after the interaction is acknowledged: a private thread's membership is asked of Discord)."""
        entries = [e for e in self.places.known.values() if e.guild_id == guild.id and e.parent_id in channels]
        if not entries or not isinstance(member, discord.Member):
            return []
        return await visible_threads(self.bot, guild, member, entries)

    def viewable_channels(self, interaction: discord.Interaction) -> tuple[discord.Guild, list[int]]:
        """This server, and its indexed channels the member can view and read now."""
        guild = self.bot.get_guild(interaction.guild_id or 0)
        member = interaction.user
        if guild is None or not isinstance(member, discord.Member):
            raise UserFacingError("Image search works in servers the bot has joined.")
        allowed = []
        for channel_id, guild_id in self.index.indexed.items():
            channel = guild.get_channel(channel_id)
            if guild_id != guild.id or channel is None:
                continue
            permissions = channel.permissions_for(member)
            if permissions.view_channel and permissions.read_message_history:
                allowed.append(channel_id)
        return guild, allowed

    @app_commands.command(name="search", description="Find images posted in this server, by words or by example")
    @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
    @app_commands.describe(
        text="What the image shows, e.g. a red car",
        image="An image to find similar ones to",
        results="How many results (1 to 10)",
    )
    async def search(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, 300] | None = None,
        image: discord.Attachment | None = None,
        results: app_commands.Range[int, 1, 10] | None = None,
    ) -> None:
        if (text is None) == (image is None):
            raise UserFacingError("Give either `text` (words) or `image` (an example), not both or neither.")
        if image is not None:
            check_attachment(image, self.bot.settings.max_image_bytes)
        guild, allowed = self.viewable_channels(interaction)
        started = time.perf_counter()
        search = self.index
        async with working(self.bot, interaction, ephemeral=True):
            allowed += await self.viewable_threads(guild, interaction.user, allowed)
            if allowed:
                await search.ensure_open()
            if text is not None:
                query = await search.text_query(text)
            else:
                assert image is not None
                query = await search.image_query(
                    await download(self.bot, image.url, image.size), requester=interaction.user.id
                )
            await self._answer(interaction, guild, allowed, query, results, started, exclude=None)

    async def similar(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Right-click a message → Apps → Find similar images: its first image is the example."""
        images = indexed_images(message)
        if not images:
            raise ImageError("That message has no image I can search with (attachments or image links).")
        guild, allowed = self.viewable_channels(interaction)
        started = time.perf_counter()
        async with working(self.bot, interaction, ephemeral=True):
            allowed += await self.viewable_threads(guild, interaction.user, allowed)
            await self.index.ensure_open()
            query = await self._query_for(images[0], interaction.user.id)
            await self._answer(interaction, guild, allowed, query, None, started, exclude=message.id)

    async def _query_for(self, image: IndexedImage, requester: int) -> Query:
        """The image's stored vector when it is indexed, else its embedding (fetched from Discord)."""
        stored = await self.index.store.vector_of(image.ref.key)
        if stored is not None:
            return Query(stored)
        check_size(image.size, self.bot.settings.max_image_bytes)
        return await self.index.image_query(await download(self.bot, image.url, image.size), requester=requester)

    async def _answer(
        self,
        interaction: discord.Interaction,
        guild: discord.Guild,
        allowed: list[int],
        query: Query,
        results: int | None,
        started: float,
        exclude: int | None,
    ) -> None:
        wanted = min(results or self.bot.settings.search_results, MAX_RESULTS)
        hits = await self.index.search(query, guild.id, allowed, wanted + SPARE) if allowed else []
        hits = [hit for hit in hits if hit.ref.message_id != exclude]
        found = await asyncio.gather(*(self._fresh(guild, hit) for hit in hits[: wanted + SPARE]))
        shown = [(hit, message) for hit, message in zip(hits, found, strict=False) if message is not None][:wanted]
        elapsed = time.perf_counter() - started
        if not shown:
            what = f"in {len(allowed)} channels you can see" if allowed else "(no indexed channel you can see)"
            await interaction.edit_original_response(content=f"No images found {what}.")
            return
        view = results_view(shown, query.text, elapsed)
        await interaction.edit_original_response(view=view, allowed_mentions=discord.AllowedMentions.none())
        answered(self.bot, "search", elapsed)

    async def _fresh(self, guild: discord.Guild, hit: Hit) -> discord.Message | None:
        """The result's message, fetched now (fresh image URLs); None if it is gone (then unindexed)."""
        place = hit.ref.channel_id
        channel: object = guild.get_channel_or_thread(place)
        if place in self.places.known and not isinstance(channel, discord.Thread):
            channel = self.bot.get_partial_messageable(place, guild_id=guild.id)  # an archived thread
        if not isinstance(channel, discord.TextChannel | discord.Thread | discord.PartialMessageable):
            return None
        try:
            return await channel.fetch_message(hit.ref.message_id)
        except discord.NotFound:
            await self.index.forget_messages([hit.ref.message_id], hit.ref.guild_id)
        except discord.HTTPException as exc:
            log.info("Result %s not shown: %s", hit.ref.key, exc)
        return None
