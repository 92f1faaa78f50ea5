"""Fake Discord (REST + gateway + CDN) for end-to-end tests of the bot with real discord.py.

Why: the real client's login, gateway, resume, rate-limit and retry code is what the
bot depends on in production, so e2e tests run it unmodified against this server
instead of mocking it. Typical use::

    async def test_classify(fake: FakeDiscord) -> None:
        bot = make_bot()                      # the project's discord.Client / Bot
        async with running_client(bot, fake):
            await fake.wait_for_sync()
            rec = await fake.send_command(
                "classify", {"labels": "cat, dog"}, attachments={"image": (png, "a.png", "image/png")}
            )
            final = await rec.wait_final()
            assert rec.ack_latency < 3 and "cat" in final["content"]

It follows Discord's API documentation, not the bot's habits: each rule it enforces
cites the docs page, and where the docs are unclear it takes the stricter reading.
Bodies it refuses (400/413) are kept in ``FakeDiscord.rejections``; the fixtures fail
the test at teardown if there are any, unless it called ``fake.expect_rejections()``.
``send_command(context=...)`` shapes guild, bot-DM, group-DM and user-install
interactions as Discord sends them, and refuses contexts or option values a real
user could not produce.
"""

from .fixtures import fake, running_client
from .records import (
    CommandSync,
    GatewayConnection,
    InteractionRecord,
    RecordedRequest,
    UploadedFile,
)
from .server import FakeDiscord

__all__ = [
    "CommandSync",
    "FakeDiscord",
    "GatewayConnection",
    "InteractionRecord",
    "RecordedRequest",
    "UploadedFile",
    "fake",
    "running_client",
]
