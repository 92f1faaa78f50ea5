"""Embeds for replies: ranked labels with text bars, escaped user text.

Every reply fits Discord's embed limits by construction, whatever the slash
options accept: user text is made inert first (`escape`), then cut to a budget
measured on the escaped text in UTF-16 code units, as Discord counts. With many
long labels each is shown shorter; up to 25 labels (the slash commands' maximum),
no row is ever dropped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import discord

from bot.labels import ENSEMBLE, ENSEMBLE_TEMPLATES, clean_text
from bot.render import ZWSP, bar, cosine_fraction, fit, inline_code, percent, plain, utf16_len
from bot.service import ModelInfo, Ranking

__all__ = ["classify_embed", "error_text", "escape", "inline_code", "similar_embed"]

#: Discord's embed limits (resources/message, "Embed Limits"), in UTF-16 code units.
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
TOTAL_LIMIT = 6000
#: Longest a label is shown in a ranked row (the model saw it whole, or as the reply says).
DISPLAY_CHARS = 80
#: Shortest a label is shown in a ranked row (below it, rows give way to "… and N more").
MIN_SHOWN = 12
#: Longest label or phrase shown in the title, and in the "Truncated" note.
TITLE_CHARS = 200
NOTE_CHARS = 40
#: Longest template shown in the footer.
TEMPLATE_CHARS = 400
COLOUR = discord.Colour.blurple()

#: After these a zero-width space stops Discord from reading a mention (`@everyone`, `<@id>`,
#: `<@&id>`), a channel, emoji, timestamp or command tag (`<#id>`, `<:x:id>`, `<t:1:R>`,
#: `</x:id>`) or a bare link (`https://`).
_DEFUSE = re.compile(r"[@<]|:(?=//)")


def escape(text: str, limit: int = DISPLAY_CHARS) -> str:
    """User text made inert, then fitted to `limit` UTF-16 units (with `…` where cut).

    Invisible and bidi control characters go first (`clean_text`), then markdown is
    escaped (links too) and mentions, tags and links are defused; only then is the
    text cut, between whole escapes, so the limit holds for what is actually sent.
    """
    cleaned = _clean(text)
    # A cut at `limit` shows at most `limit` characters of the cleaned text (escaping only
    # adds), so escaping the rest of a long label is wasted work (BENCHMARKS.md, "What the
    # design rests on") unless a masked link, which escape_markdown sees across the whole
    # text, starts here.
    keep = limit + 2
    if len(cleaned) > keep:
        link = _MASKED_LINK.search(cleaned)
        if link is None or link.start() >= keep:
            cleaned = cleaned[:keep]
    return fit(_inert(cleaned), limit)


#: `clean_text`, remembered: one reply shows the same label several times.
_clean = functools.lru_cache(maxsize=1024)(clean_text)
#: What `discord.utils.escape_markdown` treats as a masked link (it escapes the `[`).
_MASKED_LINK = re.compile(r"\[.+\]\(.+\)")


@functools.lru_cache(maxsize=1024)
def _inert(cleaned: str) -> str:
    """Markdown escaped, mentions, tags and links defused (before any cut)."""
    escaped = discord.utils.escape_markdown(cleaned, ignore_links=False)
    return _DEFUSE.sub(lambda m: m.group() + ZWSP, escaped)


def footer(info: ModelInfo | None, elapsed_s: float, extra: str = "") -> str:
    """Model, device and time; footers show plain text (no markdown, no mentions) so nothing is escaped."""
    model = f"{info.model} · {info.device}" if info else "CLIP"
    text = f"{model} · {elapsed_s:.2f} s"
    return plain(f"{text} · {extra}" if extra else text, FOOTER_LIMIT)


def frames_note(ranking: Ranking, position: int = 0) -> str:
    """"from 8 frames" for a clip or an animation (its `position` in the request); "" for a still."""
    frames = ranking.frames[position] if position < len(ranking.frames) else 1
    return f"from {frames} frames" if frames > 1 else ""


def classify_embed(
    ranking: Ranking, info: ModelInfo | None, elapsed_s: float, thumbnail_url: str | None
) -> discord.Embed:
    """Labels ranked by zero-shot probability, with cosine and a bar each."""
    prefix = "Looks like: "
    embed = discord.Embed(
        title=prefix + escape(ranking.best.label, min(TITLE_CHARS, TITLE_LIMIT - utf16_len(prefix))),
        colour=COLOUR,
    )
    if thumbnail_url:
        embed.set_thumbnail(url=thumbnail_url)
    _truncation_note(embed, ranking)
    if ranking.template == ENSEMBLE:
        shown = f"ensemble of {len(ENSEMBLE_TEMPLATES)} templates"
    elif ranking.template:
        shown = f'template "{plain(ranking.template, TEMPLATE_CHARS)}"'
    else:
        shown = "no template"
    frames = frames_note(ranking)
    embed.set_footer(text=footer(info, elapsed_s, f"{shown} · {frames}" if frames else shown))

    def row(place: int, label: str, cap: int, compact: bool) -> str:
        score = ranking.scores[place - 1]
        probability = score.probability or 0.0
        head = f"`{place:>2}.` **{escape(label, cap)}** · {percent(probability)}"
        if compact:
            return f"{head} · cos {score.cosine:.4f}"
        return f"{head}\n`{bar(probability)}` cos {score.cosine:.4f}"

    embed.description = _rows(embed, [s.label for s in ranking.scores], row)
    return embed


def similar_embed(subject: str, ranking: Ranking, info: ModelInfo | None, elapsed_s: float) -> discord.Embed:
    """Phrases ranked by cosine similarity to the subject (a pair if just one)."""
    embed = discord.Embed(colour=COLOUR)
    _truncation_note(embed, ranking)
    embed.set_footer(text=footer(info, elapsed_s))
    if len(ranking.scores) == 1:
        score = ranking.best
        embed.title = "Phrase similarity"
        embed.description = (
            f"**{escape(subject)}** ↔ **{escape(score.label)}**\n"
            f"`{bar(cosine_fraction(score.cosine))}` cosine **{score.cosine:.4f}**"
        )
        return embed
    embed.title = f"Closest to \u201c{escape(subject, min(TITLE_CHARS, TITLE_LIMIT - 13))}\u201d"

    def row(place: int, label: str, cap: int, compact: bool) -> str:
        cosine = ranking.scores[place - 1].cosine
        head = f"`{place:>2}.` **{escape(label, cap)}** · cos {cosine:.4f}"
        return head if compact else f"{head}\n`{bar(cosine_fraction(cosine))}`"

    embed.description = _rows(embed, [s.label for s in ranking.scores], row)
    return embed


def embed_size(embed: discord.Embed) -> int:
    """What Discord counts towards its 6000 total: every text an embed shows, in UTF-16 units."""
    texts = [embed.title, embed.description, embed.footer.text, embed.author.name]
    texts += [text for f in embed.fields for text in (f.name, f.value)]
    return sum(utf16_len(text) for text in texts if text)


def _rows(embed: discord.Embed, labels: Sequence[str], row: Callable[[int, str, int, bool], str]) -> str:
    """The ranked rows, each label shown at most as long as the budget left allows.

    The description gets what title, fields and footer leave of the 6000 total (at most
    4096); each row gets an equal share of it for its label, so with many long labels each
    is shown shorter and none is dropped (25 rows always leave 80 units a label). Only with
    more rows than that (MAX_LABELS up to 100) do rows lose their bar (`compact`), and if a
    label would still get fewer than `MIN_SHOWN` units, the last rows become "… and N more".
    """
    embed.description = None
    budget = min(DESCRIPTION_LIMIT, TOTAL_LIMIT - embed_size(embed))
    count = len(labels)
    for compact in (False, True):
        overhead = utf16_len("\n".join(row(place, "", 0, compact) for place in range(1, count + 1)))
        cap = min(DISPLAY_CHARS, (budget - overhead) // count)
        if cap >= MIN_SHOWN:  # every row fits by construction: `escape` keeps to `cap`
            return "\n".join(row(place, label, cap, compact) for place, label in enumerate(labels, 1))
    text = ""
    for place, label in enumerate(labels, 1):
        line = row(place, label, MIN_SHOWN, True)
        longer = f"{text}\n{line}" if text else line
        rest = count - place
        if utf16_len(longer + (f"\n… and {rest} more" if rest else "")) > budget:
            return f"{text}\n… and {rest + 1} more"
        text = longer
    return text


def _truncation_note(embed: discord.Embed, ranking: Ranking) -> None:
    """Which labels CLIP did not see as typed: cut to its 77 tokens, or used without the template."""
    lines = []
    cut = [escape(label, NOTE_CHARS) for label in ranking.truncated]
    if ranking.subject_truncated:
        cut.insert(0, "the phrase")
    dropped = [escape(label, NOTE_CHARS) for label in ranking.template_dropped if label not in ranking.truncated]
    room = FIELD_VALUE_LIMIT - 1  # the line break between the two sentences
    if cut:
        lines.append(_listing("Longer than CLIP's 77-token limit, so only the start was used: ", cut, room // 2))
    if dropped:
        lines.append(_listing("Too long with the template, so used without it: ", dropped, room // 2))
    if lines:
        embed.add_field(name="Truncated", value="\n".join(lines), inline=False)


def _listing(lead: str, items: Sequence[str], limit: int) -> str:
    """`lead` and as many items as fit in `limit` UTF-16 units, then "and N more"."""
    text = lead + items[0]
    for i in range(1, len(items)):
        after = len(items) - i - 1
        candidate = f"{text}, {items[i]}"
        if utf16_len(candidate + (f" and {after} more" if after else "")) > limit:
            return f"{text} and {len(items) - i} more"
        text = candidate
    return text


def error_text(message: str) -> str:
    """The one line a user sees when their request cannot be served."""
    return f"⚠️ {message}"


def index_erasure_line(done: bool) -> str:
    """What became of a person's images in the image index (`SearchService.forget_author`)."""
    if done:
        return "Every image you posted was deleted from the image search index, in every server."
    return (
        "The image search index cannot be reached right now: your erasure from it is recorded and runs "
        "as soon as it is back; meanwhile none of your images is indexed."
    )
