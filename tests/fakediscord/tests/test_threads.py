"""Self-tests of the stand-in's threads, forum and media channels (tests/fakediscord/threads.py).

Each rule's docs page is cited next to it in the stand-in; these check the stand-in
itself, over bare REST and gateway clients (the bot's side is tests/e2e/test_threads_e2e.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import payloads as P
from tests.fakediscord.fixtures import serving
from tests.fakediscord.gateway import GATEWAY_PATH
from tests.fakediscord.permissions import OVERWRITE_ROLE, READ_MESSAGE_HISTORY, VIEW_CHANNEL, overwrite
from tests.fakediscord.threads import (
    ANNOUNCEMENT_THREAD,
    GUILD_FORUM,
    GUILD_MEDIA,
    MANAGE_THREADS,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    ThreadGuildFakeDiscord,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

MEMBER, STRANGER = 700_001, 700_002


async def _get(fake: ThreadGuildFakeDiscord, path: str, **query: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http,
        http.get(f"{fake.api_base}{path}", params=query) as resp,
    ):
        return resp.status, await resp.json()


def test_a_thread_has_its_parents_permissions_and_a_private_one_only_for_members_and_moderators() -> None:
    fake = ThreadGuildFakeDiscord()
    moderator = fake.add_role("mods", MANAGE_THREADS)
    fake.member_roles[STRANGER + 1] = [moderator]
    hidden = fake.add_channel("hidden", [overwrite(fake.guild_id, OVERWRITE_ROLE, deny=VIEW_CHANNEL)])
    public = fake.add_thread(hidden, "public")
    private = fake.add_thread(fake.channel_id, "private", private=True, members=[MEMBER])
    assert not fake.permissions(MEMBER, public) & VIEW_CHANNEL  # the parent hides it
    assert fake.permissions(MEMBER, private) & VIEW_CHANNEL
    assert fake.permissions(STRANGER, private) == 0
    assert fake.permissions(STRANGER + 1, private) & VIEW_CHANNEL  # Manage Threads
    assert fake.channels[private]["type"] == PRIVATE_THREAD and fake.channels[public]["type"] == PUBLIC_THREAD


def test_thread_types_follow_the_parent_and_forums_hold_only_threads() -> None:
    fake = ThreadGuildFakeDiscord()
    news = fake.add_announcement_channel("news")
    forum, media = fake.add_forum("forum"), fake.add_forum("media", media=True)
    assert fake.channels[forum]["type"] == GUILD_FORUM and fake.channels[media]["type"] == GUILD_MEDIA
    assert fake.channels[fake.add_thread(news, "n")]["type"] == ANNOUNCEMENT_THREAD
    assert fake.channels[fake.add_thread(media, "m")]["type"] == PUBLIC_THREAD
    with pytest.raises(ValueError, match="GUILD_TEXT"):
        fake.add_thread(forum, "secret", private=True)
    with pytest.raises(ValueError, match="only threads"):
        fake.message(forum, content="not a post")
    with pytest.raises(ValueError, match="cannot have threads"):
        fake.add_thread(fake.add_thread(fake.channel_id, "t"), "nested")


def test_guild_create_lists_active_threads_the_bot_can_view_apart_from_channels() -> None:
    fake = ThreadGuildFakeDiscord()
    active = fake.add_thread(fake.channel_id, "active")
    fake.add_thread(fake.channel_id, "archived", archived=True)
    fake.add_thread(fake.channel_id, "private, bot not in it", private=True)
    joined = fake.add_thread(fake.channel_id, "private, bot in it", private=True, members=[fake.bot_user_id])
    guild = fake._guild_create()
    assert all(c["type"] not in (PUBLIC_THREAD, PRIVATE_THREAD) for c in guild["channels"])
    assert {t["id"] for t in guild["threads"]} == {str(active), str(joined)}
    own = next(t for t in guild["threads"] if t["id"] == str(joined))
    assert own["member"]["user_id"] == str(fake.bot_user_id)  # the bot's own thread member


async def test_archived_listings_need_their_permissions_order_and_paginate() -> None:
    fake = ThreadGuildFakeDiscord()
    no_history = fake.add_channel("no-history", [overwrite(fake.guild_id, OVERWRITE_ROLE, deny=READ_MESSAGE_HISTORY)])
    archived = [fake.add_thread(fake.channel_id, f"old {i}", archived=True) for i in range(3)]
    fake.add_thread(fake.channel_id, "active")
    private = fake.add_thread(fake.channel_id, "private", private=True, archived=True, members=[fake.bot_user_id])
    other_private = fake.add_thread(fake.channel_id, "other", private=True, archived=True)
    base = f"/channels/{fake.channel_id}"
    async with serving(fake):
        status, body = await _get(fake, f"{base}/threads/archived/public", limit="2")
        assert status == 200 and body["has_more"] is True
        assert [t["id"] for t in body["threads"]] == [str(archived[2]), str(archived[1])]  # latest archived first
        before = body["threads"][-1]["thread_metadata"]["archive_timestamp"]
        status, body = await _get(fake, f"{base}/threads/archived/public", limit="2", before=before)
        assert [t["id"] for t in body["threads"]] == [str(archived[0])] and body["has_more"] is False
        assert (await _get(fake, f"/channels/{no_history}/threads/archived/public"))[0] == 403
        assert (await _get(fake, f"{base}/threads/archived/public", limit="101"))[0] == 400
        fake.expect_rejections()
        # Private archived threads: Manage Threads needed; the bot has not got it yet.
        status, body = await _get(fake, f"{base}/threads/archived/private")
        assert status == 403 and body["code"] == 50013
        status, body = await _get(fake, f"{base}/users/@me/threads/archived/private")
        assert status == 200 and [t["id"] for t in body["threads"]] == [str(private)]  # only the joined one
        assert body["members"][0]["user_id"] == str(fake.bot_user_id)
        fake.member_roles[fake.bot_user_id] = [fake.add_role("bot mods", MANAGE_THREADS)]
        status, body = await _get(fake, f"{base}/threads/archived/private")
        assert status == 200 and [t["id"] for t in body["threads"]] == [str(other_private), str(private)]


async def test_active_threads_thread_members_and_a_threads_channel_and_history() -> None:
    fake = ThreadGuildFakeDiscord()
    older = fake.add_thread(fake.channel_id, "older")
    newer = fake.add_thread(fake.channel_id, "newer", members=[MEMBER])
    hidden = fake.add_thread(fake.channel_id, "hidden", private=True)
    fake.add_thread(fake.channel_id, "archived", archived=True)
    posted = fake.message(newer, content="in the thread")
    async with serving(fake):
        status, body = await _get(fake, f"/guilds/{fake.guild_id}/threads/active")
        assert status == 200 and [t["id"] for t in body["threads"]] == [str(newer), str(older)]  # by id, descending
        assert (await _get(fake, f"/channels/{newer}/thread-members/{MEMBER}"))[0] == 200
        status, body = await _get(fake, f"/channels/{newer}/thread-members/{STRANGER}")
        assert status == 404
        assert (await _get(fake, f"/channels/{hidden}/thread-members/{MEMBER}"))[0] == 403  # the bot cannot see it
        status, body = await _get(fake, f"/channels/{newer}")
        assert status == 200 and body["parent_id"] == str(fake.channel_id) and body["message_count"] == 1
        assert (await _get(fake, f"/channels/{hidden}"))[0] == 403
        status, body = await _get(fake, f"/channels/{newer}/messages")
        assert status == 200 and [m["id"] for m in body] == [posted["id"]]
        await fake.delete_thread(older, bot_offline=True)
        assert (await _get(fake, f"/channels/{older}"))[0] == 404


@contextlib.asynccontextmanager
async def _gateway(fake: ThreadGuildFakeDiscord, intents: int) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A bare client identified with `intents`, past READY and GUILD_CREATE."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://127.0.0.1:{fake.port}{GATEWAY_PATH}?v=10&encoding=json") as ws,
    ):
        await ws.receive_json(timeout=5)  # HELLO
        identify = {"token": fake.token, "intents": intents, "properties": {}}
        await ws.send_str(json.dumps({"op": P.OP_IDENTIFY, "d": identify}))
        assert (await ws.receive_json(timeout=5))["t"] == "READY"
        assert (await ws.receive_json(timeout=5))["t"] == "GUILD_CREATE"
        yield ws


async def _events(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[str, dict[str, Any]]]:
    """The dispatches that arrived (a short wait for stragglers)."""
    events = []
    with contextlib.suppress(TimeoutError):
        while True:
            frame = await ws.receive_json(timeout=0.3)
            if frame["op"] == P.OP_DISPATCH:
                events.append((frame["t"], frame["d"]))
    return events


@pytest.mark.parametrize(
    "intents",
    [P.INTENT_GUILDS | P.INTENT_GUILD_MESSAGES, P.INTENT_GUILDS | P.INTENT_GUILD_MESSAGES | P.INTENT_GUILD_MEMBERS],
)
async def test_thread_events_follow_the_intents_and_the_bots_view(intents: int) -> None:
    fake = ThreadGuildFakeDiscord(privileged_intents=P.INTENT_GUILD_MEMBERS)
    async with serving(fake), _gateway(fake, intents) as ws:
        thread = await fake.create_thread(fake.channel_id, "new")
        await fake.create_thread(fake.channel_id, "private", private=True)  # the bot cannot see it
        await fake.add_thread_member(thread, MEMBER)
        private = fake.add_thread(fake.channel_id, "invite", private=True)
        await fake.add_thread_member(private, fake.bot_user_id)
        await fake.archive_thread(thread)
        await fake.post(thread, content="wakes it up")  # archived: THREAD_UPDATE unarchives it first
        await fake.sync_threads([fake.channel_id])
        await fake.delete_thread(thread)
        events = await _events(ws)
    names = [name for name, _ in events]
    created = [data for name, data in events if name == "THREAD_CREATE"]
    assert created[0]["id"] == str(thread) and created[0]["newly_created"] is True
    assert created[1]["id"] == str(private) and created[1]["member"]["user_id"] == str(fake.bot_user_id)
    assert len(created) == 2  # not the private thread the bot cannot see
    members_updates = [data for name, data in events if name == "THREAD_MEMBERS_UPDATE"]
    about_others = [d for d in members_updates if d["added_members"][0]["user_id"] == str(MEMBER)]
    assert bool(about_others) == bool(intents & P.INTENT_GUILD_MEMBERS)  # others only with GUILD_MEMBERS
    updates = [data for name, data in events if name == "THREAD_UPDATE"]
    assert [u["thread_metadata"]["archived"] for u in updates] == [True, False]
    assert names.index("THREAD_UPDATE", names.index("THREAD_UPDATE") + 1) < names.index("MESSAGE_CREATE")
    sync = next(data for name, data in events if name == "THREAD_LIST_SYNC")
    assert sync["channel_ids"] == [str(fake.channel_id)] and {t["id"] for t in sync["threads"]} == {
        str(thread),
        str(private),
    }
    deleted = next(data for name, data in events if name == "THREAD_DELETE")
    assert set(deleted) == {"id", "guild_id", "parent_id", "type"}
