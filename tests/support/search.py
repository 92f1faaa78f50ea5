"""Image search scenarios' shared pieces: a guild with the Message Content intent, a bot with a
fresh index, and waits on what the vector store holds."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio

from bot.discord.client import ClipBot
from bot.discord.exts.search.indexing import Indexing
from tests.fakediscord import payloads as P
from tests.fakediscord.fixtures import serving
from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.permissions import (
    MANAGE_GUILD,
    OVERWRITE_MEMBER,
    OVERWRITE_ROLE,
    READ_MESSAGE_HISTORY,
    VIEW_CHANNEL,
    overwrite,
)
from tests.fakediscord.threads import ThreadGuildFakeDiscord
from tests.support.live_bot import running_bot
from tests.support.settings import TEST_CACHE_DIR


@pytest_asyncio.fixture(loop_scope="session")
async def guild() -> AsyncIterator[ThreadGuildFakeDiscord]:
    """A guild with the Message Content intent enabled "in the portal", and an admin tester
    (with threads, forum and media channels, as Discord has: a backfill lists a channel's threads)."""
    fake = ThreadGuildFakeDiscord(ack_deadline=3.0, privileged_intents=P.INTENT_MESSAGE_CONTENT)
    admin = fake.add_role("admin", MANAGE_GUILD)
    fake.member_roles[fake.user_id] = [admin]
    async with serving(fake) as server:
        yield server


def data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="search-", dir=TEST_CACHE_DIR))


def search_bot(fake: GuildFakeDiscord, folder: Path, **overrides: Any) -> Any:
    # The model and the index are awaited by `ready_index` (longer: Milvus Lite starts too).
    return running_bot(fake, wait_model=False, data_dir=folder, message_content_intent=True, **overrides)


def indexing(bot: ClipBot) -> Indexing:
    """The cog (loaded by name: discord.py gives the extension a module object of its own)."""
    cog = bot.get_cog("Indexing")
    assert cog is not None
    return cog  # type: ignore[return-value]


async def until(check: Callable[[], Any], timeout: float = 90) -> None:  # noqa: ASYNC109
    """Poll an async or plain predicate until it holds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)


async def ready_index(bot: ClipBot) -> Indexing:
    """The model loaded and the index cog started (the store itself opens on first use)."""
    cog = indexing(bot)
    await asyncio.wait_for(bot.engine.wait_ready(), 120)
    await until(lambda: cog.started, 120)
    return cog


async def answered(rec: Any) -> dict[str, Any]:
    """The private answer of an /index command: the edit of its deferred reply."""
    await rec.wait_for(lambda r: any(body.get("content") for _, body in r.edits), 90)
    return next(body for _, body in rec.edits if body.get("content"))


async def index_channel(fake: GuildFakeDiscord, channel_id: int, backfill: bool = False) -> dict[str, Any]:
    rec = await fake.send_command("index", {"add": {"channel": channel_id, "backfill": backfill}})
    return await answered(rec)


async def count(cog: Indexing, **where: int) -> int:
    return await cog.store.count(**where)


async def stored(cog: Indexing, expected: int, **where: int) -> None:
    """Wait until the store holds `expected` images (matching `where`)."""

    async def holds() -> bool:
        return await cog.store.count(**where) == expected

    await until(holds)


#: One result's line in the gallery message (`bot.discord.exts.search.gallery.result_line`).
RESULT_LINE = re.compile(
    r"score \*\*(?P<score>[-\d.]+)\*\* · <#(?P<channel>\d+)> · <@(?P<author>\d+)> · <t:\d+:d>"
    r" · \[Jump to the message\]\((?P<link>[^)]+)\)"
)


def components(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Every component of a Components V2 message, depth first."""
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found.append(item)
            walk(item.get("components") or [])

    walk(answer.get("components") or [])
    return found


def gallery(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of the results' media gallery (type 12), in order."""
    return [item for c in components(answer) if c["type"] == 12 for item in c["items"]]


def results(answer: dict[str, Any]) -> list[re.Match[str]]:
    """The result lines of the gallery message, best first."""
    texts = "\n".join(c["content"] for c in components(answer) if c["type"] == 10)
    return list(RESULT_LINE.finditer(texts))


def result_channels(answer: dict[str, Any]) -> list[int]:
    return [int(m["channel"]) for m in results(answer)]


def result_links(answer: dict[str, Any]) -> list[str]:
    return [m["link"] for m in results(answer)]


def add_staff_only_channel(fake: GuildFakeDiscord) -> tuple[int, int]:
    """A "staff-only" channel hidden from @everyone, viewable and readable by a new "staff" role
    and by the bot: the role's id and the channel's."""
    staff = fake.add_role("staff", 0)
    hidden = overwrite(fake.guild_id, OVERWRITE_ROLE, deny=VIEW_CHANNEL)
    for_staff = overwrite(staff, OVERWRITE_ROLE, allow=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    for_bot = overwrite(fake.bot_user_id, OVERWRITE_MEMBER, allow=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    return staff, fake.add_channel("staff-only", [hidden, for_staff, for_bot])
