"""`/classify` and `/similar`: validate, defer, run the service, reply once.

Cheap checks (labels, template, attachment size and type, the queue) answer
at once and ephemerally, before deferring; everything slow happens after the
deferral ("thinking"), and the final answer replaces that message.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.download import check_trusted, fetch_bytes
from bot.discord.replies import COLOUR, classify_embed, escape, footer, similar_embed
from bot.errors import ImageError, WarmingUpError, too_large_message
from bot.heatmap import render_heatmap
from bot.label_sets import Resolver, expand_presets, suggestions
from bot.render import bar, cosine_fraction, inline_code
from bot.service import Ranking
from bot.storage.presets import Preset

if TYPE_CHECKING:
    from bot.discord.client import ClipBot
    from bot.service import ModelInfo

log = logging.getLogger(__name__)

HEATMAP_FILE = "similarity.png"
THUMBNAIL_FILE = "thumbnail.jpg"
#: Discord drops an autocomplete answer after 3 s; give up well before.
AUTOCOMPLETE_BUDGET_S = 1.5
#: Fewer phrases are one pair: the ranking already says everything.
HEATMAP_MIN_PHRASES = 3


def user_cooldown(interaction: discord.Interaction) -> app_commands.Cooldown | None:
    """One request per `USER_COOLDOWN_S` per user; server managers are exempt.

    In DMs and group DMs there is no server (`interaction.permissions` is empty), so
    everyone gets the cooldown; in a server the bot is not in (a user install), the
    member's permissions still come with the interaction and the exemption applies.
    """
    settings = interaction.client.settings  # type: ignore[attr-defined]
    if settings.user_cooldown_s <= 0:
        return None
    permissions = interaction.permissions
    if permissions.manage_guild or permissions.administrator:
        return None
    return app_commands.Cooldown(1, settings.user_cooldown_s)


class ClipCommands(commands.Cog):
    """/classify, /similar and /compare, and the helpers the message command shares (download, queue, presets)."""

    def __init__(self, bot: ClipBot) -> None:
        self.bot = bot
        self.service = bot.service
        self.settings = bot.settings

    @app_commands.command(name="classify", description="Zero-shot classify an image with your own labels")
    @app_commands.describe(
        image="The image to classify",
        labels="Comma-separated labels, e.g. cat, dog, bloody mary",
        template='Prompt with {} (default "a photo of a {}"); "none": raw labels; "ensemble": 7 templates',
    )
    @app_commands.checks.dynamic_cooldown(user_cooldown)
    async def classify(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        labels: app_commands.Range[str, 1, 4000],
        template: app_commands.Range[str, 0, 300] | None = None,
    ) -> None:
        started = time.perf_counter()
        items = await expand_presets(labels, self.resolver(interaction))
        label_list, prompt_template = self.service.parse_classify(items, await self.template_for(interaction, template))
        self.check_attachment(image)
        async with self.working(interaction):
            download_started = time.perf_counter()
            data = await self.download(image.url)
            self.bot.metrics.request_seconds.labels("classify", "download").observe(
                time.perf_counter() - download_started
            )
            ranking = await self.service.classify(data, label_list, prompt_template)
        elapsed = time.perf_counter() - started
        # The picture travels with the reply: the upload's own URL is signed and expires.
        files = [discord.File(io.BytesIO(ranking.thumbnail), filename=THUMBNAIL_FILE)] if ranking.thumbnail else []
        thumbnail_url = f"attachment://{THUMBNAIL_FILE}" if files else None
        embed = classify_embed(ranking, self.service.model_info, elapsed, thumbnail_url)
        await interaction.edit_original_response(content=None, embed=embed, attachments=files)
        self.answered("classify", elapsed)
        self.remember_labels(interaction, label_list)
        log.info("/classify user=%s labels=%d bytes=%d %.2fs", interaction.user.id, len(label_list), len(data), elapsed)

    @classify.autocomplete("labels")
    async def labels_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Presets and recent label sets, from the database (never the model), well inside 3 s."""
        store = self.bot.presets
        typed = current.rpartition(",")[2].strip()
        try:
            async with asyncio.timeout(AUTOCOMPLETE_BUDGET_S):
                presets = await store.matching(typed, interaction.user.id, interaction.guild_id)
                recent = await store.recent(interaction.user.id, interaction.guild_id)
        except Exception:  # a slow or failing database must not break typing
            log.warning("Autocomplete for labels failed", exc_info=True)
            return []
        return [app_commands.Choice(name=name, value=value) for name, value in suggestions(current, presets, recent)]

    @app_commands.command(name="similar", description="Rank phrases by how similar CLIP finds them to yours")
    @app_commands.describe(
        text="Your phrase, e.g. hello world",
        others="Comma-separated phrases to compare with, e.g. globe, cat, dog",
        heatmap="Attach a picture of every pair's similarity (three or more phrases in all)",
    )
    @app_commands.checks.dynamic_cooldown(user_cooldown)
    async def similar(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, 1000],
        others: app_commands.Range[str, 1, 4000],
        heatmap: bool = False,
    ) -> None:
        started = time.perf_counter()
        subject, other_list = self.service.parse_similar(text, others)
        phrases = [subject, *other_list]
        files: list[discord.File] = []
        async with self.working(interaction):
            ranking = await self.service.similar(subject, other_list)
            if heatmap and len(phrases) >= HEATMAP_MIN_PHRASES:
                matrix = await self.service.pairwise(phrases)
                png, _ = await asyncio.to_thread(render_heatmap, phrases, matrix)
                files.append(discord.File(io.BytesIO(png), filename=HEATMAP_FILE))
        elapsed = time.perf_counter() - started
        embed = similar_embed(subject, ranking, self.service.model_info, elapsed)
        if files:
            embed.set_image(url=f"attachment://{HEATMAP_FILE}")
        elif heatmap:
            embed.set_footer(text=f"{embed.footer.text} · a heatmap needs {HEATMAP_MIN_PHRASES}+ phrases")
        await interaction.edit_original_response(content=None, embed=embed, attachments=files)
        self.answered("similar", elapsed)
        log.info("/similar user=%s phrases=%d %.2fs", interaction.user.id, len(other_list), elapsed)

    @app_commands.command(name="compare", description="Rank images by how alike CLIP finds them to the first")
    @app_commands.describe(
        image="The image to compare the others with",
        other="An image to rank",
        other2="Another image",
        other3="Another image",
        other4="Another image",
        other5="Another image",
        other6="Another image",
        other7="Another image",
        other8="Another image",
        other9="Another image",
    )
    @app_commands.checks.dynamic_cooldown(user_cooldown)
    async def compare(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        other: discord.Attachment,
        other2: discord.Attachment | None = None,
        other3: discord.Attachment | None = None,
        other4: discord.Attachment | None = None,
        other5: discord.Attachment | None = None,
        other6: discord.Attachment | None = None,
        other7: discord.Attachment | None = None,
        other8: discord.Attachment | None = None,
        other9: discord.Attachment | None = None,
    ) -> None:
        started = time.perf_counter()
        extra = [other2, other3, other4, other5, other6, other7, other8, other9]
        attachments = [image, other, *(a for a in extra if a is not None)]
        for attachment in attachments:
            self.check_attachment(attachment)
        async with self.working(interaction):
            data = await asyncio.gather(*(self.download(attachment.url) for attachment in attachments))
            names = [_numbered(i, a.filename) for i, a in enumerate(attachments, 1)]
            ranking = await self.service.compare_images(data, names)
        elapsed = time.perf_counter() - started
        embed = compare_embed(names[0], ranking, self.service.model_info, elapsed)
        await interaction.edit_original_response(content=None, embed=embed)
        self.answered("compare", elapsed)
        log.info("/compare user=%s images=%d %.2fs", interaction.user.id, len(attachments), elapsed)

    async def download(self, url: str) -> bytes:
        """An image from Discord's CDN or media proxy (nothing else), within the size and time limits."""
        check_trusted(url, self.settings.trusted_media_hosts)
        return await fetch_bytes(
            self.bot.http_session,
            url,
            max_bytes=self.settings.max_image_bytes,
            timeout_s=self.settings.download_timeout_s,
        )

    async def template_for(self, interaction: discord.Interaction, template: str | None) -> str | None:
        """The template asked for, else this server's default (`/labels defaults`), else the bot's."""
        if template is not None and template.strip():
            return template
        server_template, _ = await self.bot.presets.guild_defaults(interaction.guild_id)
        return server_template

    def resolver(self, interaction: discord.Interaction) -> Resolver:
        """`@name` for this person, here (their presets, then the server's)."""
        store = self.bot.presets

        async def resolve(name: str) -> Preset | None:
            return await store.resolve(name, interaction.user.id, interaction.guild_id)

        return resolve

    def remember_labels(self, interaction: discord.Interaction, labels: list[str]) -> None:
        """Offer this label set again later (written in the background, never failing the request)."""
        self.bot.presets.remember(interaction.user.id, interaction.guild_id, labels)

    def answered(self, command: str, elapsed: float) -> None:
        self.bot.stats.record(command, elapsed)
        self.bot.metrics.requests.labels(command, "answered").inc()
        self.bot.metrics.request_seconds.labels(command, "total").observe(elapsed)

    def check_attachment(self, image: discord.Attachment) -> None:
        """Refuse by declared size and type, before downloading anything."""
        limit = self.settings.max_image_bytes
        if image.size > limit:
            raise ImageError(too_large_message(image.size, limit))
        content_type = (image.content_type or "").split(";")[0].strip().lower()
        if content_type and not content_type.startswith("image/"):
            raise ImageError(f"{inline_code(image.filename, 62)} is {inline_code(content_type, 62)}, not an image.")

    @contextlib.asynccontextmanager
    async def working(self, interaction: discord.Interaction) -> AsyncIterator[None]:
        """Take a place in the queue (or fail fast: busy), defer, and bound the time.

        The deferral ("thinking") is Discord's acknowledgement, due within 3 s;
        the block then has `REQUEST_TIMEOUT_S`, well inside the token's 15 minutes.
        """
        warming = self.service.warming_up()
        if warming is not None:
            raise WarmingUpError(f"I'm warming up ({warming}). Please try again then.")
        async with self.service.admit() as ahead:
            await interaction.response.defer(thinking=True)
            await self._queue_notice(interaction, ahead)
            async with asyncio.timeout(self.settings.request_timeout_s):
                yield

    async def _queue_notice(self, interaction: discord.Interaction, ahead: int) -> None:
        """Tell a user who will wait a while where they stand."""
        if ahead >= self.settings.queue_notice_after:
            noun = "request" if ahead == 1 else "requests"
            await interaction.edit_original_response(
                content=f"⏳ {ahead} {noun} ahead of you; your result will appear here."
            )


def _numbered(position: int, filename: str) -> str:
    """How a compared image is named in the reply: its position and file name."""
    return f"#{position} {filename}"


def compare_embed(first: str, ranking: Ranking, info: ModelInfo | None, elapsed_s: float) -> discord.Embed:
    """Images ranked by cosine similarity to the first one."""
    embed = discord.Embed(title=f"Most like {escape(first, 100)}: {escape(ranking.best.label, 100)}", colour=COLOUR)
    embed.description = "\n".join(
        f"`{place:>2}.` **{escape(score.label)}** · cos {score.cosine:.4f}\n`{bar(cosine_fraction(score.cosine))}`"
        for place, score in enumerate(ranking.scores, 1)
    )
    embed.set_footer(text=footer(info, elapsed_s))
    return embed


async def setup(bot: ClipBot) -> None:
    await bot.add_cog(ClipCommands(bot))
