"""`/autotag add|remove|list`: channels whose new images tag themselves (Manage Server).

Every new image of an autotagged channel (attachments and images Discord embedded, also by an
edit a moment later; fetched from its CDN and media proxy only) is classified with the
channel's labels as background work, which waits behind every interactive request (and is
paced while people use the bot: `bot.pacing`). `react` puts the winning label's emoji on the
message; `reply` answers with one quiet line (no ping). Nothing is done below the channel's
threshold, past its rate limit (`AUTOTAG_PER_MINUTE`), or without the permissions it needs;
each image's outcome is counted in /metrics (`clipbot_autotag`).

The settings live in the database (`bot.storage.autotag`) and go with the channel or the
server: live on CHANNEL_DELETE and GUILD_DELETE, and after downtime (a deleted channel is seen
here at READY; a server left is purged by the reconcile through `PresetStore.forget_guild`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import discord
from cachetools import TTLCache
from discord import app_commands
from discord.ext import commands

from bot.autotag import ChannelRateLimit, Mode, Tag, TagLabel, parse_tag_labels, winner
from bot.discord.interactions import MessageImage, check_size, download, managers_only, message_images
from bot.discord.replies import escape
from bot.errors import LabelError, UserFacingError
from bot.render import percent
from bot.storage.autotag import AutotagEntry
from bot.storage.presets import check_name

if TYPE_CHECKING:
    from bot.discord.client import ClipBot

log = logging.getLogger(__name__)

#: Images being tagged at once (each waits behind interactive requests in the engine anyway);
#: the rest wait here, so a burst holds no more downloads than this.
CONCURRENT_TAGS = 2
#: Messages whose images are remembered, and for how long: Discord adds a link's embed within
#: seconds, so an hour is ample.
SEEN_MESSAGES = 4096
SEEN_FOR_S = 3600.0
NO_INTENT = (
    " Note: the Message Content intent is off (`MESSAGE_CONTENT_INTENT`), so Discord sends me no attachments "
    "of new messages; see the README."
)


@dataclass(frozen=True, slots=True)
class Tagging:
    """An autotagged channel's settings, with its labels parsed (emoji split off)."""

    entry: AutotagEntry
    labels: list[TagLabel]

    @property
    def texts(self) -> list[str]:
        return [label.text for label in self.labels]


def missing_permissions(permissions: discord.Permissions, mode: Mode) -> list[str]:
    """What the bot lacks in a channel to autotag it in `mode` (Discord's names for them)."""
    needed = [("read_message_history", "Read Message History")]
    needed.append(("add_reactions", "Add Reactions") if mode == "react" else ("send_messages", "Send Messages"))
    return [name for flag, name in needed if not getattr(permissions, flag)]


def _key(image: MessageImage) -> tuple[int, int]:
    """Which image of its message this is (its attachment, or its embed)."""
    return image.attachment_id, image.embed_index


def shown(labels: list[TagLabel], limit: int) -> str:
    """Labels as a line: each emoji as is (a server emoji shows), the words escaped; within `limit`."""
    line = ", ".join(
        f"{label.emoji} {escape(label.text, 100)}" if label.emoji else escape(label.text, 100) for label in labels
    )
    return line if len(line) <= limit else line[: limit - 1] + "…"


def reply_line(tag: Tag, image: int, images: int) -> str:
    """`reply` mode's one line: the label (escaped) and its probability; which image if several."""
    emoji = f"{tag.label.emoji} " if tag.label.emoji else ""
    which = f"Image {image}: " if images > 1 else ""
    return f"{which}{emoji}{escape(tag.label.text, 200)} · {percent(tag.probability)}"


class Autotag(commands.Cog):
    """Per-channel automatic tagging of new images."""

    autotag = app_commands.Group(
        name="autotag",
        description="Channels whose new images are tagged by themselves",
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False),
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: ClipBot) -> None:
        self.bot = bot
        self.store = bot.services.autotag_channels
        self.counter = bot.metrics.autotag
        self.limit = ChannelRateLimit(bot.settings.autotag_per_minute)
        #: Autotagged channel id -> its settings (what `on_message` checks on every message).
        self.channels: dict[int, Tagging] = {}
        self._running = asyncio.Semaphore(CONCURRENT_TAGS)
        #: Images accepted for tagging and not yet done (running or waiting their turn).
        self.backlog = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = asyncio.Event()
        #: Recent messages of autotagged channels -> their images seen so far (by `_key`), so an
        #: image an edit adds is tagged once, and nothing else twice.
        self.seen: TTLCache[int, set[tuple[int, int]]] = TTLCache(maxsize=SEEN_MESSAGES, ttl=SEEN_FOR_S)

    async def cog_load(self) -> None:
        self._spawn(self._load(), "autotag-load")

    async def cog_unload(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[object, object, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self) -> None:
        try:
            for entry in await self.store.everywhere():
                try:
                    self.channels[entry.channel_id] = self._tagging(entry)
                except LabelError as exc:  # e.g. a label rule tightened since: that channel alone waits
                    log.warning(
                        "Autotag: channel %s's labels are refused now (%s); /autotag add it again",
                        entry.channel_id,
                        exc,
                    )
        except Exception:
            log.exception("The autotagged channels could not be read; autotagging is off until the next start")
        finally:
            self._loaded.set()

    @staticmethod
    def _tagging(entry: AutotagEntry) -> Tagging:
        return Tagging(entry, parse_tag_labels(entry.labels, min_count=1, max_count=len(entry.labels)))

    # -- commands -----------------------------------------------------------------------
    def _guild(self, interaction: discord.Interaction) -> discord.Guild:
        guild = self.bot.get_guild(interaction.guild_id or 0)
        if guild is None:
            raise UserFacingError("Autotagging works in servers the bot has joined.")
        return guild

    async def _labels(self, guild_id: int, value: str) -> tuple[list[TagLabel], str | None]:
        """The labels typed, or those of the server preset named (`@animals` or `animals`)."""
        settings = self.bot.settings
        name = value.strip()
        explicit = name.startswith("@")
        if explicit or ("," not in name and check_name_ok(name)):
            clean = check_name(name)  # lower-cased, `@` dropped; a one-line error if it cannot be a name
            preset = await self.bot.presets.get("guild", guild_id, clean)
            if preset is not None:
                labels = parse_tag_labels(preset.labels, min_count=settings.min_labels, max_count=settings.max_labels)
                return labels, preset.name
            if explicit:
                raise LabelError(f"This server has no preset `@{clean}` (`/labels list`).")
        return parse_tag_labels(value, min_count=settings.min_labels, max_count=settings.max_labels), None

    def _check_emoji(self, labels: list[TagLabel]) -> None:
        """A server emoji must be one the bot can use (of a server it is in)."""
        for label in labels:
            if label.emoji and label.emoji.startswith("<"):
                emoji = discord.PartialEmoji.from_str(label.emoji)
                if emoji.id is None or self.bot.get_emoji(emoji.id) is None:
                    raise LabelError(
                        f"I can't use the emoji of `{escape(label.text, 60)}`: it is not an emoji of a server I'm in."
                    )

    @managers_only
    @autotag.command(name="add", description="Tag a channel's new images by themselves (Manage Server)")
    @app_commands.describe(
        channel="The channel whose new images are tagged",
        labels="Comma-separated labels, an emoji first for react (🐱 cat, 🐶 dog), or a server preset's name",
        mode="react: the winning label's emoji on the message; reply: one quiet line",
        min_probability="Do nothing when the winning label is less sure than this (0-1; default 0.5)",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        labels: app_commands.Range[str, 1, 4000],
        mode: Literal["react", "reply"] = "react",
        min_probability: app_commands.Range[float, 0.0, 1.0] | None = None,
    ) -> None:
        guild = self._guild(interaction)
        target = guild.get_channel(channel.id)
        if not isinstance(target, discord.TextChannel):
            raise UserFacingError("I can only autotag text channels of this server.")
        member = interaction.user
        if not isinstance(member, discord.Member) or not target.permissions_for(member).view_channel:
            raise UserFacingError("You can only autotag a channel you can see.")
        mine = target.permissions_for(guild.me)
        if not mine.view_channel:
            raise UserFacingError(
                f"I can't see {target.mention}: give me View Channel there (and what autotagging needs), then retry."
            )
        missing = missing_permissions(mine, mode)
        if missing:
            raise UserFacingError(
                f"I can't autotag {target.mention} yet: I'm missing {', '.join(missing)} there. "
                "Give me that, then try again."
            )
        parsed, preset = await self._labels(guild.id, labels)
        without = [label for label in parsed if label.emoji is None]
        if mode == "react" and len(without) == len(parsed):
            raise LabelError(
                "No emoji in these labels; mode react would do nothing. Start each label with one "
                "(`🐱 cat, 🐶 dog`) or use mode:reply."
            )
        self._check_emoji(parsed)
        threshold = self.bot.settings.autotag_min_probability if min_probability is None else float(min_probability)
        entry = AutotagEntry(
            channel_id=target.id,
            guild_id=guild.id,
            labels=tuple(label.shown for label in parsed),
            mode=mode,
            min_probability=threshold,
            preset=preset,
        )
        await self.store.set(entry)
        self.channels[target.id] = Tagging(entry, parsed)
        how = "react with the winning label's emoji" if mode == "react" else "reply with one quiet line"
        source = f" (a copy of the server preset `@{preset}`)" if preset else ""
        line = (
            f"New images in {target.mention} will be tagged: I'll {how} when the best of {shown(parsed, 1200)}{source} "
            f"is at least {percent(threshold)} sure; at most {self.bot.settings.autotag_per_minute} images a minute."
        )
        if mode == "react" and without:
            bare = escape(", ".join(label.text for label in without), 200)
            line += f" Labels without an emoji ({bare}) get no reaction."
        if not self.bot.settings.message_content_intent:
            line += NO_INTENT
        await interaction.response.send_message(line[:2000], ephemeral=True)

    @managers_only
    @autotag.command(name="remove", description="Stop tagging a channel's new images (Manage Server)")
    @app_commands.describe(channel="The channel")
    async def remove(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        self._guild(interaction)
        self.channels.pop(channel.id, None)
        self.limit.forget(channel.id)
        removed = await self.store.remove(channel.id)
        line = "is no longer autotagged" if removed else "was not autotagged"
        await interaction.response.send_message(f"{channel.mention} {line}.", ephemeral=True)

    @managers_only
    @autotag.command(name="list", description="Which channels tag their new images, and how (Manage Server)")
    async def list_channels(self, interaction: discord.Interaction) -> None:
        guild = self._guild(interaction)
        member = interaction.user
        lines = []
        for entry in await self.store.guild(guild.id):
            channel = guild.get_channel(entry.channel_id)
            if channel is None or not isinstance(member, discord.Member):
                continue
            if not channel.permissions_for(member).view_channel:
                continue  # its labels are a fact about a channel hidden from them
            source = f" (from `@{entry.preset}`)" if entry.preset else ""
            lines.append(
                f"<#{entry.channel_id}>: {entry.mode} · at least {percent(entry.min_probability)} · "
                f"{shown(self._tagging(entry).labels, 300)}{source}"
            )
        text = "\n".join(lines) if lines else "No channel you can see is autotagged here yet (`/autotag add`)."
        await interaction.response.send_message(text[:2000], ephemeral=True)

    # -- tagging --------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        tagging = self.channels.get(message.channel.id)
        if tagging is None or message.guild is None or message.author.bot:
            return
        images = message_images(message)
        self.seen[message.id] = {_key(image) for image in images}
        self._consider(message, tagging, images, images)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """Discord often embeds a posted link's image a moment later, by an edit: those images are
        new too. Only messages seen posted (`seen`) count, so an old message is never tagged again."""
        tagging = self.channels.get(payload.channel_id)
        seen = self.seen.get(payload.message_id)
        message = payload.message
        if tagging is None or seen is None or message.guild is None or message.author.bot:
            return
        images = message_images(message)
        new = [image for image in images if _key(image) not in seen]
        seen.update(_key(image) for image in new)
        self._consider(message, tagging, new, images)

    def _consider(
        self, message: discord.Message, tagging: Tagging, images: list[MessageImage], every: list[MessageImage]
    ) -> None:
        """Tag `images` (of the message's `every` image) within the backlog's bound
        (`AUTOTAG_MAX_WAITING`) and the channel's rate limit."""
        for image in images:
            if self.backlog >= self.bot.settings.autotag_max_waiting:
                self.counter.labels("skipped_backlog").inc()
                continue
            if not self.limit.take(message.channel.id):
                self.counter.labels("skipped_rate_limited").inc()
                continue
            self.backlog += 1
            self._spawn(self._tag(message, tagging, image, every.index(image) + 1, len(every)), "autotag")

    async def _tag(self, message: discord.Message, tagging: Tagging, image: MessageImage, number: int, of: int) -> None:
        outcome = "failed"
        try:
            async with self._running:
                outcome = await self._tag_one(message, tagging, image, number, of)
        except UserFacingError as exc:  # the image could not be fetched or decoded
            log.info("Autotag: image %d of message %s not tagged: %s", number, message.id, exc)
        except discord.HTTPException as exc:
            log.warning("Autotag: Discord refused the tag of message %s: %s", message.id, exc)
        except Exception:
            log.exception("Autotag: image %d of message %s failed", number, message.id)
        finally:
            self.backlog -= 1
            self.counter.labels(outcome).inc()

    async def _tag_one(
        self, message: discord.Message, tagging: Tagging, image: MessageImage, number: int, of: int
    ) -> str:
        """Classify one image and act on it; the outcome's name for /metrics."""
        entry = tagging.entry
        mode: Mode = "reply" if entry.mode == "reply" else "react"
        channel = message.channel
        guild = message.guild
        if guild is None or not isinstance(channel, discord.abc.GuildChannel):
            return "failed"
        permissions = channel.permissions_for(guild.me)
        if not permissions.view_channel or missing_permissions(permissions, mode):
            log.info("Autotag: no permission to tag in channel %s", channel.id)
            return "no_permission"
        check_size(image.size, self.bot.settings.max_image_bytes)
        data = await download(self.bot, image.url, image.size)
        texts, template = self.bot.service.parse_classify(tagging.texts, None)
        ranking = await self.bot.service.classify(
            data, texts, template, thumbnail=False, requester=("autotag", guild.id), background=True
        )
        tag = winner(ranking.scores, tagging.labels, entry.min_probability)
        if tag is None:
            return "below_threshold"
        if mode == "react":
            if tag.label.emoji is None:
                return "no_emoji"
            await message.add_reaction(discord.PartialEmoji.from_str(tag.label.emoji))
        else:
            await message.reply(
                reply_line(tag, number, of),
                mention_author=False,
                allowed_mentions=discord.AllowedMentions.none(),
                silent=True,
            )
        return "tagged"

    # -- keeping the settings true --------------------------------------------------------
    async def forget_channel(self, channel_id: int) -> None:
        self.channels.pop(channel_id, None)
        self.limit.forget(channel_id)
        await self.store.remove(channel_id)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self._loaded.wait()
        if channel.id in self.channels:
            await self.forget_channel(channel.id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left the server (or it was deleted): its autotag settings go."""
        await self._loaded.wait()
        for channel_id in [c for c, t in self.channels.items() if t.entry.guild_id == guild.id]:
            self.channels.pop(channel_id, None)
            self.limit.forget(channel_id)
        await self.store.remove_guild(guild.id)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """After downtime: channels deleted meanwhile (Discord sent no CHANNEL_DELETE) go. A server
        left meanwhile is purged by the reconcile (`PresetStore.forget_guild`); here it is dropped
        from memory."""
        await self._loaded.wait()
        present = {guild.id: guild for guild in self.bot.guilds}
        for channel_id, tagging in list(self.channels.items()):
            guild = present.get(tagging.entry.guild_id)
            if guild is None:
                self.channels.pop(channel_id, None)
            elif not guild.unavailable and guild.get_channel(channel_id) is None:
                log.info("Autotag: channel %s was deleted while I was offline; its settings are removed", channel_id)
                await self.forget_channel(channel_id)


def check_name_ok(name: str) -> bool:
    """`name` could be a preset's name (`bot.storage.presets.check_name` accepts it)."""
    try:
        check_name(name)
    except LabelError:
        return False
    return True


async def setup(bot: ClipBot) -> None:
    await bot.add_cog(Autotag(bot))
