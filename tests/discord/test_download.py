"""Downloads: only from the trusted hosts, and never onward through a redirect.

Two real HTTP servers on this machine: one is the trusted host (as `TRUSTED_MEDIA_HOSTS`
names the stand-in CDN in the end-to-end tests), the other is not trusted and would
hand out something else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from bot.discord.download import NOT_DOWNLOADED, check_trusted, fetch_bytes
from bot.errors import ImageError

INTERNAL = b"internal metadata service answer"


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"127.0.0.1:{port}"


@pytest_asyncio.fixture
async def hosts() -> AsyncIterator[tuple[str, str, list[str]]]:
    """(trusted host, untrusted host, paths the untrusted one was asked for)."""
    asked: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=INTERNAL, content_type="image/png")

    other = web.Application()
    other.router.add_get("/{tail:.*}", elsewhere)
    other_runner, other_host = await serve(other)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://{other_host}/latest/meta-data")

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG fine", content_type="image/png")

    trusted = web.Application()
    trusted.router.add_get("/attachments/redirected.png", redirect)
    trusted.router.add_get("/attachments/fine.png", image)
    trusted_runner, trusted_host = await serve(trusted)
    yield trusted_host, other_host, asked
    await trusted_runner.cleanup()
    await other_runner.cleanup()


async def test_a_trusted_hosts_redirect_is_not_followed(hosts: tuple[str, str, list[str]]) -> None:
    trusted, other, asked = hosts
    url = f"http://{trusted}/attachments/redirected.png"
    check_trusted(url, [trusted])  # the first hop is on the allow-list
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ImageError) as refused:
            await fetch_bytes(session, url, max_bytes=1 << 20, timeout_s=10)
        assert str(refused.value) == NOT_DOWNLOADED  # one generic line: no status, no address
        assert "302" not in str(refused.value) and other not in str(refused.value)
        assert asked == []  # the untrusted host was never asked
        # The trusted host's own files still download.
        assert await fetch_bytes(session, f"http://{trusted}/attachments/fine.png", max_bytes=1 << 20, timeout_s=10)


async def test_a_status_is_not_shown_to_the_user(hosts: tuple[str, str, list[str]]) -> None:
    trusted, _, _ = hosts
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ImageError) as refused:
            await fetch_bytes(session, f"http://{trusted}/attachments/gone.png", max_bytes=1 << 20, timeout_s=10)
    assert str(refused.value) == NOT_DOWNLOADED and "404" not in str(refused.value)
