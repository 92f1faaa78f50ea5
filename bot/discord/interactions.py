"""The request pipeline every extension shares, one place each: admission, the checks, the size check,
image extraction, the download, the queue and deferral (`working`), and the bookkeeping of
an answer (`answered`).

Extensions are thin adapters over the services and these functions; none imports another.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.discord.download import check_trusted, fetch_bytes
from bot.errors import ImageError, WarmingUpError, too_large_message
from bot.label_sets import Resolver
from bot.render import inline_code
from bot.storage.presets import Preset

if TYPE_CHECKING:
    from bot.discord.client import ClipBot

#: File names taken for images when Discord gives an attachment no content type.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif")
#: Clips taken as images are (a few frames each, `bot.engine.frames`): their media types, and
#: their file names when Discord gives no content type. The bytes decide what a file is.
CLIP_CONTENT_TYPES = ("video/mp4", "video/webm", "video/quicktime")
CLIP_EXTENSIONS = (".mp4", ".m4v", ".webm", ".mov")
#: Media types that say only "some bytes": what an upload gets when its name tells nothing (an
#: iPhone's HEIC renamed, a file without an extension). Such a file is judged by its bytes.
UNNAMED_CONTENT_TYPES = ("application/octet-stream", "binary/octet-stream")
#: Embed types whose image or thumbnail Discord serves through its media proxy.
IMAGE_EMBED_TYPES = ("image", "rich", "article", "link", "gifv")

#: A command only members with Manage Server may use (discord.py's check; the refusal is
#: `app_commands.MissingPermissions`, answered by the central error table).
managers_only = app_commands.checks.has_permissions(manage_guild=True)


# -- checks -----------------------------------------------------------------------------
def manages_server(interaction: discord.Interaction) -> bool:
    """The member has Manage Server here. Discord computes `permissions` for the channel, with
    every flag set for an administrator; in DMs there is no server, and so no manager."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def check_manages_server(interaction: discord.Interaction) -> None:
    """`managers_only` for a command where only some uses need Manage Server."""
    if not manages_server(interaction):
        raise app_commands.MissingPermissions(["manage_guild"])


def admit(bot: ClipBot, interaction: discord.Interaction) -> None:
    """The one admission point (`bot.discord.admission`): every command and form submission of
    a person counts against their rate and in-flight cap, held until this task ends; else a
    `RateLimitedError`. No exemption: Manage Server holders are limited like everyone."""
    bot.admission.admit(interaction.user.id, asyncio.current_task())


def check_size(size: int | None, limit: int, name: str | None = None) -> None:
    """Refuse an image by its declared size (None: not declared, checked while downloading)."""
    if size is not None and size > limit:
        message = too_large_message(size, limit)
        raise ImageError(f"{inline_code(name, 62)}: {message}" if name else message)


def check_attachment(image: discord.Attachment, limit: int) -> None:
    """Refuse by declared size and type, before downloading anything."""
    check_size(image.size, limit)
    content_type = media_type(image)
    if (
        content_type
        and not content_type.startswith("image/")
        and content_type not in CLIP_CONTENT_TYPES + UNNAMED_CONTENT_TYPES
    ):
        raise ImageError(
            f"{inline_code(image.filename, 62)} is {inline_code(content_type, 62)}, not an image "
            "(or an MP4, WebM or MOV clip)."
        )


def media_type(attachment: discord.Attachment) -> str:
    """The attachment's media type without parameters, lower case; "" when Discord gives none."""
    return (attachment.content_type or "").split(";")[0].strip().lower()


# -- images of a message ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MessageImage:
    """One image of a message: where Discord serves it, what to call it, and which it is."""

    url: str
    name: str
    #: Declared size in bytes (None for an embedded image: only the download tells).
    size: int | None = None
    #: The attachment's id, or 0 for an embedded image.
    attachment_id: int = 0
    #: Which embed of the message (-1 for an attachment).
    embed_index: int = -1


def message_images(message: discord.Message) -> list[MessageImage]:
    """The message's images: attachments (clips included), then images Discord embedded (its media proxy only).

    Never the link someone typed (`embed.url`, `image.url`): only what Discord serves.
    """
    found = []
    for attachment in message.attachments:
        content_type = media_type(attachment)
        if (
            content_type.startswith("image/")
            or content_type in CLIP_CONTENT_TYPES
            or attachment.filename.lower().endswith(IMAGE_EXTENSIONS + CLIP_EXTENSIONS)
        ):
            found.append(MessageImage(attachment.url, attachment.filename, attachment.size, attachment.id))
    for index, embed in enumerate(message.embeds):
        proxy = embed.image.proxy_url or embed.thumbnail.proxy_url
        if proxy and embed.type in IMAGE_EMBED_TYPES:
            found.append(MessageImage(proxy, f"embedded image {index + 1}", embed_index=index))
    return found


# -- the request ----------------------------------------------------------------------------
async def download(bot: ClipBot, url: str, size: int | None = None) -> bytes:
    """An image from Discord's CDN or media proxy (nothing else), within the size and time limits.

    First its share of the global download budget (`DOWNLOAD_BUDGET_MB`) is reserved, by the
    declared `size` (else the largest allowed); inside `working` it is held until the request
    ends, since the bytes live that long, elsewhere (indexing) until the download ends. A flood
    of large files waits its turn instead of filling memory.
    """
    settings = bot.settings
    check_trusted(url, settings.trusted_media_hosts)
    budget = bot.download_budget
    held = _request_downloads.get()
    if held is not None and held.prepaid:  # `reserve_downloads` took the request's share at once
        return await fetch_bytes(
            bot.http_session, url, max_bytes=settings.max_image_bytes, timeout_s=settings.download_timeout_s
        )
    taken = await budget.reserve(_declared(bot, size))
    if held is not None:
        held.taken += taken
    try:
        return await fetch_bytes(
            bot.http_session, url, max_bytes=settings.max_image_bytes, timeout_s=settings.download_timeout_s
        )
    finally:
        if held is None:
            budget.release(taken)


async def reserve_downloads(bot: ClipBot, sizes: list[int | None]) -> None:
    """Reserve a request's whole share of the download budget at once, before its several
    downloads start (inside `working`): a request holding part while waiting for the rest could
    wait for ever on itself or on another doing the same."""
    held = _request_downloads.get()
    assert held is not None and not held.taken, "once, inside `working`, before any download"
    held.taken = await bot.download_budget.reserve(sum(_declared(bot, size) for size in sizes))
    held.prepaid = True


def _declared(bot: ClipBot, size: int | None) -> int:
    """What a download may hold: its declared size, else (undeclared) the largest allowed."""
    limit = bot.settings.max_image_bytes
    return limit if size is None else min(size, limit)


@dataclass(slots=True)
class _Held:
    """The download budget one request holds, given back when its `working` block ends."""

    taken: int = 0
    prepaid: bool = False


_request_downloads: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("request_downloads", default=None)


@contextlib.asynccontextmanager
async def working(bot: ClipBot, interaction: discord.Interaction, *, ephemeral: bool = False) -> AsyncIterator[None]:
    """Take a place in the queue (or fail fast: busy), defer, and bound the time.

    The deferral ("thinking") is Discord's acknowledgement, due within 3 s; the block then
    has `REQUEST_TIMEOUT_S`, well inside the token's 15 minutes. Public answers (the CLIP
    commands) are refused while the model downloads and tell a waiting user their place;
    private ones (image search) wait for the model quietly.
    """
    service = bot.service
    if not ephemeral:
        warming = service.warming_up()
        if warming is not None:
            raise WarmingUpError(f"I'm warming up ({warming}). Please try again then.")
    held = _Held()
    token = _request_downloads.set(held)
    try:
        async with service.admit() as ahead:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
            if not ephemeral:
                await _queue_notice(bot, interaction, ahead)
            async with asyncio.timeout(bot.settings.request_timeout_s):
                yield
    finally:
        _request_downloads.reset(token)
        bot.download_budget.release(held.taken)


async def _queue_notice(bot: ClipBot, interaction: discord.Interaction, ahead: int) -> None:
    """Tell a user who will wait a while where they stand."""
    if ahead >= bot.settings.queue_notice_after:
        noun = "request" if ahead == 1 else "requests"
        notice = f"⏳ {ahead} {noun} ahead of you; your result will appear here."
        await interaction.edit_original_response(content=notice)


def answered(bot: ClipBot, command: str, elapsed: float) -> None:
    """Count an answer (for `/about` and `/metrics`)."""
    bot.stats.record(command, elapsed)
    bot.metrics.requests.labels(command, "answered").inc()
    bot.metrics.request_seconds.labels(command, "total").observe(elapsed)


# -- labels: presets, the server's template, recent label sets ----------------------------------
def resolver(bot: ClipBot, interaction: discord.Interaction) -> Resolver:
    """`@name` for this person, here (their presets, then the server's)."""
    store = bot.presets

    async def resolve(name: str) -> Preset | None:
        return await store.resolve(name, interaction.user.id, interaction.guild_id)

    return resolve


async def template_for(bot: ClipBot, interaction: discord.Interaction, template: str | None) -> str | None:
    """The template asked for, else this server's default (`/labels defaults`), else the bot's."""
    if template is not None and template.strip():
        return template
    server_template, _ = await bot.presets.guild_defaults(interaction.guild_id)
    return server_template


def remember_labels(bot: ClipBot, interaction: discord.Interaction, labels: list[str]) -> None:
    """Offer this label set again later (written in the background, never failing the request)."""
    bot.presets.remember(interaction.user.id, interaction.guild_id, labels)
