"""Repost alerts through the Discord stand-in, with the tiny CLIP and the real Milvus Lite (issue 25).

A near-duplicate (the same picture re-encoded as JPEG) of an indexed image gets one quiet reply
linking the earlier message; a different image gets none; and a near-duplicate of an image in a
channel that not everyone here can see gets no link.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

from PIL import Image

from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.permissions import (
    OVERWRITE_MEMBER,
    SEND_MESSAGES,
    overwrite,
)
from tests.support.search import add_staff_only_channel, answered, data_dir, ready_index, search_bot, stored, until
from tests.support.shapes import shape_png

STAFF = 555_000_444
#: After an image is stored, how long an alert that should not come is waited for (it follows at once).
QUIET_S = 1.5


def jpeg_copy(png: bytes, quality: int = 85) -> bytes:
    """The same picture re-encoded as JPEG: what a repost usually is."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def alerts(fake: GuildFakeDiscord, message: dict[str, Any]) -> list[dict[str, Any]]:
    """The bot's replies to `message`."""
    return [
        sent
        for sent in fake.sent
        if (sent["request"].get("message_reference") or {}).get("message_id") in (message["id"], int(message["id"]))
    ]


async def index(fake: GuildFakeDiscord, channel_id: int, user_id: int | None = None, **options: Any) -> str:
    rec = await fake.send_command(
        "index", {"add": {"channel": channel_id, "backfill": False, **options}}, user_id=user_id
    )
    return str((await answered(rec))["content"])


async def set_reposts(fake: GuildFakeDiscord, channel_id: int, enabled: bool) -> str:
    """`/index repost`: its private one-line answer."""
    rec = await fake.send_command("index", {"repost": {"channel": channel_id, "enabled": enabled}})
    await rec.wait_for(lambda r: bool(r.callbacks), 30)
    data = rec.callbacks[0][1]["data"]
    assert data["flags"] & 64  # ephemeral
    return str(data["content"])


async def test_a_near_duplicate_gets_one_quiet_reply_and_a_different_image_none(guild: GuildFakeDiscord) -> None:
    fake = guild
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        assert "Repost alerts are on" in await index(fake, fake.channel_id, repost=True)
        original_png = shape_png("red circle", 2501, size=224)
        original = await fake.post(fake.channel_id, images=[(original_png, "cat.png")])
        await stored(cog, 1)

        repost = await fake.post(fake.channel_id, images=[(jpeg_copy(original_png), "cat-again.jpg")], author_id=7)
        await until(lambda: alerts(fake, repost), 30)
        [alert] = alerts(fake, repost)
        body = alert["request"]
        link = f"https://discord.com/channels/{fake.guild_id}/{fake.channel_id}/{original['id']}"
        similarity = re.search(r"\(similarity (\d\.\d{3})\)", body["content"])
        assert link in body["content"] and similarity and float(similarity[1]) >= bot.settings.repost_threshold
        assert body["allowed_mentions"] == {"parse": [], "replied_user": False}  # pings nobody
        assert body["flags"] & (1 << 12)  # SUPPRESS_NOTIFICATIONS: a silent message

        different = await fake.post(fake.channel_id, images=[(shape_png("blue square", 2502, size=224), "d.png")])
        await stored(cog, 3)
        await asyncio.sleep(QUIET_S)
        assert alerts(fake, different) == []
        assert len(fake.sent) == 1

        # Off again: the next copy is indexed, and nobody is told.
        assert "are off" in await set_reposts(fake, fake.channel_id, False)
        again = await fake.post(fake.channel_id, images=[(jpeg_copy(original_png, 70), "third.jpg")])
        await stored(cog, 4)
        await asyncio.sleep(QUIET_S)
        assert alerts(fake, again) == []


async def test_no_link_to_an_image_in_a_channel_the_members_cannot_see(guild: GuildFakeDiscord) -> None:
    fake = guild
    staff, private = add_staff_only_channel(fake)
    fake.member_roles[fake.user_id] = [*fake.member_roles[fake.user_id], staff]  # the tester manages both
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        await index(fake, fake.channel_id, repost=True)
        await index(fake, private)
        assert "are on" in await set_reposts(fake, private, True)
        secret_png = shape_png("green triangle", 2601, size=224)
        secret = await fake.post(private, images=[(secret_png, "secret.png")], author_id=STAFF)
        await stored(cog, 1)

        # Everyone sees the public channel, not the staff one: the copy there links nothing.
        public_copy = await fake.post(fake.channel_id, images=[(jpeg_copy(secret_png), "leak.jpg")])
        await stored(cog, 2)
        await asyncio.sleep(QUIET_S)
        assert alerts(fake, public_copy) == [] and fake.sent == []

        # In the staff channel itself everyone who sees the copy can read the original: linked
        # (the public copy, which anyone there could see too, is deleted first).
        await fake.delete(fake.channel_id, public_copy["id"])
        await stored(cog, 1)
        staff_copy = await fake.post(private, images=[(jpeg_copy(secret_png, 70), "again.jpg")], author_id=STAFF)
        await until(lambda: alerts(fake, staff_copy), 30)
        [alert] = alerts(fake, staff_copy)
        assert f"/{private}/{secret['id']}" in alert["request"]["content"]


async def test_without_send_messages_it_says_so_and_stays_silent(guild: GuildFakeDiscord) -> None:
    fake = guild
    mute = fake.add_channel("no-replies", [overwrite(fake.bot_user_id, OVERWRITE_MEMBER, deny=SEND_MESSAGES)])
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        await index(fake, mute)
        assert "cannot reply there" in await set_reposts(fake, mute, True)
        png = shape_png("yellow circle", 2701, size=224)
        await fake.post(mute, images=[(png, "a.png")])
        await stored(cog, 1)
        fake.expect_rejections()  # the reply is refused (403): the bot logs it and goes on
        await fake.post(mute, images=[(jpeg_copy(png), "b.jpg")])
        await until(lambda: any(r.path == f"/channels/{mute}/messages" and r.method == "POST" for r in fake.requests))
        await stored(cog, 2)
        assert fake.sent == []
        assert "cannot reply" not in await set_reposts(fake, mute, False)  # turning it off needs nothing
