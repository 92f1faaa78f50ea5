"""Thread scenarios' shared pieces: a guild with threads, forums and the Message Content intent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.fakediscord import payloads as P
from tests.fakediscord.fixtures import serving
from tests.fakediscord.permissions import MANAGE_GUILD
from tests.fakediscord.threads import ThreadGuildFakeDiscord
from tests.support.outcomes import wait_outcome
from tests.support.search import result_links
from tests.support.shapes import shape_png


@pytest_asyncio.fixture(loop_scope="session")
async def thread_guild() -> AsyncIterator[ThreadGuildFakeDiscord]:
    """`tests.support.search.guild` with threads, forum and media channels (an admin tester)."""
    fake = ThreadGuildFakeDiscord(ack_deadline=3.0, privileged_intents=P.INTENT_MESSAGE_CONTENT)
    admin = fake.add_role("admin", MANAGE_GUILD)
    fake.member_roles[fake.user_id] = [admin]
    async with serving(fake) as server:
        yield server


async def found(fake: ThreadGuildFakeDiscord, user_id: int, text: str, results: int = 10) -> list[str]:
    """The message ids `/search text:` shows `user_id`, best first (none: an empty list)."""
    rec = await fake.send_command("search", {"text": text, "results": results}, user_id=user_id)
    kind, answer = await wait_outcome(rec, 90)
    assert kind == "answer", answer
    return [link.rsplit("/", 1)[1] for link in result_links(answer)]


def image_of(label: str, seed: int) -> list[tuple[bytes, str]]:
    return [(shape_png(label, seed), f"{seed}.png")]


def thread_requests(fake: ThreadGuildFakeDiscord, suffix: str) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith(suffix)]
