"""What a bot writes into a guild channel on its own: reactions and (reply) messages.

`ChannelWritesFakeDiscord` extends `GuildFakeDiscord` with:

- server emojis (in GUILD_CREATE's `emojis`), for reactions with a custom emoji;
- link embeds added to a posted message later, by MESSAGE_UPDATE (`unfurl`);
- Create Reaction, `PUT /channels/{channel.id}/messages/{message.id}/reactions/{emoji}/@me`
  (docs: resources/message.mdx "Create Reaction"): READ_MESSAGE_HISTORY always, ADD_REACTIONS
  unless someone already reacted with that emoji; the emoji URL-encoded (else 10014 Unknown
  Emoji), a custom one as `name:id` of an emoji the bot can use; 204 on success. Every reaction
  is recorded in `reactions`;
- the messages the bot created (`created`), through `GuildFakeDiscord`'s Create Message
  (`create_message.py`, which enforces that endpoint's rules).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import regex
from aiohttp import web

from . import payloads as P
from .messages import GuildFakeDiscord
from .permissions import READ_MESSAGE_HISTORY
from .server import _error

ADD_REACTIONS = 1 << 6
#: One Unicode emoji: a single grapheme that draws one (a pictograph, a flag, a keycap).
_UNICODE_EMOJI = regex.compile(r"^(?=\X$)(?:.*\p{Extended_Pictographic}|\p{Regional_Indicator}{2}|.*\u20e3)")
_CUSTOM = re.compile(r"^(?P<name>[A-Za-z0-9_]{2,32}):(?P<id>\d+)$")


@dataclass(frozen=True, slots=True)
class Reaction:
    channel_id: int
    message_id: str
    #: The emoji as the path named it, decoded: a Unicode emoji or `name:id`.
    emoji: str
    user_id: int


@dataclass(frozen=True, slots=True)
class Created:
    #: The message as stored and returned.
    message: dict[str, Any]
    #: The request body the bot sent.
    body: dict[str, Any]


class ChannelWritesFakeDiscord(GuildFakeDiscord):
    """`GuildFakeDiscord` where the bot may react to and reply in channels, as the docs allow."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Emoji id -> emoji object (resources/emoji.mdx "Emoji Object").
        self.emojis: dict[int, dict[str, Any]] = {}
        self.reactions: list[Reaction] = []

    @property
    def created(self) -> list[Created]:
        """Messages the bot created, with the bodies it sent (what could have pinged is in there):
        Create Message itself is `GuildFakeDiscord`'s (`create_message.py`)."""
        return [Created(sent["message"], sent["request"]) for sent in self.sent]

    def add_emoji(self, name: str) -> int:
        """A server emoji (before the bot connects: it arrives in GUILD_CREATE)."""
        emoji_id = P.snowflake()
        self.emojis[emoji_id] = {
            "id": str(emoji_id),
            "name": name,
            "roles": [],
            "require_colons": True,
            "managed": False,
            "animated": False,
            "available": True,
        }
        return emoji_id

    def _guild_create(self) -> dict[str, Any]:
        guild = super()._guild_create()
        guild["emojis"] = list(self.emojis.values())
        return guild

    async def unfurl(self, channel_id: int, message_id: str, embeds: list[dict[str, Any]]) -> None:
        """Discord adds embeds for the links of a posted message a moment later: MESSAGE_UPDATE with
        the whole message (docs: events/gateway-events.mdx "Message Update")."""
        msg = self._find(channel_id, message_id)
        msg["embeds"] = [*msg["embeds"], *embeds]
        sess = self._session
        await self._send_guild_message_event("MESSAGE_UPDATE", self._as_seen(msg, sess.intents if sess else 0))

    def _add_routes(self) -> None:
        super()._add_routes()
        self._route(
            "PUT", r"^/channels/(?P<channel>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)/@me$", self._react
        )

    def _known_emoji(self, emoji: str) -> bool:
        custom = _CUSTOM.match(emoji)
        if custom is not None:
            known = self.emojis.get(int(custom["id"]))
            return known is not None and known["name"] == custom["name"]
        return _UNICODE_EMOJI.match(emoji) is not None

    async def _react(self, request: web.Request, rec: Any, m: re.Match[str]) -> web.Response:
        """docs: resources/message.mdx "Create Reaction"."""
        channel_id = int(m["channel"])
        refused = self.refuse_bot(channel_id, READ_MESSAGE_HISTORY)
        if refused is not None:
            return refused
        allowed = self.permissions(self.bot_user_id, channel_id)
        if not any(msg["id"] == m["mid"] for msg in self.messages[channel_id]):
            return _error(404, 10008, "Unknown Message")
        # "The emoji must be URL Encoded or the request will fail with 10014: Unknown Emoji."
        raw = request.raw_path.split("/reactions/", 1)[1].split("/", 1)[0]
        emoji = m["emoji"]
        if not raw.isascii() or urllib.parse.unquote(raw) != emoji or not self._known_emoji(emoji):
            return _error(400, 10014, "Unknown Emoji")
        here = [r for r in self.reactions if r.channel_id == channel_id and r.message_id == m["mid"]]
        already = any(r.emoji == emoji for r in here)
        if not already and not allowed & ADD_REACTIONS:
            return _error(403, 50013, "Missing Permissions")
        reaction = Reaction(channel_id, m["mid"], emoji, self.bot_user_id)
        if reaction not in self.reactions:  # reacting twice with one emoji is one reaction
            self.reactions.append(reaction)
        return web.Response(status=204)


__all__ = ["ADD_REACTIONS", "ChannelWritesFakeDiscord", "Created", "Reaction"]
