"""A stand-in guild with several channels, roles, overwrites and message history.

`GuildFakeDiscord` extends `FakeDiscord` with what image indexing needs:

- channels with permission overwrites and roles, in GUILD_CREATE, and members' roles
  on interactions, with permissions computed as the docs say (`permissions.py`);
- messages: posted (MESSAGE_CREATE), edited (MESSAGE_UPDATE), deleted singly or in bulk
  (MESSAGE_DELETE, MESSAGE_DELETE_BULK), channels deleted (CHANNEL_DELETE) or changed
  (CHANNEL_UPDATE), the bot removed from the guild (GUILD_DELETE);
- REST: Get Channel Messages (before/after/around/limit, newest first) and Get Channel
  Message, with the bot's permissions and the Message Content intent applied.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from . import payloads as P
from .create_message import create_message
from .permissions import ALL, READ_MESSAGE_HISTORY, VIEW_CHANNEL, base_permissions, channel_permissions
from .server import FakeDiscord, _error, _json

#: docs: resources/message.mdx "Message Object": the fields the Message Content intent governs
#: (events/gateway.mdx "Message Content Intent": without it they are empty).
CONTENT_FIELDS = {"content": "", "embeds": [], "attachments": [], "components": []}


class GuildFakeDiscord(FakeDiscord):
    """`FakeDiscord` with a fuller guild: channels, roles, members and messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner_id = 1
        #: Role id -> role object; the @everyone role's id is the guild id.
        self.roles: dict[int, dict[str, Any]] = {self.guild_id: P.everyone_role(self.guild_id)}
        self.channels: dict[int, dict[str, Any]] = {self.channel_id: self.channel}
        #: User id -> role ids (members not listed have none).
        self.member_roles: dict[int, list[int]] = {}
        #: Channel id -> messages, oldest first.
        self.messages: dict[int, list[dict[str, Any]]] = {self.channel_id: []}
        self._place: tuple[int | None, int, list[int]] | None = None
        #: Messages the bot created in channels (Create Message): channel id, request body, message.
        self.sent: list[dict[str, Any]] = []

    # --- the guild ---------------------------------------------------------------------
    def add_role(self, name: str, permissions: int) -> int:
        role_id = P.snowflake()
        role = {**P.everyone_role(self.guild_id), "id": str(role_id), "name": name, "position": len(self.roles)}
        role["permissions"] = str(permissions)
        self.roles[role_id] = role
        return role_id

    def add_channel(self, name: str, overwrites: list[dict[str, Any]] = ()) -> int:  # type: ignore[assignment]
        """A text channel (before the bot connects: it arrives in GUILD_CREATE)."""
        channel_id = P.snowflake()
        channel = P.text_channel_object(channel_id, self.guild_id, name)
        channel["permission_overwrites"] = list(overwrites)
        channel["position"] = len(self.channels)
        self.channels[channel_id] = channel
        self.messages[channel_id] = []
        return channel_id

    def permissions(self, user_id: int, channel_id: int) -> int:
        roles = {rid: int(role["permissions"]) for rid, role in self.roles.items()}
        member_roles = self.member_roles.get(user_id, [])
        base = base_permissions(self.guild_id, self.owner_id, roles, user_id, member_roles)
        overwrites = self.channels[channel_id]["permission_overwrites"]
        return channel_permissions(base, self.guild_id, user_id, member_roles, overwrites)

    def refuse_bot(self, channel_id: int, needed: int = 0) -> web.Response | None:
        """What Discord answers the bot in `channel_id` when it may not (topics/opcodes-and-status-codes.mdx
        "JSON Error Codes"): 10003 Unknown Channel, 50001 Missing Access without VIEW_CHANNEL, 50013
        Missing Permissions without every permission in `needed`; None when it may."""
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        allowed = self.permissions(self.bot_user_id, channel_id)
        if not allowed & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        if allowed & needed != needed:
            return _error(403, 50013, "Missing Permissions")
        return None

    def _guild_create(self) -> dict[str, Any]:
        guild = super()._guild_create()
        guild.update(
            owner_id=str(self.owner_id), roles=list(self.roles.values()), channels=list(self.channels.values())
        )
        return guild

    async def _get_channel(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        channel = self.channels.get(int(m["channel"]))
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        return _json(channel)

    # --- interactions from a member with roles, in a channel -----------------------------
    async def send_command(  # type: ignore[override]
        self, name: str, options: dict[str, object] | None = None, *, channel_id: int | None = None, **kwargs: Any
    ) -> Any:
        """`FakeDiscord.send_command`, run in `channel_id` by a member with the roles in `member_roles`.

        The member's ``permissions`` and ``app_permissions`` are computed for that channel
        (docs: receiving-and-responding.mdx "Interaction Structure": "Bot permissions in
        the channel" and the member's "total permissions ... including overwrites").
        """
        user_id = kwargs.get("user_id") or self.user_id
        self._place = (channel_id, user_id, self.member_roles.get(user_id, []))
        try:
            return await super().send_command(name, options, **kwargs)
        finally:
            self._place = None

    def _shape_interaction(self, payload: dict[str, Any]) -> None:
        if self._place is None or "member" not in payload or payload.get("guild_id") != str(self.guild_id):
            return
        channel_id, user_id, roles = self._place
        channel_id = channel_id or self.channel_id
        payload.update(channel=self.channels[channel_id], channel_id=str(channel_id))
        payload["member"]["roles"] = [str(r) for r in roles]
        payload["member"]["permissions"] = str(self.permissions(user_id, channel_id))
        payload["app_permissions"] = str(self.permissions(self.bot_user_id, channel_id))

    def _channel_option(self, channel_id: int, resolved: dict[str, dict[str, Any]]) -> str:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"channel {channel_id} does not exist in the fake guild")
        user_id = self._place[1] if self._place else self.user_id
        partial = {key: channel[key] for key in ("id", "name", "type")}
        partial["permissions"] = str(self.permissions(user_id, channel_id))
        resolved.setdefault("channels", {})[str(channel_id)] = partial
        return str(channel_id)

    # --- messages ----------------------------------------------------------------------
    def message(
        self,
        channel_id: int,
        *,
        images: list[tuple[bytes, str]] = (),  # type: ignore[assignment]
        author_id: int | None = None,
        content: str = "",
        embeds: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """A message in `channel_id`'s history (not dispatched: posted before the bot looked)."""
        msg = self.channel_message(
            content=content,
            attachments=[(data, filename, P.upload_content_type(filename)) for data, filename in images],
            embeds=embeds,
            author_id=author_id,
            channel_id=channel_id,
        )
        msg["guild_id"] = str(self.guild_id)
        self.messages[channel_id].append(msg)
        return msg

    def _content_allowed(self, msg: dict[str, Any], intents: int) -> bool:
        """docs: events/gateway.mdx "Message Content Intent" and its exceptions (own messages, mentions)."""
        if intents & P.INTENT_MESSAGE_CONTENT:
            return True
        mentioned = any(str(u.get("id")) == str(self.bot_user_id) for u in msg.get("mentions", []))
        return mentioned or str(msg["author"]["id"]) == str(self.bot_user_id)

    def _as_seen(self, msg: dict[str, Any], intents: int) -> dict[str, Any]:
        return dict(msg) if self._content_allowed(msg, intents) else {**msg, **CONTENT_FIELDS}

    async def _send_guild_message_event(self, event: str, data: dict[str, Any]) -> None:
        """Guild message events need GUILD_MESSAGES (events/gateway.mdx "List of Intents")."""
        sess = self._session
        if sess is None:
            raise RuntimeError("no client has identified with the fake gateway yet")
        if sess.intents & P.INTENT_GUILD_MESSAGES:
            await self._dispatch(sess, event, data)

    async def post(self, channel_id: int, **kwargs: Any) -> dict[str, Any]:
        """Someone posts a message now: MESSAGE_CREATE (with the guild_id and member extra fields)."""
        msg = self.message(channel_id, **kwargs)
        sess = self._session
        intents = sess.intents if sess is not None else 0
        event = self._as_seen(msg, intents)
        member = P.member_object(msg["author"], roles=self.member_roles.get(int(msg["author"]["id"]), []))
        member.pop("user")
        event["member"] = member
        await self._send_guild_message_event("MESSAGE_CREATE", event)
        return msg

    async def edit(self, channel_id: int, message_id: str, *, keep_attachments: int) -> None:
        """The author edits the message, keeping only its first `keep_attachments` attachments."""
        msg = self._find(channel_id, message_id)
        msg["attachments"] = msg["attachments"][:keep_attachments]
        msg["edited_timestamp"] = P.iso_now()
        sess = self._session
        await self._send_guild_message_event("MESSAGE_UPDATE", self._as_seen(msg, sess.intents if sess else 0))

    async def delete(self, channel_id: int, message_id: str) -> None:
        self.messages[channel_id].remove(self._find(channel_id, message_id))
        data = {"id": message_id, "channel_id": str(channel_id), "guild_id": str(self.guild_id)}
        await self._send_guild_message_event("MESSAGE_DELETE", data)

    async def bulk_delete(self, channel_id: int, message_ids: list[str]) -> None:
        for message_id in message_ids:
            self.messages[channel_id].remove(self._find(channel_id, message_id))
        data = {"ids": message_ids, "channel_id": str(channel_id), "guild_id": str(self.guild_id)}
        await self._send_guild_message_event("MESSAGE_DELETE_BULK", data)

    async def delete_channel(self, channel_id: int, *, bot_offline: bool = False) -> None:
        """CHANNEL_DELETE (GUILDS intent): the channel object. `bot_offline`: deleted while no
        client is connected: no event, the next GUILD_CREATE just lacks the channel."""
        channel = self.channels.pop(channel_id)
        self.messages.pop(channel_id, None)
        if not bot_offline:
            await self._dispatch_guilds_event("CHANNEL_DELETE", channel)

    async def set_overwrites(self, channel_id: int, overwrites: list[dict[str, Any]]) -> None:
        """CHANNEL_UPDATE with new permission overwrites."""
        self.channels[channel_id]["permission_overwrites"] = list(overwrites)
        await self._dispatch_guilds_event("CHANNEL_UPDATE", self.channels[channel_id])

    async def remove_bot(self) -> None:
        """GUILD_DELETE without `unavailable`: the bot was removed from the guild (events/gateway-events.mdx)."""
        self.bot_in_guild = False  # a later READY lists the guild no more
        await self._dispatch_guilds_event("GUILD_DELETE", {"id": str(self.guild_id)})

    async def _dispatch_guilds_event(self, event: str, data: dict[str, Any]) -> None:
        sess = self._session
        if sess is None:
            raise RuntimeError("no client has identified with the fake gateway yet")
        if sess.intents & P.INTENT_GUILDS:
            await self._dispatch(sess, event, data)

    def _find(self, channel_id: int, message_id: str) -> dict[str, Any]:
        return next(m for m in self.messages[channel_id] if m["id"] == str(message_id))

    # --- REST ----------------------------------------------------------------------------
    def _add_routes(self) -> None:
        super()._add_routes()
        self._route("GET", r"^/channels/(?P<channel>\d+)/messages$", self._get_messages)
        self._route("GET", r"^/channels/(?P<channel>\d+)/messages/(?P<mid>\d+)$", self._get_message)
        self._route("POST", r"^/channels/(?P<channel>\d+)/messages$", self._create_message)

    async def _create_message(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        return await create_message(self, request, rec, m)

    def _rest_view(self, msg: dict[str, Any]) -> dict[str, Any]:
        """REST applies the intent as enabled in the portal (`privileged_intents`)."""
        seen = self._as_seen(msg, self.privileged_intents)
        seen.pop("member", None)
        return seen

    async def _get_messages(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """docs: resources/message.mdx "Get Channel Messages": VIEW_CHANNEL needed; without
        READ_MESSAGE_HISTORY an empty list; before/after/around exclusive; limit 1-100 (50);
        newest to oldest."""
        channel_id = int(m["channel"])
        refused = self.refuse_bot(channel_id)
        if refused is not None:
            return refused
        allowed = self.permissions(self.bot_user_id, channel_id)
        query = rec.query
        given = [key for key in ("before", "after", "around") if key in query]
        try:
            limit = int(query.get("limit", 50))
            anchor = int(query[given[0]]) if given else None
        except ValueError:
            return _error(400, 50035, "Invalid Form Body")
        if len(given) > 1 or not 1 <= limit <= 100:
            return _error(400, 50035, "Invalid Form Body")
        if not allowed & READ_MESSAGE_HISTORY:
            return _json([])
        history = sorted(self.messages[channel_id], key=lambda msg: int(msg["id"]))
        if not given:
            chosen = history[-limit:]
        elif given[0] == "before":
            chosen = [msg for msg in history if int(msg["id"]) < anchor][-limit:]  # type: ignore[operator]
        elif given[0] == "after":
            chosen = [msg for msg in history if int(msg["id"]) > anchor][:limit]  # type: ignore[operator]
        else:
            index = next((i for i, msg in enumerate(history) if int(msg["id"]) >= anchor), len(history))  # type: ignore[operator]
            chosen = history[max(0, index - limit // 2) : index - limit // 2 + limit]
        return _json([self._rest_view(msg) for msg in reversed(chosen)])

    async def _get_message(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """docs: resources/message.mdx "Get Channel Message": VIEW_CHANNEL and READ_MESSAGE_HISTORY."""
        channel_id = int(m["channel"])
        refused = self.refuse_bot(channel_id, READ_MESSAGE_HISTORY)
        if refused is not None:
            return refused
        msg = next((msg for msg in self.messages[channel_id] if msg["id"] == m["mid"]), None)
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        return _json(self._rest_view(msg))


__all__ = ["ALL", "GuildFakeDiscord"]
