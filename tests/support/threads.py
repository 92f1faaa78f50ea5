"""Thread scenarios' shared pieces (their guild is `tests.support.search.guild`, which has threads)."""

from __future__ import annotations

from typing import Any

from tests.fakediscord.threads import ThreadGuildFakeDiscord
from tests.support.outcomes import wait_outcome
from tests.support.search import result_links
from tests.support.shapes import shape_png


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


async def similar(fake: ThreadGuildFakeDiscord, user_id: int, message: dict[str, Any]) -> list[str]:
    """The message ids "Find similar images" on `message` shows `user_id`."""
    rec = await fake.send_command("Find similar images", target_message=message, user_id=user_id)
    kind, answer = await wait_outcome(rec, 90)
    assert kind == "answer", answer
    return [link.rsplit("/", 1)[1] for link in result_links(answer)]
