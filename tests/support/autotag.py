"""Autotag scenarios' shared pieces: a guild where the bot may react and reply (and that has a
server emoji), a bot on the session's engine with /metrics, and waits on what it did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from bot.discord.client import ClipBot
from bot.engine import ClipEngine
from tests.fakediscord import payloads as P
from tests.fakediscord.channel_writes import ChannelWritesFakeDiscord
from tests.fakediscord.fixtures import serving
from tests.fakediscord.permissions import MANAGE_GUILD
from tests.support.live_bot import running_bot
from tests.support.metrics import scrape, value
from tests.support.outcomes import final_messages
from tests.support.search import until


@pytest_asyncio.fixture(loop_scope="session")
async def tagging_guild() -> AsyncIterator[ChannelWritesFakeDiscord]:
    """A guild with the Message Content intent "in the portal", an admin tester and a server emoji `tri`."""
    fake = ChannelWritesFakeDiscord(ack_deadline=3.0, privileged_intents=P.INTENT_MESSAGE_CONTENT)
    admin = fake.add_role("admin", MANAGE_GUILD)
    fake.member_roles[fake.user_id] = [admin]
    fake.add_emoji("tri")
    async with serving(fake) as server:
        yield server


def autotag_bot(fake: ChannelWritesFakeDiscord, engine: ClipEngine, **overrides: Any) -> Any:
    return running_bot(fake, engine=engine, message_content_intent=True, metrics_port=0, **overrides)


async def autotag_add(fake: ChannelWritesFakeDiscord, channel_id: int, labels: str, **options: object) -> str:
    """`/autotag add`; its private one-line answer."""
    rec = await fake.send_command("autotag", {"add": {"channel": channel_id, "labels": labels, **options}})
    answer = await rec.wait_final()
    assert final_messages(rec) == 1
    return str(answer.get("content") or "")


async def autotag_command(fake: ChannelWritesFakeDiscord, name: str, **options: object) -> str:
    rec = await fake.send_command("autotag", {name: options})
    return str((await rec.wait_final()).get("content") or "")


async def outcomes(bot: ClipBot) -> dict[str, float]:
    """`clipbot_autotag` by outcome, scraped from /metrics as Prometheus would."""
    assert bot.metrics_server is not None
    async with aiohttp.ClientSession() as session:
        figures = await scrape(session, f"http://127.0.0.1:{bot.metrics_server.port}")
    names = (
        "tagged",
        "skipped_rate_limited",
        "skipped_backlog",
        "below_threshold",
        "failed",
        "no_permission",
        "no_emoji",
    )
    return {name: value(figures, "clipbot_autotag_total", outcome=name) for name in names}


async def settled(bot: ClipBot, images: int) -> dict[str, float]:
    """Wait until `images` images have an outcome; the outcomes then."""

    async def counted() -> bool:
        return sum((await outcomes(bot)).values()) >= images

    await until(counted)
    return await outcomes(bot)
