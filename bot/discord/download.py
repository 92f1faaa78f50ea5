"""Bounded download of an attachment: size and time capped, one-line errors.

Redirects are never followed: `check_trusted` vouches for the first URL only, and a
trusted host's 3xx could point anywhere (Discord's CDN serves attachments directly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from bot.errors import ImageError, too_large_message

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: What the user sees when the host answers anything but the image (a redirect, an error status).
NOT_DOWNLOADED = "Could not download the image; try uploading it again."


def check_trusted(url: str, hosts: Sequence[str]) -> None:
    """Refuse any URL that is not on Discord's CDN or media proxy (`TRUSTED_MEDIA_HOSTS`).

    Attachments and `proxy_url`s come from Discord; a link a user typed or embedded
    never reaches here, and this makes sure of it (no request forgery).
    """
    parsed = urlsplit(url)
    if parsed.scheme not in ("https", "http") or parsed.netloc.lower() not in {h.lower() for h in hosts}:
        raise ImageError("That image is not on Discord's servers, so I won't fetch it.")
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ImageError("That image is not on Discord's servers, so I won't fetch it.")


async def fetch_bytes(session: aiohttp.ClientSession, url: str, *, max_bytes: int, timeout_s: float) -> bytes:
    """The body at `url`, refusing more than `max_bytes` or more than `timeout_s`.

    The declared size is checked by the caller before calling; this also stops
    a body that turns out larger than declared, without buffering it all.
    """
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    # The status (a redirect's target even more so) is the host's business, not the user's.
                    log.info("Image download refused: HTTP %s from %s", response.status, response.url.host)
                    raise ImageError(NOT_DOWNLOADED)
                if response.content_length is not None and response.content_length > max_bytes:
                    raise ImageError(too_large_message(response.content_length, max_bytes))
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise ImageError(too_large_message(None, max_bytes))
                return bytes(body)
    except TimeoutError:
        raise ImageError(
            f"Downloading the image took longer than {timeout_s:g} s; try again or use a smaller file."
        ) from None
    except aiohttp.ClientError:
        raise ImageError("Could not download the image (connection failed); try again.") from None
