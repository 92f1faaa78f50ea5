"""`/help` and `/about`: how to use the bot, and what answers, how fast, storing what.

Both reply at once and privately (ephemeral): nothing here waits for the model.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.replies import COLOUR

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.discord.client import ClipBot

#: What clipbot keeps, in words for users (README "Privacy" says the same).
STORED = (
    "Images (and clips) are downloaded for one answer and never saved. Stored in the bot's database: "
    "label presets (yours and your server's, `/labels`) and your 10 latest label sets per "
    "server, to offer them again. Label embeddings are kept in memory, not linked to you. "
    "The operator's log has one line per request: your user id, the command, counts and "
    "time, never your labels or images. `/forget-me` deletes your presets and label sets "
    "at once; for log lines, ask the bot's operator. Image search (`/index`, opt-in per "
    "channel, with its threads and forum posts): vectors of posted images with message, "
    "channel, server and author ids (no image, no link); deleting a message deletes its "
    "entries, and `/index forget-me` (or "
    "`/forget-me`) deletes every image you posted (if the index is unreachable, it says so and "
    "the erasure runs when it is back). A server that removes the bot, or deletes an indexed "
    "channel, loses its data at once, or at the bot's next start if it was offline. "
    "`/autotag`: a channel's labels and mode only."
)


def fair_use(settings: Settings) -> str:
    """The per-person limits (`bot.discord.admission`), in words, as this bot is configured."""
    parts = []
    if settings.user_cooldown_s > 0:
        burst, cooldown = settings.user_burst, settings.user_cooldown_s
        parts.append(f"{burst} requests in quick succession, then one every {cooldown:g} s")
    if settings.user_max_in_flight > 0:
        noun = "request" if settings.user_max_in_flight == 1 else "requests"
        parts.append(f"at most {settings.user_max_in_flight} of your {noun} at once")
    noun = "image decodes" if settings.decodes_per_user == 1 else "images decode"
    parts.append(f"{settings.decodes_per_user} of your {noun} at a time (each within {settings.decode_timeout_s:g} s)")
    return "Per person, server managers included: " + "; ".join(parts) + "."


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


class InfoCommands(commands.Cog):
    """`/help` and `/about`."""

    def __init__(self, bot: ClipBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="How to use the CLIP bot, with examples and limits")
    async def help(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=self.help_embed(), ephemeral=True)

    @app_commands.command(name="about", description="Which model answers, on what device, how fast, storing what")
    async def about(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=self.about_embed(), ephemeral=True)

    def help_embed(self) -> discord.Embed:
        s = self.bot.settings
        template = s.clip_default_template
        embed = discord.Embed(
            title="CLIP bot: zero-shot image classification with your own labels",
            colour=COLOUR,
            description=(
                "CLIP compares pictures and text in one space: give it an image and any labels, "
                "and it ranks the labels; give it phrases, and it ranks how alike they are."
            ),
        )
        embed.add_field(
            name="/classify image labels [template]",
            value=(
                "`/classify image:<photo> labels:cat, dog, fox`\n"
                f"Ranks {s.min_labels} to {s.max_labels} comma-separated labels by probability, with the "
                f'cosine for each. Labels go into the template "{template}"; give your own with `{{}}` '
                "(e.g. `a drawing of a {}`) or `none` to use labels as they are."
            ),
            inline=False,
        )
        embed.add_field(
            name="/similar text others [heatmap]",
            value=(
                "`/similar text:hello world others:globe, cat, dog`\n"
                f"Ranks up to {s.max_labels} phrases by cosine similarity to yours. With three or more "
                "phrases in all, `heatmap:True` adds a picture of every pair's similarity."
            ),
            inline=False,
        )
        embed.add_field(
            name="/compare image other [other2 … other9]",
            value=(
                "`/compare image:<a> other:<b> other2:<c>`\n"
                "Ranks up to 9 images by how alike CLIP finds them to the first."
            ),
            inline=False,
        )
        embed.add_field(
            name="/labels save · list · show · delete, /forget-me",
            value=(
                "`/labels save name:animals labels:cat, dog, fox` then `/classify labels:@animals, horse`.\n"
                "Personal presets are yours anywhere; server presets (`scope:server`, Manage Server) are "
                "everyone's there. `/forget-me` deletes what is stored about you, your images in the "
                "image index included (if it is unreachable, it says so: the erasure runs when it is back)."
            ),
            inline=False,
        )
        embed.add_field(
            name="/search, Find similar images, /index",
            value=(
                "`/search text:a red car` or `/search image:<photo>`: up to 10 images posted in this server's "
                "indexed channels, in one private gallery with each one's link, channel, author, date and score, "
                "only where you can look: channels you can read, and private threads you are in (or moderate). "
                "`/index add channel:#photos repost:True` (Manage Server) indexes a channel's images and its "
                "threads' (a forum or media channel: its posts') and replies to a near-duplicate of an image "
                "already indexed; `/index repost` turns that on or off."
            ),
            inline=False,
        )
        embed.add_field(
            name="/autotag add · remove · list (Manage Server)",
            value=(
                "`/autotag add channel:#pets labels:🐱 cat, 🐶 dog`\n"
                "New images in that channel get the winning label's emoji (`mode:react`) or one quiet "
                f"reply (`mode:reply`), when it is at least `min_probability` sure; at most "
                f"{s.autotag_per_minute} images a minute per channel."
            ),
            inline=False,
        )
        embed.add_field(
            name="Limits",
            value=(
                f"Images: PNG, JPEG, GIF, WebP, BMP, TIFF, AVIF or HEIC, at most {s.max_image_bytes / 2**20:g} MiB and "
                f"{s.max_image_pixels / 1e6:g} megapixels. Text longer than CLIP's 77 tokens "
                "(roughly 50 to 60 English words) is cut, and the reply says so.\n" + clips_line(s) + "\n" + fair_use(s)
            ),
            inline=False,
        )
        embed.add_field(
            name="Tips",
            value=(
                "Labels that describe what is in the picture work best (`a red car`, not `red`). "
                "Try templates such as `a photo of a {}`, `a screenshot of {}` or `art in the style of {}`. "
                "Scores are relative to the labels you give: add a `something else` label to catch misses. "
                "Use the bot in servers, in DMs with it, or install it to your account to use it anywhere."
            ),
            inline=False,
        )
        embed.set_footer(text="/about: model, device, speed and what is stored")
        return embed

    def about_embed(self) -> discord.Embed:
        bot = self.bot
        info = bot.service.model_info
        embed = discord.Embed(title="About this CLIP bot", colour=COLOUR)
        if info is None:
            model = f"{bot.settings.model_label}, still loading"
        else:
            runtime = f", {bot.service.runtime}" if bot.service.runtime else ""
            model = (
                f"{info.model} on {info.device}{runtime} "
                f"(resolution {info.resolution} px; loaded in {info.load_s:.1f} s)"
            )
        embed.add_field(name="Model", value=model, inline=False)
        embed.add_field(
            name="Versions",
            value=(
                f"clipbot {_version('clipbot')} · Roboflow Inference {_version('inference')} · "
                f"discord.py {discord.__version__} · Python {platform.python_version()}"
            ),
            inline=False,
        )
        stats = bot.stats
        lines = [f"Up for {_duration(stats.uptime_s)}."]
        for command in stats.commands:
            latency = stats.latency(command)
            if latency is not None:
                lines.append(
                    f"/{command}: {latency.answers} answers, median {latency.median_s:.2f} s, p95 {latency.p95_s:.2f} s"
                )
        if len(lines) == 1:
            lines.append("No answers served yet.")
        embed.add_field(name="Since start", value="\n".join(lines), inline=False)
        embed.add_field(name="Clips and animated images", value=clips_line(bot.settings), inline=False)
        embed.add_field(name="Fair use", value=fair_use(bot.settings), inline=False)
        embed.add_field(name="What is stored", value=STORED, inline=False)
        return embed


def clips_line(s: Settings) -> str:
    """What the bot makes of a clip or an animation, and its bounds (`bot.engine.frames`)."""
    return (
        f"Clips (MP4, WebM, MOV) and animated GIF, WebP or APNG: up to {s.clip_frames} frames spread over "
        f"the length, averaged; the reply says how many. At most {s.clip_max_duration_s / 60:g} min "
        "and the same size limits; only those frames are decoded, nothing is kept."
    )


async def setup(bot: ClipBot) -> None:
    await bot.add_cog(InfoCommands(bot))
