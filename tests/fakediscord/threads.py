"""Threads, forum and media channels in the stand-in guild, as Discord's docs describe them.

`ThreadGuildFakeDiscord` extends `GuildFakeDiscord` with:

- channel types (docs: resources/channel.mdx "Channel Types"): ANNOUNCEMENT_THREAD 10,
  PUBLIC_THREAD 11, PRIVATE_THREAD 12 (only in GUILD_TEXT channels, topics/threads.mdx
  "Public & Private Threads"), GUILD_FORUM 15 and GUILD_MEDIA 16 (only threads, topics/threads.mdx
  "Forums" / "Media Channels"), threads with `thread_metadata` and thread members;
- permissions (topics/threads.mdx "Permissions"): a thread inherits its parent's; a private
  thread is visible only to its members and to those with MANAGE_THREADS;
- gateway events, each under the GUILDS intent (events/gateway.mdx "List of Intents"), only
  for threads the bot can view (topics/threads.mdx "Permissions": "Clients will not be
  informed of a thread through the gateway if they do not have permission to view that
  thread"): THREAD_CREATE (`newly_created`; also when the bot is added to a private thread,
  with its thread member), THREAD_UPDATE, THREAD_DELETE (`id`, `guild_id`, `parent_id`, `type`),
  THREAD_LIST_SYNC, THREAD_MEMBERS_UPDATE (about other users only with GUILD_MEMBERS,
  events/gateway-events.mdx "Thread Members Update"); GUILD_CREATE's `threads`: the active
  threads the bot can view, with its thread member on those it is in; a message in an archived
  thread unarchives it first (topics/threads.mdx "Active & Archived Threads");
- REST: List Active Guild Threads, List Public / Private / Joined Private Archived Threads
  (with their permissions, order and pagination), Get Thread Member, Get Channel of a thread,
  and message history of threads (GuildFakeDiscord's routes, with the thread's permissions).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

from aiohttp import web

from . import payloads as P
from .messages import GuildFakeDiscord
from .permissions import READ_MESSAGE_HISTORY, VIEW_CHANNEL
from .server import _error, _json

GUILD_ANNOUNCEMENT = 5
ANNOUNCEMENT_THREAD = 10
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
GUILD_FORUM = 15
GUILD_MEDIA = 16
THREAD_TYPES = (ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD)
#: docs: topics/permissions.mdx "Bitwise Permission Flags".
MANAGE_THREADS = 1 << 34
#: Archive times handed out in order (each archive later than the one before, for ordering).
_archive_clock = itertools.count()


def _iso(when: dt.datetime) -> str:
    return when.isoformat()


def _next_archive_time() -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return _iso(now + dt.timedelta(seconds=next(_archive_clock)))


def thread_object(thread_id: int, guild_id: int, parent_id: int, name: str, kind: int, owner_id: int) -> dict[str, Any]:
    """A thread channel (resources/channel.mdx "Channel Object", "Thread Metadata Object")."""
    return {
        "id": str(thread_id),
        "type": kind,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "message_count": 0,
        "total_message_sent": 0,
        "member_count": 0,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": P.iso_now(),
            "locked": False,
            **({"invitable": True} if kind == PRIVATE_THREAD else {}),
            "create_timestamp": P.iso_now(),
        },
    }


def forum_object(channel_id: int, guild_id: int, name: str, kind: int) -> dict[str, Any]:
    """A GUILD_FORUM or GUILD_MEDIA channel (resources/channel.mdx "Channel Object")."""
    return {
        **P.text_channel_object(channel_id, guild_id, name),
        "type": kind,
        "available_tags": [],
        "default_reaction_emoji": None,
        "default_sort_order": None,
        "default_forum_layout": 0,
        "default_thread_rate_limit_per_user": 0,
    }


class ThreadGuildFakeDiscord(GuildFakeDiscord):
    """`GuildFakeDiscord` with threads, forum and media channels (module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Thread id -> user id -> join timestamp (resources/channel.mdx "Thread Member Object").
        self.thread_members: dict[int, dict[int, str]] = {}

    # --- building the guild --------------------------------------------------------------
    def add_forum(self, name: str, overwrites: list[dict[str, Any]] = (), *, media: bool = False) -> int:  # type: ignore[assignment]
        channel_id = self.add_channel(name, overwrites)
        self.channels[channel_id] = {
            **forum_object(channel_id, self.guild_id, name, GUILD_MEDIA if media else GUILD_FORUM),
            "permission_overwrites": list(overwrites),
            "position": self.channels[channel_id]["position"],
        }
        return channel_id

    def add_announcement_channel(self, name: str, overwrites: list[dict[str, Any]] = ()) -> int:  # type: ignore[assignment]
        channel_id = self.add_channel(name, overwrites)
        self.channels[channel_id]["type"] = GUILD_ANNOUNCEMENT
        return channel_id

    def is_thread(self, channel_id: int) -> bool:
        channel = self.channels.get(channel_id)
        return channel is not None and channel["type"] in THREAD_TYPES

    def add_thread(
        self,
        parent_id: int,
        name: str,
        *,
        private: bool = False,
        owner_id: int | None = None,
        members: list[int] = (),  # type: ignore[assignment]
        archived: bool = False,
    ) -> int:
        """A thread (not dispatched: it existed before the bot looked). Its type follows the parent:
        an announcement channel's are ANNOUNCEMENT_THREAD, a forum's or media channel's posts
        PUBLIC_THREAD; private threads only in GUILD_TEXT (topics/threads.mdx)."""
        parent = self.channels[parent_id]
        if parent["type"] in THREAD_TYPES:
            raise ValueError("a thread cannot have threads (topics/threads.mdx)")
        if private and parent["type"] != P.CHANNEL_GUILD_TEXT:
            raise ValueError("private threads can only be created in GUILD_TEXT channels (topics/threads.mdx)")
        kind = (
            PRIVATE_THREAD
            if private
            else ANNOUNCEMENT_THREAD
            if parent["type"] == GUILD_ANNOUNCEMENT
            else PUBLIC_THREAD
        )
        owner = owner_id or self.user_id
        thread_id = P.snowflake()
        self.channels[thread_id] = thread_object(thread_id, self.guild_id, parent_id, name, kind, owner)
        self.messages[thread_id] = []
        self.thread_members[thread_id] = {}
        for user_id in {owner, *members}:
            self.thread_members[thread_id][user_id] = P.iso_now()
        self.channels[thread_id]["member_count"] = len(self.thread_members[thread_id])
        if archived:
            self._set_archived(thread_id, True)
        return thread_id

    def _set_archived(self, thread_id: int, archived: bool) -> None:
        meta = self.channels[thread_id]["thread_metadata"]
        meta["archived"] = archived
        meta["archive_timestamp"] = _next_archive_time()

    def archived(self, thread_id: int) -> bool:
        return bool(self.channels[thread_id]["thread_metadata"]["archived"])

    # --- permissions ---------------------------------------------------------------------
    def permissions(self, user_id: int, channel_id: int) -> int:
        """topics/threads.mdx "Permissions": a thread has its parent's permissions; a private
        thread is visible only to its members and to MANAGE_THREADS (moderators)."""
        channel = self.channels[channel_id]
        if channel["type"] not in THREAD_TYPES:
            return super().permissions(user_id, channel_id)
        allowed = super().permissions(user_id, int(channel["parent_id"]))
        if channel["type"] == PRIVATE_THREAD and not (
            allowed & MANAGE_THREADS or user_id in self.thread_members[channel_id]
        ):
            return 0
        return allowed

    def bot_can_view(self, channel_id: int) -> bool:
        return bool(self.permissions(self.bot_user_id, channel_id) & VIEW_CHANNEL)

    def _member_of(self, thread_id: int, user_id: int) -> dict[str, Any]:
        return {
            "id": str(thread_id),
            "user_id": str(user_id),
            "join_timestamp": self.thread_members[thread_id][user_id],
            "flags": 0,
        }

    def _with_own_member(self, thread_id: int) -> dict[str, Any]:
        """topics/threads.mdx "Syncing for the current user": a thread carries the bot's own
        thread member when the bot is in it."""
        thread = dict(self.channels[thread_id])
        if self.bot_user_id in self.thread_members[thread_id]:
            thread["member"] = self._member_of(thread_id, self.bot_user_id)
        return thread

    # --- the gateway -----------------------------------------------------------------------
    def _guild_create(self) -> dict[str, Any]:
        """GUILD_CREATE: threads are not in `channels` but in `threads`: the active ones the bot
        can view (events/gateway-events.mdx "Guild Create")."""
        guild = super()._guild_create()
        # The bot's own member carries its roles (resources/guild.mdx "Guild Member Object"), so its
        # permissions (Manage Threads, say) are what the client computes.
        for member in guild["members"]:
            member["roles"] = [str(r) for r in self.member_roles.get(int(member["user"]["id"]), [])]
        guild["channels"] = [c for c in guild["channels"] if c["type"] not in THREAD_TYPES]
        guild["threads"] = [
            self._with_own_member(tid)
            for tid, channel in self.channels.items()
            if channel["type"] in THREAD_TYPES and not self.archived(tid) and self.bot_can_view(tid)
        ]
        return guild

    async def _thread_event(self, event: str, thread_id: int, data: dict[str, Any]) -> None:
        if self.bot_can_view(thread_id):
            await self._dispatch_guilds_event(event, data)

    async def create_thread(self, parent_id: int, name: str, **kwargs: Any) -> int:
        """Someone starts a thread (or a forum post) now: THREAD_CREATE with `newly_created`."""
        thread_id = self.add_thread(parent_id, name, **kwargs)
        await self._thread_event(
            "THREAD_CREATE", thread_id, {**self._with_own_member(thread_id), "newly_created": True}
        )
        return thread_id

    async def add_thread_member(self, thread_id: int, user_id: int) -> None:
        """events/gateway-events.mdx "Thread Members Update" (sent about other users only with
        GUILD_MEMBERS) and "Thread Create" (sent to a user added to a private thread)."""
        self.thread_members[thread_id][user_id] = P.iso_now()
        self.channels[thread_id]["member_count"] = len(self.thread_members[thread_id])
        await self._members_update(thread_id, user_id, added=True)
        if user_id == self.bot_user_id:
            await self._thread_event("THREAD_CREATE", thread_id, self._with_own_member(thread_id))

    async def remove_thread_member(self, thread_id: int, user_id: int) -> None:
        del self.thread_members[thread_id][user_id]
        self.channels[thread_id]["member_count"] = len(self.thread_members[thread_id])
        await self._members_update(thread_id, user_id, added=False)

    async def _members_update(self, thread_id: int, user_id: int, *, added: bool) -> None:
        sess = self._session
        if sess is None:
            raise RuntimeError("no client has identified with the fake gateway yet")
        about_bot = user_id == self.bot_user_id
        if not (sess.intents & P.INTENT_GUILDS) or not (about_bot or sess.intents & P.INTENT_GUILD_MEMBERS):
            return
        data: dict[str, Any] = {
            "id": str(thread_id),
            "guild_id": str(self.guild_id),
            "member_count": min(len(self.thread_members[thread_id]), 50),
        }
        if added:
            member = P.member_object(P.user_object(user_id, f"user{user_id}"), roles=self.member_roles.get(user_id, []))
            data["added_members"] = [{**self._member_of(thread_id, user_id), "member": member, "presence": None}]
        else:
            data["removed_member_ids"] = [str(user_id)]
        await self._dispatch(sess, "THREAD_MEMBERS_UPDATE", data)

    async def archive_thread(self, thread_id: int, archived: bool = True) -> None:
        """THREAD_UPDATE with the whole thread (events/gateway-events.mdx "Thread Update")."""
        self._set_archived(thread_id, archived)
        await self._thread_event("THREAD_UPDATE", thread_id, self._with_own_member(thread_id))

    async def delete_thread(self, thread_id: int, *, bot_offline: bool = False) -> None:
        """THREAD_DELETE: only `id`, `guild_id`, `parent_id` and `type` (events/gateway-events.mdx)."""
        visible = self.bot_can_view(thread_id)
        thread = self.channels.pop(thread_id)
        self.messages.pop(thread_id, None)
        self.thread_members.pop(thread_id, None)
        if not bot_offline and visible:
            data = {key: thread[key] for key in ("id", "guild_id", "parent_id", "type")}
            await self._dispatch_guilds_event("THREAD_DELETE", data)

    async def delete_channel(self, channel_id: int, *, bot_offline: bool = False) -> None:
        """A deleted channel takes its threads with it (the client learns it from CHANNEL_DELETE)."""
        for thread_id in [t for t, c in self.channels.items() if c.get("parent_id") == str(channel_id)]:
            self.channels.pop(thread_id)
            self.messages.pop(thread_id, None)
            self.thread_members.pop(thread_id, None)
        await super().delete_channel(channel_id, bot_offline=bot_offline)

    async def sync_threads(self, parent_ids: list[int]) -> None:
        """THREAD_LIST_SYNC for channels the bot gained access to (events/gateway-events.mdx)."""
        threads = [
            tid
            for tid, c in self.channels.items()
            if c["type"] in THREAD_TYPES
            and int(c["parent_id"]) in parent_ids
            and not self.archived(tid)
            and self.bot_can_view(tid)
        ]
        await self._dispatch_guilds_event(
            "THREAD_LIST_SYNC",
            {
                "guild_id": str(self.guild_id),
                "channel_ids": [str(p) for p in parent_ids],
                "threads": [self.channels[t] for t in threads],
                "members": [
                    self._member_of(t, self.bot_user_id) for t in threads if self.bot_user_id in self.thread_members[t]
                ],
            },
        )

    def message(self, channel_id: int, **kwargs: Any) -> dict[str, Any]:
        if self.channels[channel_id]["type"] in (GUILD_FORUM, GUILD_MEDIA):
            raise ValueError("forum and media channels hold only threads (topics/threads.mdx)")
        msg = super().message(channel_id, **kwargs)
        if self.is_thread(channel_id):
            thread = self.channels[channel_id]
            thread["message_count"] += 1
            thread["total_message_sent"] += 1
            thread["last_message_id"] = msg["id"]
        return msg

    async def post(self, channel_id: int, **kwargs: Any) -> dict[str, Any]:
        """In a thread: an archived one is unarchived first (THREAD_UPDATE), and MESSAGE_CREATE
        reaches the bot only if it can view the thread."""
        if not self.is_thread(channel_id):
            return await super().post(channel_id, **kwargs)
        if self.archived(channel_id):
            await self.archive_thread(channel_id, archived=False)
        if self.bot_can_view(channel_id):
            return await super().post(channel_id, **kwargs)
        return self.message(channel_id, **kwargs)

    # --- REST ------------------------------------------------------------------------------
    def _add_routes(self) -> None:
        super()._add_routes()
        channel = r"^/channels/(?P<channel>\d+)"
        self._route("GET", r"^/guilds/(?P<guild>\d+)/threads/active$", self._active_threads)
        self._route("GET", channel + r"/threads/archived/(?P<which>public|private)$", self._archived_threads)
        self._route("GET", channel + r"/users/@me/threads/archived/private$", self._joined_archived_threads)
        self._route("GET", channel + r"/thread-members/(?P<user>\d+)$", self._thread_member)

    async def _get_channel(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """resources/channel.mdx "Get Channel": a thread carries the bot's thread member; a channel
        the bot cannot view is 403 Missing Access."""
        channel_id = int(m["channel"])
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        if not self.bot_can_view(channel_id):
            return _error(403, 50001, "Missing Access")
        if self.is_thread(channel_id):
            return _json(self._with_own_member(channel_id))
        return _json(self.channels[channel_id])

    def _page(self, threads: list[int], more: bool) -> web.Response:
        """resources/channel.mdx "List ... Archived Threads" "Response Body": threads, the bot's
        thread members among them, has_more."""
        members = [self._member_of(t, self.bot_user_id) for t in threads if self.bot_user_id in self.thread_members[t]]
        return _json({"threads": [self.channels[t] for t in threads], "members": members, "has_more": more})

    async def _active_threads(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """resources/guild.mdx "List Active Guild Threads": all active threads the bot can access,
        public and private, ordered by id descending; threads and the bot's members."""
        if int(m["guild"]) != self.guild_id or not self.bot_in_guild:
            return _error(404, 10004, "Unknown Guild")
        threads = sorted(
            (
                t
                for t, c in self.channels.items()
                if c["type"] in THREAD_TYPES and not self.archived(t) and self.bot_can_view(t)
            ),
            reverse=True,
        )
        page = self._page(threads, False)
        return page

    def _limit(self, rec: Any) -> int | None:
        """`limit`: the docs give no range; discord.py asks 2 to 100; the stricter reading refuses
        anything outside 1-100 (400 Invalid Form Body)."""
        try:
            limit = int(rec.query.get("limit", 50))
        except ValueError:
            return None
        return limit if 1 <= limit <= 100 else None

    async def _archived_threads(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """resources/channel.mdx "List Public Archived Threads" (READ_MESSAGE_HISTORY) and "List
        Private Archived Threads" (READ_MESSAGE_HISTORY and MANAGE_THREADS): ordered by
        archive_timestamp descending; `before` an ISO8601 timestamp."""
        parent_id = int(m["channel"])
        parent = self.channels.get(parent_id)
        if parent is None or parent["type"] in THREAD_TYPES:
            return _error(404, 10003, "Unknown Channel")
        private = m["which"] == "private"
        refused = self.refuse_bot(parent_id, READ_MESSAGE_HISTORY | (MANAGE_THREADS if private else 0))
        if refused is not None:
            return refused
        limit = self._limit(rec)
        try:
            before = dt.datetime.fromisoformat(rec.query["before"]) if "before" in rec.query else None
        except ValueError:
            before = None
            limit = None
        if limit is None:
            return _error(400, 50035, "Invalid Form Body")
        kinds = (PRIVATE_THREAD,) if private else (PUBLIC_THREAD, ANNOUNCEMENT_THREAD)
        found = [
            t
            for t, c in self.channels.items()
            if c["type"] in kinds and c["parent_id"] == str(parent_id) and self.archived(t)
        ]

        def archived_at(thread_id: int) -> dt.datetime:
            return dt.datetime.fromisoformat(self.channels[thread_id]["thread_metadata"]["archive_timestamp"])

        found = sorted((t for t in found if before is None or archived_at(t) < before), key=archived_at, reverse=True)
        return self._page(found[:limit], len(found) > limit)

    async def _joined_archived_threads(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """resources/channel.mdx "List Joined Private Archived Threads": READ_MESSAGE_HISTORY;
        the private archived threads the bot is in, ordered by id descending; `before` a snowflake."""
        parent_id = int(m["channel"])
        if parent_id not in self.channels or self.is_thread(parent_id):
            return _error(404, 10003, "Unknown Channel")
        refused = self.refuse_bot(parent_id, READ_MESSAGE_HISTORY)
        if refused is not None:
            return refused
        limit = self._limit(rec)
        try:
            before = int(rec.query["before"]) if "before" in rec.query else None
        except ValueError:
            limit = None
        if limit is None:
            return _error(400, 50035, "Invalid Form Body")
        found = sorted(
            (
                t
                for t, c in self.channels.items()
                if c["type"] == PRIVATE_THREAD
                and c["parent_id"] == str(parent_id)
                and self.archived(t)
                and self.bot_user_id in self.thread_members[t]
                and (before is None or t < before)
            ),
            reverse=True,
        )
        return self._page(found[:limit], len(found) > limit)

    async def _thread_member(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """resources/channel.mdx "Get Thread Member": the member object, or 404 if not a member; the
        bot must be able to view the thread (403 Missing Access otherwise)."""
        thread_id, user_id = int(m["channel"]), int(m["user"])
        if not self.is_thread(thread_id):
            return _error(404, 10003, "Unknown Channel")
        if not self.bot_can_view(thread_id):
            return _error(403, 50001, "Missing Access")
        if user_id not in self.thread_members[thread_id]:
            return _error(404, 10007, "Unknown Member")
        return _json(self._member_of(thread_id, user_id))


__all__ = ["MANAGE_THREADS", "ThreadGuildFakeDiscord"]
