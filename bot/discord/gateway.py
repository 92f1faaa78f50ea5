"""Gateway failures handled as Discord documents them, where discord.py 2.7 does not.

Three small additions, each against a page of Discord's docs (events/gateway.mdx,
topics/opcodes-and-status-codes.mdx):

- `fatal_close_message`: the close codes that a reconnect cannot fix (4004, 4010 to
  4014; "Reconnect: false") become one line that says what to do. `serve` raises it
  as a `ConfigError` (exit code 78), so a supervisor does not restart-loop on it.
- `ZombieWatchdog`: "If a client does not receive a heartbeat ACK between its
  attempts at sending heartbeats ... [it] should immediately terminate the
  connection with any close code besides 1000 or 1001, then reconnect and attempt
  to Resume" ("Sending Heartbeats"). discord.py only recycles a connection after
  `heartbeat_timeout` of total silence, and any event counts as a sign of life.
- `DocumentedGateway`: every new session (IDENTIFY) opens "the cached URL from
  Get Gateway", never READY's `resume_gateway_url` ("Resuming"); and after 4007
  (invalid seq) or 4009 (session timed out) the client starts a new session instead
  of first trying a RESUME that must fail. discord.py's `Client.connect` keeps the
  resume URL for the IDENTIFY after op 9 d=false (README, "Running for the long
  term", has the upstream report).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import discord
import discord.client
from discord.gateway import DiscordWebSocket

if TYPE_CHECKING:
    from discord.gateway import KeepAliveHandler

log = logging.getLogger(__name__)

#: "Reconnect: false" in opcodes-and-status-codes.mdx, "Gateway Close Event Codes".
FATAL_CLOSE_CODES = frozenset({4004, 4010, 4011, 4012, 4013, 4014})
#: "Reconnect and start a new session" (same table): a RESUME cannot succeed.
NEW_SESSION_CLOSE_CODES = frozenset({4007, 4009})

PORTAL = "Developer Portal (https://discord.com/developers/applications) → your app → Bot"

#: discord.py's flag name -> the name the Developer Portal shows (gateway.mdx "Privileged Intents").
PRIVILEGED_INTENTS = {
    "members": "Server Members Intent",
    "presences": "Presence Intent",
    "message_content": "Message Content Intent",
}


def token_rejected_message() -> str:
    """REST 401 at login: the token is wrong, or was reset since it was copied."""
    return (
        "Discord rejected DISCORD_TOKEN (401 Unauthorized): the token is wrong or was reset; "
        f"copy the current one from the {PORTAL} → Reset Token into DISCORD_TOKEN."
    )


def privileged_intents_message(intents: discord.Intents) -> str:
    """4014: which privileged intents the bot asked for, and where to switch them on."""
    names = [portal for flag, portal in PRIVILEGED_INTENTS.items() if getattr(intents, flag)]
    which = " and ".join(names) if names else "privileged intents it asks for"
    return (
        f"Discord refused the gateway intents (4014 Disallowed intents): enable the {which} in the "
        f"{PORTAL} → Privileged Gateway Intents (or turn off the setting that asks for it)."
    )


def fatal_close_message(code: int, intents: discord.Intents) -> str:
    """The one line for a close code that a reconnect cannot fix (`FATAL_CLOSE_CODES`)."""
    if code == 4014:
        return privileged_intents_message(intents)
    return {
        4004: (
            "Discord closed the gateway with 4004 Authentication failed: the token was reset or revoked; "
            f"put the new one from the {PORTAL} → Reset Token in DISCORD_TOKEN."
        ),
        4010: (
            "Discord closed the gateway with 4010 Invalid shard: a shard id is not below the shard count; "
            "check the sharding settings."
        ),
        4011: (
            "Discord closed the gateway with 4011 Sharding required: the bot is in too many servers for one "
            "connection; run it sharded (see README, sharding)."
        ),
        4012: (
            "Discord closed the gateway with 4012 Invalid API version: this discord.py speaks a gateway "
            "version Discord no longer accepts; upgrade it (scripts/install.sh)."
        ),
        4013: (
            f"Discord closed the gateway with 4013 Invalid intents: {intents.value} is not a valid intents "
            "value; this is a bug in clipbot, please report it."
        ),
    }.get(code, f"Discord closed the gateway with {code}, which a reconnect cannot fix.")


class DocumentedGateway(DiscordWebSocket):
    """discord.py's gateway socket, opened where gateway.mdx "Resuming" says.

    Only `from_client` (which picks the URL and RESUME or IDENTIFY) changes.
    """

    @classmethod
    async def from_client(  # type: ignore[override]
        cls, client: discord.Client, *, resume: bool = False, gateway: Any = None, **kwargs: Any
    ) -> DiscordWebSocket:
        previous = _previous_socket(client, kwargs.get("shard_id"))
        closed_with = getattr(getattr(previous, "socket", None), "close_code", None)
        if resume and closed_with in NEW_SESSION_CLOSE_CODES:
            log.info("Gateway closed with %s: starting a new session", closed_with)
            resume = False
            kwargs.update(session=None, sequence=None)
        if not resume:
            gateway = None  # a new session: the cached gateway URL, never resume_gateway_url
        return await super().from_client(client, resume=resume, gateway=gateway, **kwargs)


def install_documented_gateway() -> None:
    """Make `Client.connect` open `DocumentedGateway` sockets (idempotent, process-wide).

    `Client.connect` looks `DiscordWebSocket` up in `discord.client`'s namespace; the
    sharded client already passes no URL for a new session.
    """
    discord.client.DiscordWebSocket = DocumentedGateway  # type: ignore[misc]


def _previous_socket(client: discord.Client, shard_id: int | None) -> DiscordWebSocket | None:
    """The socket being replaced (still the client's or shard's `ws` while a new one opens)."""
    if isinstance(client, discord.AutoShardedClient):
        info = client.get_shard(shard_id) if shard_id is not None else None
        return getattr(getattr(info, "_parent", None), "ws", None)
    return getattr(client, "ws", None)


def _sockets(client: discord.Client) -> list[DiscordWebSocket]:
    if isinstance(client, discord.AutoShardedClient):
        shards = [getattr(info, "_parent", None) for info in client.shards.values()]
        return [ws for ws in (getattr(s, "ws", None) for s in shards) if ws is not None]
    ws = getattr(client, "ws", None)
    return [ws] if ws is not None else []


#: Added to the two intervals: the event loop's and the heartbeat thread's scheduling
#: delays. Negligible against Discord's 41.25 s interval (2 intervals + 5 s is 2.1
#: intervals); it keeps a loaded test machine, whose stand-in heartbeats every 0.5 s,
#: from mistaking a slow loop for a zombie.
ZOMBIE_GRACE_S = 5.0


class ZombieWatchdog:
    """Closes (4000, resumable) a connection that has gone two heartbeat intervals without an ACK.

    A heartbeat goes out every interval and each gets an ACK, so an ACK older than two
    intervals means that the heartbeat sent in between was not acknowledged before the
    next one was due: the docs' zombie. It reads discord.py's keep-alive time of the last
    ACK (`_last_ack`, `time.perf_counter()`, set on the event loop) four times per
    interval. (Comparing with `_last_send` instead would race: the heartbeat thread
    stamps it after the send completes, which can be after a fast ACK.)
    """

    def __init__(self, client: discord.Client, grace_s: float = ZOMBIE_GRACE_S) -> None:
        self.client = client
        self.grace_s = grace_s
        #: Connections closed as zombies, for logs and tests.
        self.closed = 0

    async def run(self) -> None:
        """Check until the client closes; started by the bot's `setup_hook`."""
        while not self.client.is_closed():
            interval = 1.0
            try:
                interval = await self.check()
            except Exception:  # it reads discord.py internals: never let one surprise stop it
                log.exception("The gateway zombie check failed; trying again")
            await asyncio.sleep(interval / 4)

    async def check(self) -> float:
        """Close every zombie connection now; returns the shortest heartbeat interval seen."""
        live = [(ws, ka) for ws in _sockets(self.client) if (ka := ws._keep_alive) is not None and ka.interval]
        for ws, keep_alive in live:
            if is_zombie(keep_alive, time.perf_counter(), self.grace_s):
                self.closed += 1
                log.warning(
                    "Shard %s: no heartbeat ACK for %.1f s (the interval is %.1f s); closing the zombie "
                    "connection to resume",
                    ws.shard_id,
                    time.perf_counter() - keep_alive._last_ack,
                    keep_alive.interval,
                )
                await ws.close(4000)
        return min((ka.interval or 1.0 for _, ka in live), default=1.0)


def is_zombie(keep_alive: KeepAliveHandler, now: float, grace_s: float = ZOMBIE_GRACE_S) -> bool:
    """No ACK for two heartbeat intervals (gateway.mdx "Sending Heartbeats"), plus `grace_s`."""
    return now - keep_alive._last_ack > 2 * (keep_alive.interval or 0.0) + grace_s
