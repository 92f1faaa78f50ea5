"""Embeds for replies: ranked labels with text bars, escaped user text."""

from __future__ import annotations

import discord

from bot.engine import ModelInfo
from bot.render import bar, cosine_fraction, percent
from bot.service import Ranking

#: Labels longer than this are shortened in the reply (the model saw them whole).
DISPLAY_CHARS = 80
COLOUR = discord.Colour.blurple()


def escape(text: str, limit: int = DISPLAY_CHARS) -> str:
    """User text made inert: shortened, markdown escaped, mentions defused."""
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    # A zero-width space after every "@" defuses @everyone, <@id> and <@&id> alike.
    return discord.utils.escape_markdown(text).replace("@", "@\u200b")


def footer(info: ModelInfo | None, elapsed_s: float, extra: str = "") -> str:
    model = f"{info.model} · {info.device}" if info else "CLIP"
    text = f"{model} · {elapsed_s:.2f} s"
    return f"{text} · {extra}" if extra else text


def classify_embed(
    ranking: Ranking, info: ModelInfo | None, elapsed_s: float, thumbnail_url: str | None
) -> discord.Embed:
    """Labels ranked by zero-shot probability, with cosine and a bar each."""
    best = ranking.best
    embed = discord.Embed(
        title=f"Looks like: {escape(best.label, 200)}",
        colour=COLOUR,
    )
    lines = []
    for place, score in enumerate(ranking.scores, 1):
        probability = score.probability or 0.0
        lines.append(
            f"`{place:>2}.` **{escape(score.label)}** · {percent(probability)}\n"
            f"`{bar(probability)}` cos {score.cosine:.4f}"
        )
    embed.description = "\n".join(lines)
    if thumbnail_url:
        embed.set_thumbnail(url=thumbnail_url)
    _truncation_note(embed, ranking)
    template = f'template "{ranking.template}"' if ranking.template else "no template"
    embed.set_footer(text=footer(info, elapsed_s, template))
    return embed


def similar_embed(subject: str, ranking: Ranking, info: ModelInfo | None, elapsed_s: float) -> discord.Embed:
    """Phrases ranked by cosine similarity to the subject (a pair if just one)."""
    embed = discord.Embed(colour=COLOUR)
    if len(ranking.scores) == 1:
        score = ranking.best
        embed.title = "Phrase similarity"
        embed.description = (
            f"**{escape(subject)}** ↔ **{escape(score.label)}**\n"
            f"`{bar(cosine_fraction(score.cosine))}` cosine **{score.cosine:.4f}**"
        )
    else:
        embed.title = f"Closest to \u201c{escape(subject, 200)}\u201d"
        embed.description = "\n".join(
            f"`{place:>2}.` **{escape(score.label)}** · cos {score.cosine:.4f}\n`{bar(cosine_fraction(score.cosine))}`"
            for place, score in enumerate(ranking.scores, 1)
        )
    _truncation_note(embed, ranking)
    embed.set_footer(text=footer(info, elapsed_s))
    return embed


def _truncation_note(embed: discord.Embed, ranking: Ranking) -> None:
    cut = [escape(label, 40) for label in ranking.truncated]
    if ranking.subject_truncated:
        cut.insert(0, "the phrase")
    if cut:
        embed.add_field(
            name="Truncated",
            value="Longer than CLIP's 77-token limit, so only the start was used: " + ", ".join(cut)[:900],
            inline=False,
        )


def error_text(message: str) -> str:
    """The one line a user sees when their request cannot be served."""
    return f"⚠️ {message}"
