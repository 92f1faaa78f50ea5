"""Search results as one Components V2 message: a media gallery of the images, then a line per result.

One private message holds up to 10 results (a media gallery shows 1 to 10 items), each
with its rank, score, channel, author, date and jump link. Nothing a member typed is
shown unescaped (the query goes through `escape`), and the message is sent with no
mentions allowed: `<#channel>` and `<@author>` render as names and ping nobody.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord
from discord import ui

from bot.discord.exts.search.backfill import indexed_images
from bot.discord.replies import COLOUR, escape
from bot.storage.vectors import Hit

#: A media gallery holds 1 to 10 items (components/reference.mdx, "Media Gallery").
MAX_RESULTS = 10
#: How much of the query the heading shows.
QUERY_CHARS = 100


def result_line(rank: int, hit: Hit, message: discord.Message) -> str:
    """One result: rank, score, where, who, when, and the jump link (no user text)."""
    ref = hit.ref
    where = f"<#{ref.channel_id}> · <@{ref.author_id}> · <t:{ref.posted_at}:d>"
    return f"`{rank:>2}.` score **{hit.score:.3f}** · {where} · [Jump to the message]({message.jump_url})"


def results_view(
    shown: Sequence[tuple[Hit, discord.Message]], query_text: str | None, elapsed_s: float
) -> ui.LayoutView:
    """The results as a gallery (fresh image URLs of the refetched messages) and a list under it."""
    shown = shown[:MAX_RESULTS]
    about = f" for \u201c{escape(query_text, QUERY_CHARS)}\u201d" if query_text else ""
    items = []
    for rank, (hit, message) in enumerate(shown, 1):
        image = next((i for i in indexed_images(message) if i.ref.key == hit.ref.key), None)
        if image is not None:
            items.append(discord.MediaGalleryItem(image.url, description=f"Result {rank}, score {hit.score:.3f}"))
    container: ui.Container[ui.LayoutView] = ui.Container(accent_colour=COLOUR)
    container.add_item(ui.TextDisplay(f"### {len(shown)} results{about}"))
    if items:
        container.add_item(ui.MediaGallery(*items))
    container.add_item(ui.Separator())
    lines = "\n".join(result_line(rank, hit, message) for rank, (hit, message) in enumerate(shown, 1))
    container.add_item(ui.TextDisplay(f"{lines}\n-# {elapsed_s:.1f} s · private: only you see this"))
    view = ui.LayoutView(timeout=None)
    view.add_item(container)
    return view
