"""`/classify` and `/similar`: validate, defer, run the service, reply once.

Cheap checks (labels, template, attachment size and type, the queue) answer
at once and ephemerally, before deferring; everything slow happens after the
deferral ("thinking"), and the final answer replaces that message.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.interactions import (
    answered,
    check_attachment,
    download,
    remember_labels,
    reserve_downloads,
    resolver,
    template_for,
    working,
)
from bot.discord.replies import COLOUR, classify_embed, escape, footer, frames_note, similar_embed
from bot.heatmap import render_heatmap
from bot.label_sets import expand_presets, suggestions
from bot.render import bar, cosine_fraction
from bot.service import Ranking

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


class ClipCommands(commands.Cog):
    """/classify, /similar and /compare."""

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
    async def classify(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        labels: app_commands.Range[str, 1, 4000],
        template: app_commands.Range[str, 0, 300] | None = None,
    ) -> None:
        started = time.perf_counter()
        bot = self.bot
        items = await expand_presets(labels, resolver(bot, interaction))
        label_list, prompt_template = self.service.parse_classify(items, await template_for(bot, interaction, template))
        check_attachment(image, self.settings.max_image_bytes)
        async with working(bot, interaction):
            download_started = time.perf_counter()
            data = await download(bot, image.url, image.size)
            self.bot.metrics.request_seconds.labels("classify", "download").observe(
                time.perf_counter() - download_started
            )
            ranking = await self.service.classify(data, label_list, prompt_template, requester=interaction.user.id)
        elapsed = time.perf_counter() - started
        # The picture travels with the reply: the upload's own URL is signed and expires.
        files = [discord.File(io.BytesIO(ranking.thumbnail), filename=THUMBNAIL_FILE)] if ranking.thumbnail else []
        thumbnail_url = f"attachment://{THUMBNAIL_FILE}" if files else None
        embed = classify_embed(ranking, self.service.model_info, elapsed, thumbnail_url)
        await interaction.edit_original_response(content=None, embed=embed, attachments=files)
        answered(bot, "classify", elapsed)
        remember_labels(bot, interaction, label_list)
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
        async with working(self.bot, interaction):
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
        answered(self.bot, "similar", elapsed)
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
            check_attachment(attachment, self.settings.max_image_bytes)
        async with working(self.bot, interaction):
            await reserve_downloads(self.bot, [attachment.size for attachment in attachments])
            data = await asyncio.gather(
                *(download(self.bot, attachment.url, attachment.size) for attachment in attachments)
            )
            names = [_numbered(i, a.filename) for i, a in enumerate(attachments, 1)]
            ranking = await self.service.compare_images(data, names, requester=interaction.user.id)
        elapsed = time.perf_counter() - started
        embed = compare_embed(names, ranking, self.service.model_info, elapsed)
        await interaction.edit_original_response(content=None, embed=embed)
        answered(self.bot, "compare", elapsed)
        log.info("/compare user=%s images=%d %.2fs", interaction.user.id, len(attachments), elapsed)


def _numbered(position: int, filename: str) -> str:
    """How a compared image is named in the reply: its position and file name."""
    return f"#{position} {filename}"


def compare_embed(names: list[str], ranking: Ranking, info: ModelInfo | None, elapsed_s: float) -> discord.Embed:
    """Images ranked by cosine similarity to the first one; a clip's frames said beside it."""
    first = names[0]
    embed = discord.Embed(title=f"Most like {escape(first, 100)}: {escape(ranking.best.label, 100)}", colour=COLOUR)
    position = {name: index for index, name in enumerate(names)}

    def frames(name: str) -> str:
        note = frames_note(ranking, position.get(name, len(names)))
        return f" · {note}" if note else ""

    embed.description = "\n".join(
        f"`{place:>2}.` **{escape(score.label)}**{frames(score.label)} · cos {score.cosine:.4f}\n"
        f"`{bar(cosine_fraction(score.cosine))}`"
        for place, score in enumerate(ranking.scores, 1)
    )
    embed.set_footer(text=footer(info, elapsed_s, f"{escape(first, 60)}{frames(first)}" if frames(first) else ""))
    return embed


async def setup(bot: ClipBot) -> None:
    await bot.add_cog(ClipCommands(bot))
