"""Run the production bot (`create_bot` + `serve`, as `python -m bot run` does)
against the local Discord stand-in, with the tiny trained CLIP."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from bot.discord.client import ClipBot, create_bot, serve
from scripts.shapes import render
from tests.conftest import make_settings
from tests.fakediscord.fixtures import cancel_discord_tasks, serving
from tests.fakediscord.records import InteractionRecord
from tests.fakediscord.server import FakeDiscord

HEARTBEAT_MS = 500
LOAD_HEARTBEAT_MS = 100
EPHEMERAL = 64


@pytest_asyncio.fixture(loop_scope="session")
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeDiscord]:
    """A fresh Discord stand-in per test, with discord.py pointed at it.

    Parametrize indirectly with a heartbeat interval in ms to change it. Late
    acknowledgements (over Discord's 3 s) fail as they would on Discord. At teardown
    the test fails if any request the bot sent was refused for breaking Discord's
    documented rules, unless the test called ``fake.expect_rejections()``.
    """
    interval = getattr(request, "param", HEARTBEAT_MS)
    async with serving(FakeDiscord(heartbeat_interval_ms=interval, ack_deadline=3.0)) as server:
        yield server


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, *, wait_model: bool = True, **overrides: Any) -> AsyncIterator[ClipBot]:
    """The production bot, logged in, commands synced and (unless told not to wait) the model loaded."""
    values: dict[str, Any] = {
        "discord_token": fake.token,
        "discord_guild_id": fake.guild_id,
        # The stand-in plays Discord's CDN and media proxy on its own address; nothing else is trusted.
        "trusted_media_hosts": (f"127.0.0.1:{fake.port}",),
    }
    values.update(overrides)
    bot = create_bot(make_settings(**values))
    # discord.py waits this long after the last GUILD_CREATE before on_ready (2 s by
    # default); shortened so each test does not sit out the wait.
    bot._connection.guild_ready_timeout = 0.05
    task = asyncio.create_task(serve(bot), name="clipbot")
    try:
        waits = [fake.wait_until_ready(15), fake.wait_for_sync(15), bot.wait_until_ready()]
        if wait_model:
            waits.append(bot.engine.wait_ready())
        ready = asyncio.gather(*waits)
        done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()
            raise RuntimeError("the bot stopped before it was ready")
        ready.result()
        yield bot
    finally:
        ready_task = getattr(bot._connection, "_ready_task", None)
        if ready_task is not None and not ready_task.done():
            ready_task.cancel()  # on_ready must not be dispatched into a closed client
        if not bot.is_closed():
            await bot.close()
        done, _ = await asyncio.wait({task}, timeout=10)
        if not done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await cancel_discord_tasks()
    # Only reached when the test body succeeded: a bot that died meanwhile (anything but
    # a clean close, which makes serve() return) fails the test with its own error.
    reraise_crash(task)


def reraise_crash(task: asyncio.Task[None]) -> None:
    """Raise the bot task's exception, if it ended with one (or never ended)."""
    if not task.done():
        raise RuntimeError("the bot did not stop within 10 s of bot.close()")
    if task.cancelled():
        raise RuntimeError("the bot task was cancelled instead of closing cleanly")
    exc = task.exception()
    if exc is not None:
        raise exc


def slow_down_images(bot: ClipBot, seconds: float) -> None:
    """Make each image batch take `seconds` longer, like a slow GPU or a busy CPU.

    The real model still computes every result; only the wait is added.
    """
    run_batch = bot.engine.backend.image_batcher._run_batch

    def slow(batch: list[np.ndarray]) -> list[np.ndarray]:
        time.sleep(seconds)
        return list(run_batch(batch))

    bot.engine.backend.image_batcher._run_batch = slow


def shape_png(label: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    render(label, np.random.default_rng(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def outcome(rec: InteractionRecord) -> tuple[str, dict[str, Any]] | None:
    """What the user ended up with: ("answer", message) or ("error", message), or None yet.

    An answer is the edit of the deferred message that carries the embed; an error
    is an immediate ephemeral reply (type-4 callback) or an ephemeral follow-up.
    """
    if rec.callbacks and rec.callbacks[0][1].get("type") == 4:
        return "error", rec.callbacks[0][1].get("data") or {}
    for _, body in rec.edits:
        if body.get("embeds"):
            return "answer", body
        if is_error_line(body.get("content")):
            return "error", body
    for _, body in rec.followups:
        if (body.get("flags") or 0) & EPHEMERAL:
            return "error", body
        if body.get("embeds"):
            return "answer", body
    return None


def is_error_line(content: str | None) -> bool:
    """The bot's one-line error replies start with a warning sign."""
    return bool(content) and content.startswith("\u26a0\ufe0f")


def final_messages(rec: InteractionRecord) -> int:
    """How many final replies the user got (must be exactly one)."""
    immediate = sum(1 for _, body in rec.callbacks if body.get("type") == 4)
    answers = sum(1 for _, body in rec.edits if body.get("embeds") or is_error_line(body.get("content")))
    return immediate + answers + len(rec.followups)


async def wait_outcome(rec: InteractionRecord, timeout: float = 30) -> tuple[str, dict[str, Any]]:  # noqa: ASYNC109
    await rec.wait_for(lambda r: outcome(r) is not None, timeout)
    result = outcome(rec)
    assert result is not None
    return result


def embed_text(message: dict[str, Any]) -> str:
    embed = message["embeds"][0]
    parts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
    parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)
