"""The stand-in's guild: permissions as the docs compute them, and message history over REST."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fakediscord import payloads as P
from tests.fakediscord.fixtures import serving
from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.permissions import (
    ADMINISTRATOR,
    ALL,
    OVERWRITE_MEMBER,
    OVERWRITE_ROLE,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    base_permissions,
    channel_permissions,
    overwrite,
)

GUILD, OWNER, USER, ROLE, OTHER_ROLE = 1, 2, 3, 4, 5


def test_permissions_follow_the_docs_pseudocode() -> None:
    roles = {GUILD: VIEW_CHANNEL | SEND_MESSAGES, ROLE: READ_MESSAGE_HISTORY, OTHER_ROLE: ADMINISTRATOR}
    assert base_permissions(GUILD, OWNER, roles, OWNER, []) == ALL
    assert base_permissions(GUILD, OWNER, roles, USER, [OTHER_ROLE]) == ALL
    base = base_permissions(GUILD, OWNER, roles, USER, [ROLE])
    assert base == VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY
    hidden = overwrite(GUILD, OVERWRITE_ROLE, deny=VIEW_CHANNEL)
    role_back = overwrite(ROLE, OVERWRITE_ROLE, allow=VIEW_CHANNEL)
    member_out = overwrite(USER, OVERWRITE_MEMBER, deny=VIEW_CHANNEL)
    assert not channel_permissions(base, GUILD, USER, [ROLE], [hidden]) & VIEW_CHANNEL
    assert channel_permissions(base, GUILD, USER, [ROLE], [hidden, role_back]) & VIEW_CHANNEL  # role beats @everyone
    assert not channel_permissions(base, GUILD, USER, [ROLE], [hidden, role_back, member_out]) & VIEW_CHANNEL
    assert not channel_permissions(base, GUILD, USER, [], [hidden, role_back]) & VIEW_CHANNEL  # not their role
    assert channel_permissions(ALL, GUILD, USER, [], [hidden]) == ALL  # administrator ignores overwrites


async def _get(fake: GuildFakeDiscord, path: str, **query: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http,
        http.get(f"{fake.api_base}{path}", params=query) as resp,
    ):
        return resp.status, await resp.json()


async def test_history_needs_the_bots_permissions_and_the_content_intent() -> None:
    fake = GuildFakeDiscord()  # Message Content intent not enabled in the "portal"
    no_history = fake.add_channel("no-history", [overwrite(fake.guild_id, OVERWRITE_ROLE, deny=READ_MESSAGE_HISTORY)])
    hidden = fake.add_channel("hidden", [overwrite(fake.guild_id, OVERWRITE_ROLE, deny=VIEW_CHANNEL)])
    async with serving(fake):
        posted = [fake.message(fake.channel_id, images=[(b"\x89PNG", f"{i}.png")], content=f"m{i}") for i in range(5)]
        fake.message(no_history, content="secret")
        status, page = await _get(fake, f"/channels/{fake.channel_id}/messages", limit="2")
        assert status == 200 and [m["id"] for m in page] == [posted[4]["id"], posted[3]["id"]]  # newest first
        assert page[0]["attachments"] == [] and page[0]["content"] == ""  # no Message Content intent
        status, page = await _get(fake, f"/channels/{fake.channel_id}/messages", before=posted[2]["id"])
        assert [m["id"] for m in page] == [posted[1]["id"], posted[0]["id"]]
        status, page = await _get(fake, f"/channels/{fake.channel_id}/messages", after=posted[2]["id"])
        assert [m["id"] for m in page] == [posted[4]["id"], posted[3]["id"]]
        fake.expect_rejections()
        status, _ = await _get(fake, f"/channels/{fake.channel_id}/messages", limit="101")
        assert status == 400
        status, page = await _get(fake, f"/channels/{no_history}/messages")
        assert status == 200 and page == []  # "no messages will be returned"
        status, body = await _get(fake, f"/channels/{hidden}/messages")
        assert status == 403 and body["code"] == 50001
        status, body = await _get(fake, f"/channels/{fake.channel_id}/messages/{posted[0]['id']}")
        assert status == 200 and body["id"] == posted[0]["id"]
        status, body = await _get(fake, f"/channels/{fake.channel_id}/messages/1")
        assert status == 404 and body["code"] == 10008

    with_intent = GuildFakeDiscord(privileged_intents=P.INTENT_MESSAGE_CONTENT)
    async with serving(with_intent):
        msg = with_intent.message(with_intent.channel_id, images=[(b"\x89PNG", "a.png")])
        status, page = await _get(with_intent, f"/channels/{with_intent.channel_id}/messages")
        assert status == 200 and page[0]["attachments"][0]["id"] == msg["attachments"][0]["id"]
