"""The stand-in's gateway: the happy cycle, and the ways Discord's gateway fails.

A mixin of `FakeDiscord` (it shares the server's sessions, interactions and token),
kept in its own module because it is a protocol of its own (and longer than our
~300-line habit for the same reason: one state machine reads best in one place). Each rule cites the page
of Discord's docs it follows: events/gateway.mdx (G), events/gateway-events.mdx (GE),
topics/opcodes-and-status-codes.mdx "Gateway Close Event Codes" (C). Where the docs do
not say what Discord does, the comment says so and the stricter reading is taken.

Switches for tests (each has a self-test in tests/fakediscord/tests/test_gateway_rules.py):

- ``ack_heartbeats = False``: a zombie link, events still flow but no op 11 ACK.
- ``request_heartbeat()``: op 1 (G "Heartbeat Requests").
- ``send_reconnect()``: op 7 (GE "Reconnect").
- ``invalidate_session(resumable)``: op 9 with d=true or d=false (GE "Invalid Session").
- ``expire_session()``: the session times out (close 4009, no RESUME possible).
- ``drop_gateway(code)``: close with any code (4007 and 4009 also end the session).
- ``rate_limit_identify(count)``: the next IDENTIFYs find their concurrency bucket taken.
- ``close_next_identify(code)``: refuse the next IDENTIFY with a close code (4004, 4010-4014 ...).
- ``bot_in_guild = False``: the bot was removed (``remove_bot()`` sets it): READY lists no guild.
  A sharded session gets the guild only on its shard, ``(guild_id >> 22) % num_shards``.
- constructor settings: ``session_start_limit``, ``identify_interval_s``,
  ``max_concurrency``, ``required_shards``, ``replay_buffer``, ``session_ttl_s``,
  ``send_limit``, ``heartbeat_grace_s``.

Protocol errors of the client (a payload Discord would close the connection for, an
IDENTIFY on the resume URL ...) are kept in ``gateway_violations``; the fixtures fail the
test at teardown unless it called ``expect_gateway_violations()``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import payloads as P
from .records import GatewayConnection

if TYPE_CHECKING:
    from .server import FakeDiscord

GATEWAY_PATH = "/gateway"
# READY's resume_gateway_url points at a different path so tests can tell that
# discord.py resumed where Discord told it to, not at the default gateway.
RESUME_GATEWAY_PATH = "/resume-gateway"

# C: every code the table lists, by name.
CLOSE_UNKNOWN_ERROR = 4000
CLOSE_INVALID_SEQ = 4007
CLOSE_RATE_LIMITED = 4008
CLOSE_SESSION_TIMED_OUT = 4009
CLOSE_INVALID_SHARD = 4010
CLOSE_SHARDING_REQUIRED = 4011
CLOSE_INVALID_API_VERSION = 4012
CLOSE_INVALID_INTENTS = 4013
CLOSE_REASONS = {
    4000: b"Unknown error.",
    4001: b"Unknown opcode.",
    4002: b"Error while decoding payload.",
    4003: b"Not authenticated.",
    4004: b"Authentication failed.",
    4005: b"Already authenticated.",
    4007: b"Invalid seq.",
    4008: b"Rate limited.",
    4009: b"Session timed out.",
    4010: b"Invalid shard.",
    4011: b"Sharding required.",
    4012: b"Invalid API version.",
    4013: b"Invalid intent(s).",
    4014: b"Disallowed intent(s).",
}

# G "List of Intents": every bit Discord defines (17-19, 22, 23 are unused).
KNOWN_INTENTS = sum(1 << bit for bit in (*range(17), 20, 21, 24, 25))
# reference.mdx "API Versioning": 10 and 9 are "Available"; the stand-in speaks 10 only (stricter).
API_VERSIONS = ("10",)
# G "Sending Events": "Must not exceed 4096 bytes".
MAX_PAYLOAD_BYTES = 4096
# G "Rate Limiting": "120 gateway events per connection every 60 seconds".
SEND_LIMIT = 120
SEND_WINDOW_S = 60.0
# Discord's own heartbeat interval (GE "Hello" example); the stand-in's time scale.
DISCORD_HEARTBEAT_MS = 41_250


@dataclass(eq=False)
class Conn:
    """One live websocket: sends are serialised because zlib-stream is stateful."""

    ws: web.WebSocketResponse
    record: GatewayConnection
    compressor: Any = None  # zlib compress object when the client asked for zlib-stream
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: Session | None = None
    ready: bool = False  # READY/RESUMED sent: dispatches may go out on it
    transport: Any = None  # the TCP transport, for a drop without a close frame
    last_heartbeat: float = field(default_factory=time.monotonic)
    sent_times: list[float] = field(default_factory=list)  # client frames, for the send limit

    async def close(self, code: int, message: bytes | None = None) -> None:
        """Close from the server side, remembering the code we sent (not the echo)."""
        self.ready = False
        if self.record.close_code is None:
            self.record.close_code = code
        await self.ws.close(code=code, message=message if message is not None else CLOSE_REASONS.get(code, b""))

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one gateway frame; False if the socket is already gone."""
        text = json.dumps(frame, separators=(",", ":"))
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                if self.compressor is not None:
                    data = self.compressor.compress(text.encode())
                    data += self.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
        return True


@dataclass(eq=False)
class Session:
    """A gateway session: survives its connection so that RESUME can replay events."""

    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    # (seq, frame, callback run when the frame is written to a socket)
    buffer: list[tuple[int, dict[str, Any], Callable[[], None] | None]] = field(default_factory=list)
    conn: Conn | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Events dropped from the front of `buffer` (replay_buffer): a RESUME from before them cannot replay.
    overflowed_to: int = 0
    disconnected_at: float | None = None
    ended: bool = False  # invalidated or timed out: never resumable again

    def frame(self, event: str, data: Any) -> dict[str, Any]:
        self.seq += 1
        return {"op": P.OP_DISPATCH, "t": event, "s": self.seq, "d": data}


class GatewayMixin:
    """The gateway half of `FakeDiscord` (see the module docstring)."""

    def _init_gateway(
        self: FakeDiscord,
        *,
        session_start_limit: tuple[int, float] = (1000, 86_400.0),
        identify_interval_s: float = 5.0,
        max_concurrency: int = 1,
        required_shards: int = 1,
        replay_buffer: int = 1000,
        session_ttl_s: float = 60.0,
        send_limit: tuple[int, float] | None = None,
        heartbeat_grace_s: float | None = None,
    ) -> None:
        """Gateway settings; the defaults never trouble a well-behaved client.

        ``session_start_limit``: (total IDENTIFYs, per seconds); G "Identifying": past it,
        "all active sessions ... will be terminated, the bot token will be reset".
        ``identify_interval_s`` and ``max_concurrency``: G "Rate Limiting", one IDENTIFY
        per bucket (``shard_id % max_concurrency``) per 5 s, else op 9. ``required_shards``
        over 1: an IDENTIFY without that many shards is closed 4011. ``replay_buffer``:
        events kept for RESUME (Discord does not say how many; past it a RESUME gets op 9).
        ``session_ttl_s``: how long a disconnected session stays resumable (G "Initiating
        a Disconnect": "timeout after a few minutes"). ``send_limit``: (events, seconds)
        per connection, default 120 per 60 s of Discord time, i.e. scaled by
        ``heartbeat_interval_ms`` / 41250, so that a test heartbeating every 0.5 s is
        held to Discord's heartbeats-to-limit ratio. ``heartbeat_grace_s``: how late a
        heartbeat may be before the connection is closed (default: two intervals, at
        least 5 s: a loaded test machine, or a thread importing a large library, can stall
        discord.py's heartbeat thread for seconds; tests of the rule set it lower).
        """
        interval_s = self.heartbeat_interval_ms / 1000
        self.session_start_limit = session_start_limit
        self.identify_interval_s = identify_interval_s
        self.max_concurrency = max_concurrency
        self.required_shards = required_shards
        self.replay_buffer = replay_buffer
        self.session_ttl_s = session_ttl_s
        scale = self.heartbeat_interval_ms / DISCORD_HEARTBEAT_MS
        self.send_limit = send_limit if send_limit is not None else (SEND_LIMIT, SEND_WINDOW_S * scale)
        self.heartbeat_grace_s = heartbeat_grace_s if heartbeat_grace_s is not None else max(2 * interval_s, 5.0)
        #: Switch: False makes a zombie link (events flow, heartbeats are never ACKed).
        self.ack_heartbeats = True
        # Records.
        self.heartbeats: list[float] = []
        self.identifies = 0
        self.resumes = 0
        self.connections: list[GatewayConnection] = []
        #: Sessions started (READY sent) and sessions resumed (RESUMED sent).
        self.sessions_started = 0
        self.sessions_resumed = 0
        #: Connections closed because the client's heartbeat was late (for diagnosing a test).
        self.heartbeat_timeouts = 0
        #: Protocol errors of the client; teardown fails on any unless expected.
        self.gateway_violations: list[str] = []
        self.gateway_violations_expected = False
        # State.
        self._sessions: dict[str, Session] = {}
        self._session: Session | None = None
        self._conns: set[Conn] = set()
        self._identify_times: dict[int, float] = {}  # rate-limit bucket -> last IDENTIFY
        self._session_starts: list[float] = []  # accepted IDENTIFYs within the limit's period
        self._identify_refusals: list[int | None] = []  # close code, or None for op 9 (rate limit)

    # --- switches -------------------------------------------------------------------

    def _live(self: FakeDiscord) -> tuple[Session, Conn]:
        self._check_loop()
        sess = self._session
        conn = sess.conn if sess is not None else None
        if sess is None or conn is None:
            raise RuntimeError("no live gateway connection")
        return sess, conn

    async def drop_gateway(self: FakeDiscord, code: int | None = CLOSE_UNKNOWN_ERROR) -> None:
        """Close the live websocket with ``code``, or with None cut the TCP connection
        without a close frame (G "Resuming", case 3: "disconnected but doesn't receive any
        close code").

        C: 4007 ("Reconnect and start a new session") and 4009 (session timed out) end
        the session; any other code keeps it resumable and buffers events meanwhile, to be
        replayed on RESUME.
        """
        sess, conn = self._live()
        async with sess.lock:
            self._detach(sess, conn)
            if code in (CLOSE_INVALID_SEQ, CLOSE_SESSION_TIMED_OUT):
                self._end_session(sess)
        if code is None:
            conn.record.close_code = 1006  # RFC 6455: "abnormal closure", no close frame
            if conn.transport is not None:
                conn.transport.abort()
        else:
            await conn.close(code)
        self._notify()

    async def send_reconnect(self: FakeDiscord) -> None:
        """GE "Reconnect": op 7; "a few seconds after ... the connection may be closed by the server"."""
        _, conn = self._live()
        await conn.send({"op": P.OP_RECONNECT, "d": None, "s": None, "t": None})

    async def request_heartbeat(self: FakeDiscord) -> None:
        """G "Heartbeat Requests": op 1; the client "should immediately send back another Heartbeat"."""
        _, conn = self._live()
        await conn.send({"op": P.OP_HEARTBEAT, "d": None, "s": None, "t": None})

    async def invalidate_session(self: FakeDiscord, resumable: bool) -> None:
        """GE "Invalid Session": op 9 on the live connection, which the client must then leave.

        d=true: the session stays resumable (G "Resuming", case 4); d=false: it is gone,
        and the client must IDENTIFY on the cached gateway URL.
        """
        sess, conn = self._live()
        async with sess.lock:
            self._detach(sess, conn)
            if not resumable:
                self._end_session(sess)
            await conn.send({"op": P.OP_INVALID_SESSION, "d": resumable, "s": None, "t": None})
        self._notify()

    async def expire_session(self: FakeDiscord) -> None:
        """The session times out: 4009 on its connection if it has one; it cannot be resumed."""
        self._check_loop()
        sess = self._session
        if sess is None:
            raise RuntimeError("no session")
        if sess.conn is not None:
            await self.drop_gateway(CLOSE_SESSION_TIMED_OUT)
        else:
            self._end_session(sess)

    def rate_limit_identify(self: FakeDiscord, count: int = 1) -> None:
        """The next ``count`` IDENTIFYs find their bucket taken (G "Rate Limiting": op 9)."""
        self._identify_refusals.extend([None] * count)

    def close_next_identify(self: FakeDiscord, code: int) -> None:
        """The next IDENTIFY is closed with ``code``: a token reset (4004), sharding needed
        (4011), or what the stand-in would not otherwise see from a well-behaved client."""
        self._identify_refusals.append(code)

    def expect_gateway_violations(self: FakeDiscord) -> None:
        """This test breaks gateway rules on purpose: do not fail it at teardown."""
        self.gateway_violations_expected = True

    def check_gateway_violations(self: FakeDiscord) -> None:
        if self.gateway_violations and not self.gateway_violations_expected:
            raise AssertionError(
                f"the client broke {len(self.gateway_violations)} documented gateway rule(s) "
                "(call fake.expect_gateway_violations() if the test means to):\n" + "\n".join(self.gateway_violations)
            )

    def reset_token(self: FakeDiscord) -> str:
        """The owner (or Discord) resets the bot token: the old one gets 401 and 4004 from now on."""
        self.token = "fake-token-" + secrets.token_hex(8)
        return self.token

    def session_start_remaining(self: FakeDiscord) -> tuple[int, float]:
        """(remaining, seconds until reset) of the session start limit, as GET /gateway/bot reports."""
        total, period = self.session_start_limit
        now = time.monotonic()
        self._session_starts = [t for t in self._session_starts if now - t < period]
        reset_after = self._session_starts[0] + period - now if self._session_starts else 0.0
        return total - len(self._session_starts), reset_after

    # --- internals ---------------------------------------------------------------------

    def _violation(self: FakeDiscord, conn: Conn, what: str) -> None:
        self.gateway_violations.append(f"connection {self.connections.index(conn.record)} ({conn.record.path}): {what}")

    def _detach(self, sess: Session, conn: Conn) -> None:
        conn.ready = False
        if sess.conn is conn:
            sess.conn = None
            sess.disconnected_at = time.monotonic()

    def _end_session(self: FakeDiscord, sess: Session) -> None:
        sess.ended = True
        self._sessions.pop(sess.id, None)

    async def _dispatch(
        self: FakeDiscord, sess: Session, event: str, data: Any, on_sent: Callable[[], None] | None = None
    ) -> None:
        """Sequence an event into the session; send it now if the client is connected.

        A session that ended never delivers it (on Discord the user sees "The application
        did not respond"); ``on_sent`` runs each time the frame is written to a socket.
        """
        async with sess.lock:
            frame = sess.frame(event, data)
            sess.buffer.append((frame["s"], frame, on_sent))
            if len(sess.buffer) > self.replay_buffer:
                dropped = sess.buffer[: -self.replay_buffer]
                del sess.buffer[: -self.replay_buffer]
                sess.overflowed_to = dropped[-1][0]
            conn = sess.conn
            if conn is not None and conn.ready:
                if on_sent is not None:
                    on_sent()
                await conn.send(frame)
        self._notify()

    async def _gateway(self: FakeDiscord, request: web.Request) -> web.StreamResponse:
        """One websocket: HELLO, then IDENTIFY or RESUME, heartbeats, until closed."""
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        query = dict(request.query)
        compressed = self.gateway_compression and query.get("compress") == "zlib-stream"
        record = GatewayConnection(path=request.path, query=query, compressed=compressed, opened_at=time.monotonic())
        self.connections.append(record)
        conn = Conn(
            ws=ws, record=record, compressor=zlib.compressobj() if compressed else None, transport=request.transport
        )
        self._conns.add(conn)
        self._notify()
        deadline: asyncio.Task[None] | None = None
        try:
            # G "Gateway URL Query String Params": v is an API version; C 4012 otherwise.
            if query.get("v") not in API_VERSIONS:
                self._violation(conn, f"API version v={query.get('v')!r} (accepted: {API_VERSIONS})")
                await conn.close(CLOSE_INVALID_API_VERSION)
                return ws
            await conn.send(
                {
                    "op": P.OP_HELLO,
                    "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gateway"]},
                    "s": None,
                    "t": None,
                }
            )
            conn.last_heartbeat = time.monotonic()
            deadline = asyncio.create_task(self._heartbeat_deadline(conn), name="fake-heartbeat-deadline")
            async for msg in ws:
                if not await self._receive(conn, msg):
                    break
                if ws.closed:
                    break
        finally:
            if deadline is not None:
                deadline.cancel()
            conn.ready = False
            sess = conn.session
            if sess is not None and sess.conn is conn:
                self._detach(sess, conn)
            if sess is not None and record.close_code is None and ws.close_code in (1000, 1001):
                # G "Initiating a Disconnect": a client closing with 1000 or 1001 ends its session.
                self._end_session(sess)
            record.closed_at = time.monotonic()
            if record.close_code is None:
                record.close_code = ws.close_code
            self._conns.discard(conn)
            self._notify()
        return ws

    async def _receive(self: FakeDiscord, conn: Conn, msg: Any) -> bool:
        """Check one client frame against G "Sending Events" and act on it; False: closed."""
        if msg.type != WSMsgType.TEXT:
            # discord.py only ever sends JSON text frames (encoding=json).
            self._violation(conn, f"a non-text frame ({msg.type.name})")
            await conn.close(P.CLOSE_DECODE_ERROR)
            return False
        size = len(msg.data.encode())
        if size > MAX_PAYLOAD_BYTES:
            # G "Sending Events": over 4096 bytes, "the connection will be closed with a 4002".
            self._violation(conn, f"a {size}-byte payload (at most {MAX_PAYLOAD_BYTES})")
            await conn.close(P.CLOSE_DECODE_ERROR)
            return False
        now = time.monotonic()
        limit, per = self.send_limit
        conn.sent_times = [t for t in conn.sent_times if now - t < per] + [now]
        if len(conn.sent_times) > limit:
            # G "Rate Limiting": "Apps that surpass the limit are immediately disconnected"; C 4008.
            self._violation(conn, f"more than {limit} events within {per:g} s")
            await conn.close(CLOSE_RATE_LIMITED)
            return False
        try:
            frame = json.loads(msg.data)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            self._violation(conn, "a payload that is not a JSON object with op")
            await conn.close(P.CLOSE_DECODE_ERROR)
            return False
        await self._on_op(conn, op, frame.get("d"))
        return True

    async def _heartbeat_deadline(self: FakeDiscord, conn: Conn) -> None:
        """G "Heartbeat Interval": "If your app fails to send a heartbeat event in time, your
        connection will be closed and you will be forced to Resume" (the docs name no close
        code; 4000 keeps the session resumable, as "forced to Resume" says)."""
        interval = self.heartbeat_interval_ms / 1000
        while not conn.ws.closed:
            late = time.monotonic() - conn.last_heartbeat - interval
            if late > self.heartbeat_grace_s:
                sess = conn.session
                if sess is not None:
                    self._detach(sess, conn)
                self.heartbeat_timeouts += 1
                await conn.close(CLOSE_UNKNOWN_ERROR, b"Heartbeat missed.")
                self._notify()
                return
            await asyncio.sleep(min(interval, self.heartbeat_grace_s) / 4)

    async def _on_op(self: FakeDiscord, conn: Conn, op: Any, d: Any) -> None:
        if op == P.OP_HEARTBEAT:
            self.heartbeats.append(time.monotonic())
            conn.last_heartbeat = time.monotonic()
            if self.ack_heartbeats:
                await conn.send({"op": P.OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == P.OP_IDENTIFY:
            await self._identify(conn, d if isinstance(d, dict) else {})
        elif op == P.OP_RESUME:
            await self._resume(conn, d if isinstance(d, dict) else {})
        elif conn.session is None:
            self._violation(conn, f"op {op} before IDENTIFY")
            await conn.close(P.CLOSE_NOT_AUTHENTICATED)
        elif op == P.OP_REQUEST_GUILD_MEMBERS:
            await self._members_chunk(conn.session, d or {})
        elif op in (P.OP_PRESENCE_UPDATE, P.OP_VOICE_STATE_UPDATE):
            pass
        else:
            self._violation(conn, f"unknown opcode {op!r}")
            await conn.close(P.CLOSE_UNKNOWN_OPCODE)
        self._notify()

    def _identify_refusal(self: FakeDiscord, conn: Conn, d: dict[str, Any]) -> int | None:
        """The close code an IDENTIFY gets (C), 0 for op 9 (bucket taken), None if accepted."""
        if d.get("token") != self.token:
            return P.CLOSE_AUTHENTICATION_FAILED
        if self._identify_refusals:
            code = self._identify_refusals.pop(0)
            return 0 if code is None else code
        intents = d.get("intents")
        # G "Gateway Intents": an integer of defined bits; C 4013 "incorrectly calculated the bitwise value".
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0 or intents & ~KNOWN_INTENTS:
            self._violation(conn, f"invalid intents {intents!r}")
            return CLOSE_INVALID_INTENTS
        if intents & P.PRIVILEGED_INTENTS & ~self.privileged_intents:
            return P.CLOSE_DISALLOWED_INTENTS
        shard = d.get("shard")
        # G "Sharding": [shard_id, num_shards], zero-based id below the count; C 4010.
        if shard is not None and not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in shard)
            and 0 <= shard[0] < shard[1]
        ):
            self._violation(conn, f"invalid shard {shard!r}")
            return CLOSE_INVALID_SHARD
        # G "Sharding": "apps that are in 2500+ guilds *must* enable sharding"; C 4011.
        if self.required_shards > 1 and (shard is None or shard[1] < self.required_shards):
            return CLOSE_SHARDING_REQUIRED
        # G "Rate Limiting" / GE "Session Start Limit Object": max_concurrency IDENTIFYs per 5 s.
        bucket = (shard[0] if shard else 0) % self.max_concurrency
        now = time.monotonic()
        last = self._identify_times.get(bucket)
        self._identify_times[bucket] = now
        if last is not None and now - last < self.identify_interval_s:
            return 0
        return None

    async def _identify(self: FakeDiscord, conn: Conn, d: dict[str, Any]) -> None:
        self.identifies += 1
        if conn.session is not None:
            self._violation(conn, "a second IDENTIFY")
            await conn.close(P.CLOSE_ALREADY_AUTHENTICATED)
            return
        if conn.record.path != GATEWAY_PATH:
            # G "Resuming": after op 9 d=false "create a new connection with your cached URL
            # from the Get Gateway or the Get Gateway Bot endpoint, then send an Identify".
            self._violation(conn, "IDENTIFY on resume_gateway_url instead of the cached gateway URL")
        refusal = self._identify_refusal(conn, d)
        if refusal == 0:
            await conn.send({"op": P.OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        if refusal is not None:
            await conn.close(refusal)
            return
        remaining, _ = self.session_start_remaining()
        if remaining <= 0:
            # G "Identifying": "all active sessions for the app will be terminated, the bot
            # token will be reset"; the identifying client's token is then wrong (C 4004).
            self.reset_token()
            for other in list(self._conns):
                await other.close(P.CLOSE_AUTHENTICATION_FAILED)
            return
        self._session_starts.append(time.monotonic())
        intents = int(d["intents"])
        shard = d.get("shard")
        sess = Session(id=secrets.token_hex(16), intents=intents, shard=shard)
        self._sessions[sess.id] = sess
        self._session = sess
        conn.session = sess
        conn.record.identified = True
        # G "Ready Event": `guilds` are the guilds the user is in; G "Sharding": a guild's
        # events go to shard (guild_id >> 22) % num_shards only, READY's guild list included.
        owns_guild = self.bot_in_guild and (shard is None or (self.guild_id >> 22) % shard[1] == shard[0])
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}] if owns_guild else [],
            "session_id": sess.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "_trace": ["fake-gateway"],
        }
        if shard is not None:
            ready["shard"] = shard
        async with sess.lock:
            sess.conn = conn
            frames = [sess.frame("READY", ready)]
            if intents & P.INTENT_GUILDS and owns_guild:
                frames.append(sess.frame("GUILD_CREATE", self._guild_create()))
            for frame in frames:  # not buffered: a RESUME never replays the handshake
                await conn.send(frame)
            conn.ready = True
        self.sessions_started += 1

    def _guild_create(self: FakeDiscord) -> dict[str, Any]:
        bot_member = P.member_object(self.bot_user)
        return P.guild_create_object(self.guild_id, self.channel, bot_member)

    async def _resume(self: FakeDiscord, conn: Conn, d: dict[str, Any]) -> None:
        self.resumes += 1
        if d.get("token") != self.token:
            await conn.close(P.CLOSE_AUTHENTICATION_FAILED)
            return
        if conn.record.path != RESUME_GATEWAY_PATH:
            # G "Preparing to Resume": "open a new connection using resume_gateway_url rather
            # than the URL used to initially connect".
            self._violation(conn, "RESUME on the gateway URL instead of resume_gateway_url")
        sess = self._sessions.get(str(d.get("session_id")))
        idle = time.monotonic() - sess.disconnected_at if sess is not None and sess.disconnected_at else 0.0
        if sess is not None and sess.conn is None and idle > self.session_ttl_s:
            self._end_session(sess)  # G "Initiating a Disconnect": it timed out
            sess = None
        if sess is None or sess.ended:
            # G "Resuming": "It's possible your app won't reconnect in time to Resume, in
            # which case it will receive an Invalid Session (opcode 9)" with d=false.
            await conn.send({"op": P.OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        seq = d.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= sess.seq:
            # C 4007: "The sequence sent when resuming the session was invalid. Reconnect and
            # start a new session." (a seq the session never sent)
            self._violation(conn, f"RESUME with seq {seq!r} (the session is at {sess.seq})")
            self._end_session(sess)
            await conn.close(CLOSE_INVALID_SEQ)
            return
        if seq < sess.overflowed_to:
            # Events after `seq` were dropped from the replay buffer: replaying would lose
            # them silently, so the session cannot be resumed (op 9 d=false; Discord does not
            # document its buffer size, so the stand-in's limit is a switch).
            self._end_session(sess)
            await conn.send({"op": P.OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        async with sess.lock:
            old = sess.conn
            if old is not None and old is not conn:
                # The session moved to a new connection; the docs name no code for the old one.
                # Not 4009: the session did not time out. 4000 keeps it resumable.
                self._detach(sess, old)
                await old.close(CLOSE_UNKNOWN_ERROR, b"Session resumed on another connection.")
            sess.conn = conn
            sess.disconnected_at = None
            conn.session = sess
            conn.record.resumed = True
            for event_seq, frame, on_sent in sess.buffer:
                if event_seq > seq:
                    if on_sent is not None:
                        on_sent()
                    await conn.send(frame)
            await conn.send(sess.frame("RESUMED", {"_trace": ["fake-gateway"]}))
            conn.ready = True
        self.sessions_resumed += 1

    async def _members_chunk(self: FakeDiscord, sess: Session, d: dict[str, Any]) -> None:
        """Answer REQUEST_GUILD_MEMBERS so a bot that chunks does not hang."""
        members = [P.member_object(self.bot_user), P.member_object(self.user)]
        chunk: dict[str, Any] = {
            "guild_id": str(d.get("guild_id", self.guild_id)),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if "nonce" in d:
            chunk["nonce"] = d["nonce"]
        await self._dispatch(sess, "GUILD_MEMBERS_CHUNK", chunk)
