"""The production bot (`create_bot` + `serve`, as `python -m bot run` does) against the local
Discord stand-in, with the tiny trained CLIP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from bot.config import Settings
from bot.discord.client import ClipBot, create_bot, serve
from bot.engine import ClipEngine
from tests.fakediscord.fixtures import cancel_discord_tasks
from tests.fakediscord.server import FakeDiscord
from tests.support.settings import make_settings

#: A heartbeat interval short enough to see many heartbeats while a bot is under load.
LOAD_HEARTBEAT_MS = 100
#: Settings the engine does not read (the Discord layer's, the service's, storage's): a bot may
#: differ from a shared engine in these alone.
NOT_ENGINE_SETTINGS = frozenset(
    {
        "discord_token",
        "discord_guild_id",
        "trusted_media_hosts",
        "data_dir",
        "user_cooldown_s",
        "max_pending",
        "metrics_port",
        "shutdown_grace_s",
        "download_timeout_s",
        "request_timeout_s",
        "queue_notice_after",
        "max_image_bytes",
        "shard_count",
        "shard_ids",
        "repost_threshold",
        # The first model load sets LOG_LEVEL for inference (bot.engine.loading): later settings
        # read it; the bot's logging uses it, the engine does not.
        "log_level",
        # Read by the Discord layer alone (intents, /autotag).
        "message_content_intent",
        "autotag_min_probability",
        "autotag_per_minute",
        "autotag_max_waiting",
        "autotag_busy_share",
    }
)


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, *, wait_model: bool = True, engine: ClipEngine | None = None, **overrides: Any
) -> AsyncIterator[ClipBot]:
    """The production bot, logged in, commands synced and (unless told not to wait) the model loaded.

    `engine`: a started engine to share instead of loading one (the session's `engine`
    fixture; the bot leaves it open). For a test that neither patches the engine, nor watches
    it load, nor changes a setting it reads, nor counts its batches or cache misses.
    """
    values: dict[str, Any] = {
        "discord_token": fake.token,
        "discord_guild_id": fake.guild_id,
        # The stand-in plays Discord's CDN and media proxy on its own address; nothing else is trusted.
        "trusted_media_hosts": (f"127.0.0.1:{fake.port}",),
    }
    values.update(overrides)
    settings = make_settings(**values)
    if engine is not None:
        require_shareable(settings, engine)
    bot = create_bot(settings, engine)
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


def require_shareable(settings: Settings, engine: ClipEngine) -> None:
    """Refuse to share `engine` with a bot whose settings differ from it where the engine reads them."""
    fields = type(settings).model_fields
    mismatched = {name for name in fields if getattr(settings, name) != getattr(engine.settings, name)}
    mismatched -= NOT_ENGINE_SETTINGS
    if mismatched:
        raise ValueError(f"{sorted(mismatched)} differ from the shared engine's settings: build one")


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
