"""Create Message (POST /channels/{id}/messages) in the stand-in guild: what the bot posts by itself.

docs: resources/message.mdx "Create Message": the current user needs SEND_MESSAGES in a
guild channel (and VIEW_CHANNEL to reach it), READ_MESSAGE_HISTORY to reply to a message;
only SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS, IS_VOICE_MESSAGE and IS_COMPONENTS_V2 may be
set in `flags`; at least one of content, embeds, sticker_ids, components, files or poll.
"message_reference" (Message Reference Structure): a reply names a message of this
channel; an unknown one is refused unless `fail_if_not_exists` is false (it defaults to true).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import payloads as P
from .components import validate_components
from .permissions import READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_CHANNEL
from .server import _error, _json

if TYPE_CHECKING:
    from .messages import GuildFakeDiscord

#: docs: resources/message.mdx "Create Message", JSON params, flags.
CREATE_MESSAGE_FLAGS = (
    P.MESSAGE_FLAG_SUPPRESS_EMBEDS
    | P.MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS
    | P.MESSAGE_FLAG_IS_VOICE_MESSAGE
    | P.MESSAGE_FLAG_IS_COMPONENTS_V2
)


async def create_message(fake: GuildFakeDiscord, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
    channel_id = int(m["channel"])
    if channel_id not in fake.channels:
        return _error(404, 10003, "Unknown Channel")
    allowed = fake.permissions(fake.bot_user_id, channel_id)
    if not allowed & VIEW_CHANNEL:
        return _error(403, 50001, "Missing Access")
    if not allowed & SEND_MESSAGES:
        return _error(403, 50013, "Missing Permissions")
    data = rec.json
    if not isinstance(data, dict):
        return _error(400, 50109, "The request body contains invalid JSON.")
    errors = P.validate_message(data, [], allowed_flags=CREATE_MESSAGE_FLAGS)
    errors.update(validate_components(data, []))
    if errors:
        return _error(400, 50035, "Invalid Form Body", errors)
    if P.message_is_empty(data, len(rec.files)):
        return _error(400, 50006, "Cannot send an empty message")
    reference = data.get("message_reference")
    if reference is not None:
        if not allowed & READ_MESSAGE_HISTORY:
            return _error(403, 50013, "Missing Permissions")
        target = reference.get("message_id")
        known = any(msg["id"] == str(target) for msg in fake.messages[channel_id])
        if not known and reference.get("fail_if_not_exists", True):
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {"message_reference": P._err("REPLIES_UNKNOWN_MESSAGE", "Unknown message")},
            )
    msg = fake.channel_message(content=data.get("content") or "", channel_id=channel_id, author_id=fake.bot_user_id)
    msg.update(
        author=fake.bot_user,
        guild_id=str(fake.guild_id),
        embeds=list(data.get("embeds") or []),
        components=list(data.get("components") or []),
        flags=int(data.get("flags") or 0),
        type=19 if reference is not None else 0,
    )
    if reference is not None:
        msg["message_reference"] = {"message_id": str(reference.get("message_id")), "channel_id": str(channel_id)}
    #: What was asked, for tests to read (allowed_mentions is not part of the message object).
    fake.sent.append({"channel_id": channel_id, "request": data, "message": msg})
    fake.messages[channel_id].append(msg)
    fake._notify()
    return _json(msg)
