"""`/index add|remove|status|rebuild|forget-me` and the listeners that keep the image index true.

Indexing is opt-in per channel (Manage Server): a text or announcement channel with its
threads, or a forum or media channel with its posts (`threads`). New image messages in an
indexed channel or one of its threads are embedded and stored by id; deleting a message
(alone or in bulk), an edit that removes images, deleting a thread, removing or deleting
the channel, the bot leaving the server and `/index forget-me` all delete the entries at
once. Messages carry their attachments only with the privileged Message Content intent
(`MESSAGE_CONTENT_INTENT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.exts.search.backfill import Indexer, backfill, indexed_images, report_every, start_progress
from bot.discord.exts.search.reposts import RepostAlerts
from bot.discord.exts.search.threads import Indexable, ThreadPlaces, backfill_threads, thread_of
from bot.discord.interactions import managers_only
from bot.discord.replies import index_erasure_line
from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.discord.client import ClipBot

log = logging.getLogger(__name__)

NO_INTENT = (
    " Note: the Message Content intent is off (`MESSAGE_CONTENT_INTENT`), so Discord sends me no attachments "
    "of new messages; see the README."
)


class Indexing(commands.Cog):
    """Per-channel opt-in image index, its backfills, and deletions."""

    index = app_commands.Group(
        name="index",
        description="Image search: which channels are indexed",
        # Explicitly not in DMs: the client's defaults (guild, DMs, group DMs) fill in what is unset.
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False),
    )

    def __init__(self, bot: ClipBot, places: ThreadPlaces | None = None) -> None:
        self.bot = bot
        #: The indexed channels' threads (shared with `/search`, which checks who may see them).
        self.places = places or ThreadPlaces(bot.services.index_threads)
        self.search = bot.services.search
        self.store = self.search.store
        self.channels = bot.services.index_channels
        self.search.queue.on_drop = bot.metrics.index_dropped.inc
        self.indexer = Indexer(bot, self.search)
        self.reposts = RepostAlerts(bot, self.search)
        #: Indexed channel id -> guild id (what the listeners check on every message).
        self.indexed = self.search.indexed
        self.backfills: dict[int, asyncio.Task[None]] = {}
        self._start: asyncio.Task[None] | None = None
        #: Set once start-up is done (the index opened if any channel is indexed): deletions wait for it.
        self._opened = asyncio.Event()

    async def cog_load(self) -> None:
        self._start = asyncio.get_running_loop().create_task(self._open(), name="index-open")

    @property
    def started(self) -> bool:
        """Start-up is done (the index is open if any channel was indexed)."""
        return self._opened.is_set()

    async def _open(self) -> None:
        """At start: if channels are indexed, open the index and resume unfinished backfills."""
        try:
            await self._open_index()
        finally:
            self._opened.set()  # deletions waiting for the index go ahead (or see it unavailable)

    async def _open_index(self) -> None:
        await self.bot.wait_until_ready()
        for guild in self.bot.guilds:
            for entry in await self.channels.guild(guild.id):
                self.indexed[entry.channel_id] = entry.guild_id
                if entry.repost_alerts:
                    self.reposts.channels.add(entry.channel_id)
            await self.places.load(guild.id)
        if not self.indexed:
            return
        try:
            await self.search.ensure_open()  # after the model: its load is what users wait for first
        except Exception:
            log.exception("The image index could not start; /search and /index are unavailable")
            return
        for entry in await self.channels.running():
            channel = self.bot.get_channel(entry.channel_id)
            if isinstance(channel, Indexable):
                log.info("Resuming the backfill of channel %s from its checkpoint", entry.channel_id)
                self._start_backfill(channel, None)
        log.info("Image index ready: %d channels indexed", len(self.indexed))

    async def cog_unload(self) -> None:
        tasks = [t for t in (self._start, *self.backfills.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._opened.set()

    # -- backfills --------------------------------------------------------------------
    def _start_backfill(self, channel: Indexable, interaction: discord.Interaction | None) -> None:
        old = self.backfills.pop(channel.id, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._backfill(channel, interaction), name="backfill")
        self.backfills[channel.id] = task
        task.add_done_callback(lambda done: self._backfill_done(channel.id, done))

    def _backfill_done(self, channel_id: int, task: asyncio.Task[None]) -> None:
        if self.backfills.get(channel_id) is task:
            del self.backfills[channel_id]

    async def _backfill(self, channel: Indexable, interaction: discord.Interaction | None) -> None:
        entry = await self.channels.get(channel.id)
        if entry is None or entry.backfill != "running":
            return
        progress = start_progress(channel, entry)
        name = channel.mention

        async def show(line: str) -> None:
            if interaction is not None:
                await interaction.edit_original_response(content=line)

        ticker = asyncio.get_running_loop().create_task(
            report_every(self.bot.settings.backfill_progress_every_s, progress, name, show)
        )
        try:
            await backfill(
                self.indexer,
                self.channels,
                channel,
                entry,
                progress,
                then=lambda: backfill_threads(self.indexer, self.places, channel, progress),
            )
        except discord.HTTPException as exc:
            log.warning("Backfill of channel %s stopped: %s", channel.id, exc)
            line = f"⚠️ Indexing {name} stopped: Discord refused to show me its history ({exc.status})."
        else:
            line = progress.line(name, done=True)
        finally:
            ticker.cancel()
        with contextlib.suppress(discord.HTTPException):
            await show(line)

    # -- commands -----------------------------------------------------------------------
    def _guild(self, interaction: discord.Interaction) -> discord.Guild:
        guild = self.bot.get_guild(interaction.guild_id or 0)
        if guild is None:
            raise UserFacingError("Image search works in servers the bot has joined.")
        return guild

    @staticmethod
    def _can_read(guild: discord.Guild, member: discord.abc.User, channel_id: int) -> bool:
        """The member may view the channel and read its history now (what /search checks too)."""
        channel = guild.get_channel(channel_id)
        if channel is None or not isinstance(member, discord.Member):
            return False
        permissions = channel.permissions_for(member)
        return permissions.view_channel and permissions.read_message_history

    async def _opening(self, interaction: discord.Interaction) -> None:
        """Acknowledge privately, then open the index (seconds on its first use)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.search.ensure_open()

    @managers_only
    @index.command(name="add", description="Index this channel's images for /search (Manage Server)")
    @app_commands.describe(
        channel="The channel to index",
        backfill="Also index the images already posted there",
        repost="Reply when a new image there is a near-duplicate of one already indexed",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        channel: Indexable,
        backfill: bool = True,
        repost: bool = False,
    ) -> None:
        guild = self._guild(interaction)
        target = guild.get_channel(channel.id)
        if not isinstance(target, Indexable):
            raise UserFacingError("I can only index text, announcement, forum and media channels of this server.")
        if not self._can_read(guild, interaction.user, target.id):
            # Its progress would show how many images a channel hidden from them holds.
            raise UserFacingError("You can only index a channel whose history you can read.")
        await self._opening(interaction)
        model = self.bot.engine.info.model_id if self.bot.engine.info else ""
        await self.channels.add(
            guild.id, target.id, interaction.user.id, backfill=backfill, model_id=model, repost_alerts=repost
        )
        if backfill:
            await self.places.store.restart_parents([target.id])  # its threads' histories again too
        self.search.allow_place(target.id)
        self.search.allow_place(guild.id)
        self.indexed[target.id] = guild.id
        self._set_reposts(target.id, repost)
        note = "" if self.bot.settings.message_content_intent else NO_INTENT
        if repost:
            note = f" Repost alerts are on.{self._reply_note(target)}{note}"
        if not backfill:
            await interaction.edit_original_response(content=f"New images in {target.mention} will be indexed.{note}")
            return
        await interaction.edit_original_response(content=f"⏳ Indexing {target.mention}: starting…{note}")
        self._start_backfill(target, interaction)

    @managers_only
    @index.command(name="repost", description="Turn repost alerts on or off for an indexed channel (Manage Server)")
    @app_commands.describe(channel="An indexed channel", enabled="Reply when a new image there is a near-duplicate")
    async def repost(self, interaction: discord.Interaction, channel: discord.TextChannel, enabled: bool) -> None:
        guild = self._guild(interaction)
        if not self._can_read(guild, interaction.user, channel.id):
            raise UserFacingError("You can only change a channel whose history you can read.")
        if channel.id not in self.indexed or not await self.channels.set_repost_alerts(channel.id, enabled):
            raise UserFacingError(f"{channel.mention} is not indexed; `/index add` it first.")
        self._set_reposts(channel.id, enabled)
        state = "on: a near-duplicate of an image already indexed gets a reply" if enabled else "off"
        note = self._reply_note(channel) if enabled else ""
        await interaction.response.send_message(
            f"Repost alerts in {channel.mention} are {state}.{note}", ephemeral=True
        )

    @staticmethod
    def _reply_note(channel: discord.abc.GuildChannel) -> str:
        """What the bot lacks to post a repost alert (a reply) in `channel`, if anything."""
        allowed = channel.permissions_for(channel.guild.me)
        if allowed.send_messages and allowed.read_message_history:
            return ""
        return " Note: I cannot reply there until I have Send Messages and Read Message History in it."

    def _set_reposts(self, channel_id: int, enabled: bool) -> None:
        if enabled:
            self.reposts.channels.add(channel_id)
        else:
            self.reposts.channels.discard(channel_id)

    @managers_only
    @index.command(name="remove", description="Stop indexing a channel and delete its images from the index")
    @app_commands.describe(channel="The channel")
    async def remove(self, interaction: discord.Interaction, channel: Indexable) -> None:
        self._guild(interaction)
        await self._opening(interaction)
        await self.forget_channel(channel.id)
        await interaction.edit_original_response(
            content=f"{channel.mention} is no longer indexed; its images were deleted from the index."
        )

    @index.command(name="status", description="Which channels are indexed, and how far their backfills are")
    async def status(self, interaction: discord.Interaction) -> None:
        guild = self._guild(interaction)
        # Only channels the caller may read: a count is a fact about a channel hidden from them.
        entries = [
            e for e in await self.channels.guild(guild.id) if self._can_read(guild, interaction.user, e.channel_id)
        ]
        if not entries:
            await interaction.response.send_message(
                "No channel you can read is indexed here yet (`/index add`).", ephemeral=True
            )
            return
        await self._opening(interaction)
        lines = []
        for entry in entries:
            count = await self.store.count(guild_id=guild.id, channel_id=entry.channel_id)
            state = {"none": "new images only", "running": "backfilling", "done": "history done"}[entry.backfill]
            lines.append(f"<#{entry.channel_id}>: {count} images · {state} ({entry.scanned} messages scanned)")
        await interaction.edit_original_response(content="\n".join(lines)[:2000])

    @managers_only
    @index.command(name="rebuild", description="Index every channel again with the current model (Manage Server)")
    async def rebuild(self, interaction: discord.Interaction) -> None:
        guild = self._guild(interaction)
        await self._opening(interaction)
        model = self.bot.engine.info.model_id if self.bot.engine.info else ""
        await self.channels.restart_guild(guild.id, model)
        entries = await self.channels.guild(guild.id)
        await self.places.store.restart_parents(entry.channel_id for entry in entries)
        started = 0
        for entry in entries:
            channel = guild.get_channel(entry.channel_id)
            if isinstance(channel, Indexable):
                self._start_backfill(channel, None)
                started += 1
        await interaction.edit_original_response(
            content=f"Re-indexing {started} channels with the current model; `/index status` shows how far."
        )

    @index.command(name="forget-me", description="Delete every image you posted from the image index")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        done = await self.search.forget_author(interaction.user.id)
        await interaction.edit_original_response(content=index_erasure_line(done))

    # -- keeping the index true ------------------------------------------------------------
    async def forget_channel(self, channel_id: int) -> None:
        task = self.backfills.pop(channel_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.indexed.pop(channel_id, None)
        self.reposts.channels.discard(channel_id)
        await self.channels.remove(channel_id)
        threads = await self.places.forget_parent(channel_id)
        if await self._can_delete():
            for place_id in (channel_id, *threads):
                await self.search.forget_channel(place_id)

    async def forget_thread(self, thread_id: int) -> None:
        """A thread deleted (or found gone): its row and images."""
        await self.places.forget(thread_id)
        if await self._can_delete():
            await self.search.forget_channel(thread_id)

    async def _place_of(self, message: discord.Message) -> int | None:
        """The indexed channel or thread `message` was posted in, or None if not indexed. A thread
        of an indexed channel met for the first time is recorded (its history is its parent's
        backfill's to walk)."""
        channel_id = message.channel.id
        if channel_id in self.indexed or channel_id in self.places.known:
            return channel_id
        if not self.indexed or not isinstance(message.channel, discord.Thread | discord.PartialMessageable):
            return None
        thread = await thread_of(self.bot, message.channel, message.guild)
        if thread is None or thread.parent_id not in self.indexed:
            return None
        await self.places.add(thread, backfill=False)
        return channel_id

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or message.author.bot or not self.search.ready:
            return
        images = indexed_images(message)
        if images and await self._place_of(message) is not None:
            stored = await self.indexer.index_vectors(images, live=True)
            await self.reposts.check(message, stored)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edit that removes images removes their entries (and a link Discord embeds later is added)."""
        if not self._indexed_place(payload.channel_id) or not self.search.ready:
            return
        if not self.bot.settings.message_content_intent:
            return  # without the intent an update carries no attachments: nothing to compare
        images = indexed_images(payload.message)
        current = {image.ref.key for image in images}
        stored = await self.search.images_edited(payload.message_id, payload.guild_id, current)
        new = [image for image in images if image.ref.key not in stored]
        if new and not payload.message.author.bot:
            await self.indexer.index(new, live=True)

    async def _can_delete(self, channel_id: int | None = None) -> bool:
        """Wait until the index is open (a deletion during start-up is applied, not dropped)."""
        await self._opened.wait()
        return self.search.ready and (channel_id is None or self._indexed_place(channel_id))

    def _indexed_place(self, channel_id: int) -> bool:
        return channel_id in self.indexed or channel_id in self.places.known

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if await self._can_delete(payload.channel_id):
            await self.search.forget_messages([payload.message_id], payload.guild_id)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if await self._can_delete(payload.channel_id):
            await self.search.forget_messages(payload.message_ids, payload.guild_id)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        if channel.id in self.indexed:
            await self.forget_channel(channel.id)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        if payload.thread_id in self.places.known or payload.parent_id in self.indexed:
            await self.forget_thread(payload.thread_id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left the server (or it was deleted): every image of it goes."""
        for channel_id in [c for c, g in self.indexed.items() if g == guild.id]:
            await self.forget_channel(channel_id)
        await self.channels.remove_guild(guild.id)
        await self.places.forget_guild(guild.id)
        if await self._can_delete():
            await self.search.forget_guild(guild.id)
