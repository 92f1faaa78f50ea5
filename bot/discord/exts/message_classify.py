"""The "Classify image" message command: classify images already in the chat.

Right-click (or long-press) a message → Apps → Classify image. A modal asks for
the labels (prefilled with the person's last label set here) and an optional
template; each of the message's images (attachments, and image links Discord
embedded, fetched through its media proxy only) is classified, up to
`MAX_IMAGES`, in one reply that links to the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands, ui
from discord.ext import commands

from bot.discord.interactions import (
    MessageImage,
    admit,
    answered,
    check_size,
    download,
    message_images,
    remember_labels,
    reserve_downloads,
    resolver,
    template_for,
    working,
)
from bot.discord.replies import COLOUR, error_text, escape, footer, frames_note
from bot.errors import ImageError, LabelError, UserFacingError
from bot.label_sets import expand_presets
from bot.labels import ENSEMBLE, ENSEMBLE_TEMPLATES
from bot.render import bar, percent
from bot.service import Ranking

if TYPE_CHECKING:
    from bot.discord.client import ClipBot

log = logging.getLogger(__name__)

COMMAND = "Classify image"
#: Images classified from one message (a reply holds one embed per image).
MAX_IMAGES = 4
#: Labels shown per image in a multi-image reply.
TOP_LABELS = 3


class ClassifyModal(ui.Modal):
    """Labels and template for the images of one message.

    Open up to 15 minutes, so it holds only what the answer needs: the link to the message
    (its ids) and its images' sources, not the message (its text, author and embeds).
    """

    def __init__(self, cog: MessageClassify, jump_url: str, sources: list[MessageImage], prefill: str):
        super().__init__(title="Classify image", timeout=900)
        self.cog = cog
        self.jump_url = jump_url
        self.sources = sources
        self.labels: ui.TextInput[ClassifyModal] = ui.TextInput(
            style=discord.TextStyle.paragraph,
            default=prefill[:4000] or None,
            placeholder="cat, dog, fox (or @preset)",
            max_length=4000,
        )
        self.template: ui.TextInput[ClassifyModal] = ui.TextInput(
            style=discord.TextStyle.short,
            required=False,
            placeholder='a photo of a {} · "none" · "ensemble"',
            max_length=300,
        )
        self.add_item(
            ui.Label(text="Labels", description="Comma-separated; @name uses a preset", component=self.labels)
        )
        self.add_item(ui.Label(text="Template (optional)", component=self.template))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.cog.bot.track(interaction)
        admit(self.cog.bot, interaction)  # a form's submission is a request of its own
        await self.cog.classify_message(
            interaction, self.jump_url, self.sources, self.labels.value, self.template.value or None
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await self.cog.bot.report_failure(interaction, error, "classify-image")


class MessageClassify(commands.Cog):
    """The "Classify image" message command."""

    def __init__(self, bot: ClipBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=COMMAND, callback=self.open)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def open(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Answer at once: the modal, or why there is nothing to classify."""
        sources = message_images(message)
        if not sources:
            raise ImageError("That message has no image I can classify (attachments or image links).")
        recent = await self.bot.presets.recent(interaction.user.id, interaction.guild_id, limit=1)
        if recent:
            prefill = ", ".join(recent[0])
        else:  # the server's default preset, if it set one
            _, preset = await self.bot.presets.guild_defaults(interaction.guild_id)
            prefill = f"@{preset}" if preset else ""
        await interaction.response.send_modal(ClassifyModal(self, message.jump_url, sources, prefill))

    async def classify_message(
        self,
        interaction: discord.Interaction,
        jump_url: str,
        sources: list[MessageImage],
        labels: str,
        template: str | None,
    ) -> None:
        started = time.perf_counter()
        bot = self.bot
        service = bot.service
        items = await expand_presets(labels, resolver(bot, interaction))
        label_list, prompt_template = service.parse_classify(items, await template_for(bot, interaction, template))
        chosen = sources[:MAX_IMAGES]
        for source in chosen:
            check_size(source.size, bot.settings.max_image_bytes, source.name)

        async def one(source: MessageImage) -> Ranking | UserFacingError:
            try:
                data = await download(bot, source.url, source.size)
                return await service.classify(
                    data, label_list, prompt_template, thumbnail=False, requester=interaction.user.id
                )
            except (ImageError, LabelError) as exc:  # this image's answer; the others go on
                return exc

        async with working(bot, interaction):
            await reserve_downloads(bot, [source.size for source in chosen])
            results = await asyncio.gather(*(one(source) for source in chosen))
        elapsed = time.perf_counter() - started
        embeds = message_embeds(jump_url, chosen, results, len(sources), prompt_template)
        embeds[-1].set_footer(text=footer(service.model_info, elapsed, _template_note(prompt_template)))
        await interaction.edit_original_response(content=None, embeds=embeds)
        answered(bot, "classify-image", elapsed)
        remember_labels(bot, interaction, label_list)
        log.info("Classify image user=%s images=%d %.2fs", interaction.user.id, len(chosen), elapsed)


def _template_note(template: str | None) -> str:
    if template == ENSEMBLE:
        return f"ensemble of {len(ENSEMBLE_TEMPLATES)} templates"
    return f'template "{escape(template, 100)}"' if template else "no template"


def message_embeds(
    jump_url: str,
    sources: list[MessageImage],
    results: list[Ranking | UserFacingError],
    total: int,
    template: str | None,
) -> list[discord.Embed]:
    """One compact embed per image, the first linking to the message (well inside 6000 in all)."""
    embeds = []
    for number, (source, result) in enumerate(zip(sources, results, strict=True), 1):
        name = escape(source.name, 60)
        embed = discord.Embed(colour=COLOUR)
        if isinstance(result, UserFacingError):
            embed.title = f"{number}. {name}"
            embed.description = error_text(str(result))  # our own line (file names already made inert)
        else:
            embed.title = f"{number}. Looks like: {escape(result.best.label, 120)}"
            rows = [f"_{frames}_"] if (frames := frames_note(result)) else []
            for score in result.scores[:TOP_LABELS]:
                probability = score.probability or 0.0
                rows.append(f"**{escape(score.label, 60)}** · {percent(probability)} `{bar(probability, 8)}`")
            embed.description = "\n".join(rows)
        embeds.append(embed)
    first = embeds[0]
    first.url = jump_url
    more = f" (the first {len(sources)} of {total})" if total > len(sources) else ""
    first.description = f"[The message]({jump_url}) · {len(sources)} image(s){more}\n{first.description}"
    return embeds


async def setup(bot: ClipBot) -> None:
    await bot.add_cog(MessageClassify(bot))
