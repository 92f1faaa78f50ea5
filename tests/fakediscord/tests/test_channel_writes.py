"""The stand-in's Create Reaction and Create Message rules (tests/fakediscord/channel_writes.py),
spoken to over raw HTTP so that wrong requests can be made too."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from tests.fakediscord.channel_writes import ADD_REACTIONS, ChannelWritesFakeDiscord, Reaction
from tests.fakediscord.fixtures import serving
from tests.fakediscord.permissions import (
    OVERWRITE_MEMBER,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    overwrite,
)


async def _call(fake: ChannelWritesFakeDiscord, method: str, raw_path: str, body: Any = None) -> tuple[int, Any]:
    """`raw_path` is sent as written (encoded=True): the test decides the URL encoding."""
    url = URL(f"{fake.api_base}{raw_path}", encoded=True)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http,
        http.request(method, url, json=body) as resp,
    ):
        return resp.status, (await resp.json() if resp.content_type == "application/json" else None)


def _denied(fake: ChannelWritesFakeDiscord, permissions: int) -> int:
    return fake.add_channel("denied", [overwrite(fake.bot_user_id, OVERWRITE_MEMBER, deny=permissions)])


async def test_reactions_need_url_encoding_a_known_emoji_and_the_permissions() -> None:
    fake = ChannelWritesFakeDiscord()
    blob = fake.add_emoji("blob")
    no_react = _denied(fake, ADD_REACTIONS)
    no_history = _denied(fake, READ_MESSAGE_HISTORY)
    async with serving(fake):
        fake.expect_rejections()
        msg = fake.message(fake.channel_id, content="hi")
        path = f"/channels/{fake.channel_id}/messages/{msg['id']}/reactions"
        assert await _call(fake, "PUT", f"{path}/%F0%9F%90%B1/@me") == (204, None)  # 🐱, encoded
        assert (await _call(fake, "PUT", f"{path}/blob:{blob}/@me"))[0] == 204
        assert fake.reactions == [
            Reaction(fake.channel_id, msg["id"], "🐱", fake.bot_user_id),
            Reaction(fake.channel_id, msg["id"], f"blob:{blob}", fake.bot_user_id),
        ]
        # Not URL-encoded: refused before any route (the HTTP server takes no raw UTF-8 path).
        assert await _call(fake, "PUT", f"{path}/🐱/@me") == (400, None)
        for wrong in ("cat", f"nope:{blob}", "blob:1", "%F0%9F%90%B1%F0%9F%90%B6"):
            status, body = await _call(fake, "PUT", f"{path}/{wrong}/@me")
            assert (status, body["code"]) == (400, 10014), wrong
        assert (await _call(fake, "PUT", f"{path[:-19]}1/reactions/%F0%9F%90%B1/@me"))[1]["code"] == 10008
        for channel, code in ((no_react, 50013), (no_history, 50013)):
            there = fake.message(channel, content="x")
            status, body = await _call(
                fake, "PUT", f"/channels/{channel}/messages/{there['id']}/reactions/%F0%9F%90%B1/@me"
            )
            assert (status, body["code"]) == (403, code)
        assert len(fake.reactions) == 2


async def test_messages_need_send_messages_and_a_reply_names_a_message_of_the_channel() -> None:
    fake = ChannelWritesFakeDiscord()
    mute = _denied(fake, SEND_MESSAGES)
    hidden = _denied(fake, VIEW_CHANNEL)
    async with serving(fake):
        fake.expect_rejections()
        msg = fake.message(fake.channel_id, content="hi")
        body = {
            "content": "cat · 90%",
            "message_reference": {"message_id": msg["id"]},
            "allowed_mentions": {"parse": [], "replied_user": False},
            "flags": 1 << 12,
        }
        status, created = await _call(fake, "POST", f"/channels/{fake.channel_id}/messages", body)
        assert status == 200 and created["type"] == 19 and created["message_reference"]["message_id"] == msg["id"]
        assert fake.created[0].body == body and created["author"]["id"] == str(fake.bot_user_id)
        unknown = {**body, "message_reference": {"message_id": "1"}}
        assert (await _call(fake, "POST", f"/channels/{fake.channel_id}/messages", unknown))[0] == 400
        ephemeral = {**body, "flags": 1 << 6}  # not allowed on this endpoint
        assert (await _call(fake, "POST", f"/channels/{fake.channel_id}/messages", ephemeral))[0] == 400
        assert (await _call(fake, "POST", f"/channels/{mute}/messages", {"content": "x"}))[1]["code"] == 50013
        assert (await _call(fake, "POST", f"/channels/{hidden}/messages", {"content": "x"}))[1]["code"] == 50001
        assert len(fake.created) == 1
