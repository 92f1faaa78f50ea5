"""A local stand-in for Discord's REST API, gateway and CDN, for end-to-end bot tests.

The real, unmodified discord.py client talks to it once its two base URLs are
pointed here (``FakeDiscord.patch_discord``), so the tests exercise the library's
own login, gateway, resume, rate-limit and retry code rather than mocks of it.
It binds 127.0.0.1 only and needs no network.

The ``wait_*`` coroutines take a ``timeout`` argument (ruff ASYNC109 waived): it is
the API the e2e tests are written against, and each wait re-checks a predicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, WSMsgType, web

from . import payloads as P
from .records import (
    CommandSync,
    Fault,
    GatewayConnection,
    InteractionRecord,
    RecordedRequest,
    UploadedFile,
)

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
# READY's resume_gateway_url points at a different path so tests can tell that
# discord.py resumed where Discord told it to, not at the default gateway.
RESUME_GATEWAY_PATH = "/resume-gateway"

DEFAULT_APPLICATION_ID = 1_100_000_000_000_000_001
DEFAULT_GUILD_ID = 1_100_000_000_000_000_100
DEFAULT_CHANNEL_ID = 1_100_000_000_000_000_200
DEFAULT_USER_ID = 1_100_000_000_000_000_300

# Request headers worth keeping in RecordedRequest.headers.
_KEPT_HEADERS = ("Authorization", "Content-Type", "User-Agent", "X-Audit-Log-Reason")

Handler = Callable[[web.Request, RecordedRequest, "re.Match[str]"], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json", no charset: discord.py's json_or_text compares the
    # header verbatim and would hand the raw string to its parsers otherwise.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> web.Response:
    return _json(P.error_body(code, message, errors), status)


def _is_true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


@dataclass(eq=False)
class _Conn:
    """One live websocket: sends are serialised because zlib-stream is stateful."""

    ws: web.WebSocketResponse
    record: GatewayConnection
    compressor: Any = None  # zlib compress object when the client asked for zlib-stream
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: _Session | None = None
    ready: bool = False  # READY/RESUMED sent: dispatches may go out on it

    async def close(self, code: int, message: bytes) -> None:
        """Close from the server side, remembering the code we sent (not the echo)."""
        self.ready = False
        if self.record.close_code is None:
            self.record.close_code = code
        await self.ws.close(code=code, message=message)

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
class _Session:
    """A gateway session: survives its connection so that RESUME can replay events."""

    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    # (seq, frame, callback run when the frame is first written to a socket)
    buffer: list[tuple[int, dict[str, Any], Callable[[], None] | None]] = field(default_factory=list)
    conn: _Conn | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def frame(self, event: str, data: Any) -> dict[str, Any]:
        self.seq += 1
        return {"op": P.OP_DISPATCH, "t": event, "s": self.seq, "d": data}


class FakeDiscord:
    """Discord API v10 REST + gateway + CDN on 127.0.0.1, recording what the bot does."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int | None = None,
        guild_id: int = DEFAULT_GUILD_ID,
        channel_id: int = DEFAULT_CHANNEL_ID,
        user_id: int = DEFAULT_USER_ID,
        heartbeat_interval_ms: int = 41250,
        privileged_intents: int = 0,
        gateway_compression: bool = True,
        ack_deadline: float | None = None,
    ) -> None:
        """``bot_user_id`` defaults to the application id, as for every modern Discord app.

        ``privileged_intents`` are the privileged intents "enabled in the developer
        portal"; asking for others closes the gateway with 4014 like Discord does.
        ``gateway_compression`` honours ``compress=zlib-stream``; off, frames are plain
        text (discord.py accepts both). ``ack_deadline`` (seconds, Discord uses 3)
        makes late callbacks fail with 10062 Unknown interaction; None disables it.
        """
        self.token = token
        self.application_id = application_id
        self.bot_user_id = bot_user_id if bot_user_id is not None else application_id
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents
        self.gateway_compression = gateway_compression
        self.ack_deadline = ack_deadline
        self.cdn_delay: float = 0.0

        self.bot_user = P.user_object(self.bot_user_id, "clipbot", bot=True)
        self.user = P.user_object(user_id, "tester")
        self.channel = P.text_channel_object(channel_id, guild_id)

        # Records.
        self.requests: list[RecordedRequest] = []
        self.cdn_requests: list[RecordedRequest] = []
        self.command_syncs: list[CommandSync] = []
        self.heartbeats: list[float] = []
        self.identifies = 0
        self.resumes = 0
        self.connections: list[GatewayConnection] = []
        self.interactions: list[InteractionRecord] = []

        self._faults: list[Fault] = []
        self._commands: dict[str | int, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[str | int, str, int], int] = {}
        self._attachments: dict[str, tuple[bytes, str | None]] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self._sessions: dict[str, _Session] = {}
        self._session: _Session | None = None
        self._conns: set[_Conn] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: int | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._add_routes()

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 on an ephemeral port and start serving."""
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get(GATEWAY_PATH, self._gateway)
        app.router.add_get(RESUME_GATEWAY_PATH, self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._http)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=1.0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close open websockets (1001 going away) and stop the server."""
        for conn in list(self._conns):
            conn.ready = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server shutdown"), 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord.start() has not been called")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What discord.py's ``Route.BASE`` must be set to."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be set to."""
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{RESUME_GATEWAY_PATH}"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py at this server; restores the real URLs on exit.

        Only two constants are needed in discord.py 2.7: ``http.Route.BASE`` (read when
        each Route is built, which covers the bot's REST calls *and* the webhook adapter
        that sends interaction callbacks and follow-ups) and
        ``gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (read on every fresh IDENTIFY
        connect; a plain ``Client`` never calls GET /gateway/bot, and resumes go to
        READY's ``resume_gateway_url``). Attachment downloads use the attachment's own
        ``url``, which already points here.
        """
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE = old_base
            DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # --- waiting ------------------------------------------------------------------------

    def _check_loop(self) -> None:
        """Fail fast when a test awaits us from another loop: the server would never answer.

        Happens when pytest-asyncio runs the fixture and the test on different loops
        (``asyncio_default_fixture_loop_scope`` != ``asyncio_default_test_loop_scope``).
        """
        if self._loop is None:
            raise RuntimeError("FakeDiscord.start() has not been called")
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                "FakeDiscord is serving on another event loop than this test's; give the "
                "fixture the same pytest-asyncio loop scope as the test"
            )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[FakeDiscord], bool], timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until ``predicate(self)`` holds, re-checked after every request or frame."""
        self._check_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"FakeDiscord: condition not met within {timeout}s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    @property
    def connected(self) -> bool:
        """A session is live on an open socket: dispatched events reach the client now."""
        sess = self._session
        return sess is not None and sess.conn is not None and sess.conn.ready

    async def wait_until_ready(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until a client identified (or resumed) and got READY + GUILD_CREATE."""
        await self.wait_for(lambda f: f.connected, timeout)

    async def wait_for_sync(self, timeout: float = 10, count: int = 1) -> None:  # noqa: ASYNC109
        """Wait until ``count`` command syncs (bulk overwrites) have been received."""
        await self.wait_for(lambda f: len(f.command_syncs) >= count, timeout)

    async def wait_for_request(
        self,
        method: str,
        path_regex: str,
        timeout: float = 10,  # noqa: ASYNC109
        count: int = 1,
    ) -> RecordedRequest:
        """Wait for the ``count``-th request matching ``method`` and ``path_regex``."""
        pattern = re.compile(path_regex)

        def matching() -> list[RecordedRequest]:
            return [r for r in self.requests if r.method == method and pattern.search(r.path)]

        await self.wait_for(lambda f: len(matching()) >= count, timeout)
        return matching()[count - 1]

    @property
    def unmatched_requests(self) -> list[RecordedRequest]:
        """Calls to routes the fake does not implement (answered 404)."""
        return [r for r in self.requests + self.cdn_requests if not r.matched]

    # --- fault switches -------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        retry_after: float = 0.5,
        count: int = 1,
        global_: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` instead.

        ``path_regex`` is searched in the path relative to the API base (e.g.
        ``r"^/webhooks/"``), or the full path for CDN downloads. 429 answers carry
        Discord's JSON body and rate-limit headers; 5xx a Discord-style error body.
        """
        self._faults.append(Fault(method.upper(), path_regex, status, retry_after, count, global_))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.method == method and re.search(fault.path_regex, path):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        if fault.status != 429:
            reason = {
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }.get(fault.status, "Error")
            return _error(fault.status, 0, f"{fault.status}: {reason}")
        headers = {
            "Retry-After": str(max(1, math.ceil(fault.retry_after))),
            "X-RateLimit-Scope": "global" if fault.global_ else "user",
        }
        if fault.global_:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + fault.retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
                    "X-RateLimit-Bucket": "fakebucket" + format(abs(hash(fault.path_regex)), "x"),
                }
            )
        body = {
            "message": "You are being rate limited.",
            "retry_after": fault.retry_after,
            "global": fault.global_,
        }
        return _json(body, 429, headers)

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the live websocket with ``code``, keeping the session resumable.

        discord.py treats 4000 (and most codes) as resumable and reconnects to
        ``resume_gateway_url`` with RESUME; events dispatched meanwhile are buffered
        and replayed then, as Discord does.
        """
        self._check_loop()
        sess = self._session
        conn = sess.conn if sess is not None else None
        if sess is None or conn is None:
            raise RuntimeError("no live gateway connection to drop")
        async with sess.lock:
            conn.ready = False
            sess.conn = None
        await conn.close(code, b"fake-discord: connection dropped")
        self._notify()

    # --- attachments / CDN ------------------------------------------------------------

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        declared_size: int | None = None,
    ) -> dict[str, Any]:
        """Serve ``data`` from the fake CDN and return its attachment object.

        ``declared_size`` overrides the ``size`` field, so size checks can be tested
        without moving megabytes.
        """
        att_id = P.snowflake()
        dims = P.image_size(data) if (content_type or "").startswith("image/") else None
        self._attachments[str(att_id)] = (data, content_type)
        name = quote(filename)
        suffix = f"?ex={int(time.time()) + 86400:x}&is={int(time.time()):x}&hm={secrets.token_hex(32)}&"
        return P.attachment_object(
            attachment_id=att_id,
            filename=filename,
            size=declared_size if declared_size is not None else len(data),
            url=f"{self.base_url}/attachments/{self.channel_id}/{att_id}/{name}{suffix}",
            proxy_url=f"{self.base_url}/media/attachments/{self.channel_id}/{att_id}/{name}{suffix}",
            content_type=content_type,
            width=dims[0] if dims else None,
            height=dims[1] if dims else None,
        )

    async def _cdn(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.StreamResponse:
        if self.cdn_delay:
            await asyncio.sleep(self.cdn_delay)
        entry = self._attachments.get(m["att"])
        if entry is None:
            # The real CDN answers unknown/expired files with a plain-text 404.
            return web.Response(status=404, text="This content is no longer available.")
        data, content_type = entry
        return web.Response(body=data, content_type=content_type or "application/octet-stream")

    # --- HTTP dispatch ------------------------------------------------------------------

    def _route(self, methods: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        for method in methods.split("|"):
            self._routes.append((method, re.compile(pattern), handler, auth))

    def _add_routes(self) -> None:
        app = r"(?P<app>\d+)"
        tok = r"(?P<token>[^/]+)"
        scope = r"(?:/guilds/(?P<guild>\d+))?"
        self._route("GET", r"^/users/@me$", self._get_me)
        self._route("GET", r"^/oauth2/applications/@me$", self._get_application)
        self._route("GET", r"^/applications/@me$", self._get_application)
        self._route("GET", r"^/gateway$", self._get_gateway, auth=False)
        self._route("GET", r"^/gateway/bot$", self._get_gateway_bot)
        self._route("GET|PUT|POST", rf"^/applications/{app}{scope}/commands$", self._commands_ep)
        self._route("GET|PATCH|DELETE", rf"^/applications/{app}{scope}/commands/(?P<cmd>\d+)$", self._command_ep)
        self._route("GET", r"^/channels/(?P<channel>\d+)$", self._get_channel)
        self._route("POST", rf"^/interactions/(?P<iid>\d+)/{tok}/callback$", self._callback, auth=False)
        self._route("POST", rf"^/webhooks/{app}/{tok}$", self._followup, auth=False)
        self._route(
            "GET|PATCH|DELETE",
            rf"^/webhooks/{app}/{tok}/messages/(?P<mid>@original|\d+)$",
            self._webhook_message,
            auth=False,
        )

    _CDN_RE = re.compile(r"^/(?:media/)?(?:ephemeral-)?attachments/(?P<channel>\d+)/(?P<att>\d+)/[^/]+$")

    async def _http(self, request: web.Request) -> web.StreamResponse:
        """Record, apply faults, route, and stamp every answer like Discord's edge does."""
        is_api = request.path.startswith(API_PREFIX + "/")
        path = request.path[len(API_PREFIX) :] if is_api else request.path
        body, files = await self._read_body(request)
        rec = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers={k: request.headers[k] for k in _KEPT_HEADERS if k in request.headers},
            time=time.monotonic(),
            files=files,
        )
        (self.requests if is_api else self.cdn_requests).append(rec)
        try:
            response = await self._answer(request, rec, is_api)
        except Exception as exc:  # a bug in the fake: make it loud but keep the shape
            rec.status = 500
            self._notify()
            return _error(500, 0, f"fake-discord internal error: {exc!r}")
        rec.status = response.status
        # discord.py only honours a 429 if it came through Discord's proxy ("Via"
        # header); without it the 429 is treated as a Cloudflare ban and raised.
        response.headers.setdefault("Via", "1.1 google")
        self._notify()
        return response

    async def _answer(self, request: web.Request, rec: RecordedRequest, is_api: bool) -> web.StreamResponse:
        fault = self._take_fault(rec.method, rec.path)
        if fault is not None:
            return self._fault_response(fault)
        if not is_api:
            m = self._CDN_RE.match(rec.path)
            if rec.method == "GET" and m:
                return await self._cdn(request, rec, m)
            rec.matched = False
            return web.Response(status=404, text="404: Not Found")
        for method, pattern, handler, auth in self._routes:
            m = pattern.match(rec.path)
            if m is None or method != rec.method:
                continue
            if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                return _error(401, 0, "401: Unauthorized")
            return await handler(request, rec, m)
        rec.matched = False
        if any(p.match(rec.path) for _, p, _, _ in self._routes):
            return _error(405, 0, "405: Method Not Allowed")
        return _error(404, 0, "404: Not Found")

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
        """JSON bodies, or multipart with ``payload_json`` + ``files[n]`` parts."""
        files: list[UploadedFile] = []
        if not request.can_read_body:
            return None, files
        if request.content_type == "multipart/form-data":
            body: Any = None
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    data = bytes(await part.read(decode=False))
                    files.append(
                        UploadedFile(
                            field=part.name or "",
                            filename=part.filename or "",
                            content_type=part.headers.get("Content-Type"),
                            data=data,
                        )
                    )
            return body, files
        raw = await request.read()
        if not raw:
            return None, files
        try:
            return json.loads(raw), files
        except ValueError:
            return raw.decode("utf-8", "replace"), files

    # --- REST: identity -----------------------------------------------------------------

    async def _get_me(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        return _json(self.bot_user)

    async def _get_application(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        app = P.application_object(self.application_id, self.user)
        app["bot"] = self.bot_user
        app["flags"] = self._application_flags()
        return _json(app)

    def _application_flags(self) -> int:
        """GATEWAY_*_LIMITED flags for the privileged intents that are enabled."""
        flags = 0
        if self.privileged_intents & P.INTENT_GUILD_PRESENCES:
            flags |= 1 << 13
        if self.privileged_intents & P.INTENT_GUILD_MEMBERS:
            flags |= 1 << 15
        if self.privileged_intents & P.INTENT_MESSAGE_CONTENT:
            flags |= 1 << 19
        return flags

    async def _get_gateway(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - self.identifies,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_channel(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        if int(m["channel"]) != self.channel_id:
            return _error(404, 10003, "Unknown Channel")
        return _json(self.channel)

    # --- REST: application commands -----------------------------------------------------

    def _scope_of(self, m: re.Match[str]) -> tuple[str | int | None, web.Response | None]:
        if int(m["app"]) != self.application_id:
            return None, _error(403, 50001, "Missing Access")
        if m["guild"] is None:
            return "global", None
        if int(m["guild"]) != self.guild_id:
            return None, _error(403, 50001, "Missing Access")
        return int(m["guild"]), None

    def _command_out(self, scope: str | int, cmd: dict[str, Any]) -> dict[str, Any]:
        """A stored command as Discord returns it: ids stay stable across re-syncs."""
        ctype = int(cmd.get("type", 1))
        key = (scope, cmd["name"], ctype)
        cmd_id = self._command_ids.setdefault(key, P.snowflake())
        out: dict[str, Any] = {
            "default_member_permissions": None,
            "nsfw": False,
            "description": "",
            "options": [],
            **cmd,
            "id": str(cmd_id),
            "type": ctype,
            "application_id": str(self.application_id),
            "version": str(P.snowflake()),
        }
        if scope == "global":
            out.setdefault("dm_permission", True)
            out.setdefault("integration_types", [0])
            out.setdefault("contexts", None)
        else:
            out["guild_id"] = str(scope)
        return out

    async def _commands_ep(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        scope, err = self._scope_of(m)
        if err is not None:
            return err
        assert scope is not None
        current = self._commands.setdefault(scope, [])
        if rec.method == "GET":
            return _json(current)
        if rec.method == "PUT":
            errors = P.validate_commands(rec.json)
            if errors:
                return _error(400, 50035, "Invalid Form Body", errors)
            stored = [self._command_out(scope, c) for c in rec.json]
            self._commands[scope] = stored
            self.command_syncs.append(CommandSync(scope=scope, commands=rec.json, time=rec.time))
            return _json(stored)
        # POST: create or overwrite one command by name.
        errors = P.validate_commands([rec.json] if isinstance(rec.json, dict) else rec.json)
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors.get("0", errors))
        out = self._command_out(scope, rec.json)
        existing = [c for c in current if c["id"] == out["id"]]
        if existing:
            current[current.index(existing[0])] = out
            return _json(out)
        current.append(out)
        return _json(out, 201)

    async def _command_ep(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.StreamResponse:
        scope, err = self._scope_of(m)
        if err is not None:
            return err
        assert scope is not None
        current = self._commands.setdefault(scope, [])
        found = [c for c in current if c["id"] == m["cmd"]]
        if not found:
            return _error(404, 10063, "Unknown application command")
        cmd = found[0]
        if rec.method == "GET":
            return _json(cmd)
        if rec.method == "DELETE":
            current.remove(cmd)
            return web.Response(status=204)
        cmd.update({k: v for k, v in (rec.json or {}).items() if k not in ("id", "application_id")})
        return _json(cmd)

    def _find_command(self, name: str, guild_id: int) -> tuple[dict[str, Any], str | int] | None:
        for scope in (guild_id, "global"):
            for cmd in self._commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd, scope
        return None

    # --- interactions ---------------------------------------------------------------------

    async def send_command(
        self,
        name: str,
        options: dict[str, object] | None = None,
        *,
        attachments: dict[str, tuple[bytes, str, str | None]] | None = None,
        user_id: int | None = None,
        guild_id: int | None = None,
        locale: str = "en-US",
        member_permissions: str | None = None,
    ) -> InteractionRecord:
        """Dispatch a slash-command INTERACTION_CREATE and return its record at once.

        The command must have been synced (guild scope first, then global), so ids
        and option types come from what the bot registered. ``options`` values are
        plain values; for ATTACHMENT options pass an ``add_attachment()`` dict, or give
        ``attachments={"opt": (bytes, filename, content_type)}``. For a subcommand pass
        ``{"sub": {...its options...}}``. If the client is disconnected the event is
        buffered and delivered on RESUME.
        """
        self._check_loop()
        sess = self._session
        if sess is None:
            raise RuntimeError("no client has identified with the fake gateway yet")
        guild_id = guild_id if guild_id is not None else self.guild_id
        found = self._find_command(name, guild_id)
        if found is None:
            known = sorted({c["name"] for cmds in self._commands.values() for c in cmds})
            raise LookupError(f"/{name} has not been synced to guild {guild_id} or globally; known: {known}")
        cmd, scope = found
        values: dict[str, object] = dict(options or {})
        for opt_name, (data, filename, content_type) in (attachments or {}).items():
            values[opt_name] = self.add_attachment(data, filename, content_type)
        resolved: dict[str, dict[str, Any]] = {}
        built = self._build_options(cmd.get("options") or [], values, resolved, f"/{name}")

        user_id = user_id if user_id is not None else self.user_id
        user = self.user if user_id == self.user_id else P.user_object(user_id, f"user{user_id}")
        interaction_id = P.snowflake()
        token = "fake-itoken-" + secrets.token_urlsafe(48)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if scope != "global":
            data["guild_id"] = str(scope)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": 2,
            "data": data,
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "guild_id": str(guild_id),
            "channel": self.channel | {"guild_id": str(guild_id)},
            "channel_id": str(self.channel_id),
            "member": P.member_object(user, permissions=member_permissions or P.ALL_PERMISSIONS),
            "token": token,
            "version": 1,
            "app_permissions": P.ALL_PERMISSIONS,
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": P.ATTACHMENT_SIZE_LIMIT,
        }
        record = InteractionRecord(id=interaction_id, token=token, name=name, payload=payload)
        self.interactions.append(record)
        self._by_token[token] = record

        def mark_sent() -> None:
            record.dispatched_at = time.monotonic()
            record.sent = True

        await self._dispatch(sess, "INTERACTION_CREATE", payload, mark_sent)
        return record

    def _build_options(
        self,
        defs: list[dict[str, Any]],
        values: dict[str, object],
        resolved: dict[str, dict[str, Any]],
        where: str,
    ) -> list[dict[str, Any]]:
        """Turn ``{name: value}`` into interaction options, typed by the synced definition."""
        by_name = {d["name"]: d for d in defs}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(f"{where}: no option(s) {sorted(unknown)}; defined: {sorted(by_name)}")
        out: list[dict[str, Any]] = []
        for d in defs:  # Discord sends options in definition order
            if d["name"] not in values:
                if d.get("required"):
                    raise ValueError(f"{where}: required option {d['name']!r} missing")
                continue
            value = values[d["name"]]
            otype = int(d["type"])
            if otype in (P.OPTION_SUB_COMMAND, P.OPTION_SUB_COMMAND_GROUP):
                sub = value if isinstance(value, dict) else {}
                out.append(
                    {
                        "name": d["name"],
                        "type": otype,
                        "options": self._build_options(d.get("options") or [], sub, resolved, f"{where} {d['name']}"),
                    }
                )
                continue
            if otype == P.OPTION_ATTACHMENT:
                if not isinstance(value, dict):
                    raise TypeError(f"{where}: option {d['name']!r} needs an add_attachment() dict")
                resolved.setdefault("attachments", {})[str(value["id"])] = value
                value = str(value["id"])
            elif otype == 6:  # USER: resolve the id to a user + member
                uid = int(value)  # type: ignore[call-overload]
                u = self.user if uid == self.user_id else P.user_object(uid, f"user{uid}")
                resolved.setdefault("users", {})[str(uid)] = u
                member = P.member_object(u, permissions=P.ALL_PERMISSIONS)
                member.pop("user")
                resolved.setdefault("members", {})[str(uid)] = member
                value = str(uid)
            out.append({"name": d["name"], "type": otype, "value": value})
        return out

    def interaction(self, token_or_id: str | int) -> InteractionRecord:
        """Look up a dispatched interaction by token or id."""
        if isinstance(token_or_id, str) and token_or_id in self._by_token:
            return self._by_token[token_or_id]
        for rec in self.interactions:
            if rec.id == int(token_or_id):
                return rec
        raise KeyError(token_or_id)

    def _interaction_for_webhook(self, m: re.Match[str]) -> InteractionRecord | None:
        if int(m["app"]) != self.application_id:
            return None
        return self._by_token.get(m["token"])

    def _message(
        self,
        record: InteractionRecord,
        data: dict[str, Any],
        files: list[UploadedFile],
        *,
        flags: int,
        msg_type: int,
    ) -> dict[str, Any]:
        """A message object for an interaction response or follow-up, stored on the record."""
        msg_id = str(P.snowflake())
        msg: dict[str, Any] = {
            "id": msg_id,
            "type": msg_type,
            "channel_id": str(self.channel_id),
            "author": self.bot_user,
            "content": "",
            "timestamp": P.iso_now(),
            "edited_timestamp": None,
            "tts": bool(data.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "flags": flags,
            "webhook_id": str(self.application_id),
            "application_id": str(self.application_id),
            "interaction_metadata": {
                "id": str(record.id),
                "type": 2,
                "name": record.name,
                "command_type": 1,
                "user": self.user,
                "authorizing_integration_owners": {"0": str(self.guild_id)},
            },
        }
        if record.original_id is not None and msg_type != 20:
            msg["interaction_metadata"]["original_response_message_id"] = record.original_id
        self._apply_edit(msg, data, files)
        msg["edited_timestamp"] = None
        record.messages[msg_id] = msg
        return msg

    def _apply_edit(self, msg: dict[str, Any], data: dict[str, Any], files: list[UploadedFile]) -> None:
        """Apply message fields; uploaded files become attachments served by the fake CDN."""
        for key in ("content", "embeds", "components", "poll"):
            if key in data:
                msg[key] = data[key] if data[key] is not None else ([] if key != "content" else "")
        if "flags" in data and data["flags"] is not None:
            # Only these flags can be changed by the sender; EPHEMERAL is fixed at creation.
            keep = msg["flags"] & (P.MESSAGE_FLAG_EPHEMERAL)
            msg["flags"] = keep | (int(data["flags"]) & ~P.MESSAGE_FLAG_EPHEMERAL & ~P.MESSAGE_FLAG_LOADING)
        if "attachments" in data or files:
            keep_ids = {str(a.get("id")) for a in data.get("attachments") or []}
            kept = (
                [a for a in msg["attachments"] if a["id"] in keep_ids]
                if "attachments" in data
                else list(msg["attachments"])
            )
            for f in files:
                kept.append(self.add_attachment(f.data, f.filename, f.content_type))
            msg["attachments"] = kept
        msg["edited_timestamp"] = P.iso_now()

    def _check_message(self, data: Any, files: list[UploadedFile], prefix: list[str]) -> web.Response | None:
        if not isinstance(data, dict):
            return _error(400, 50109, "The request body contains invalid JSON.")
        total = sum(len(f.data) for f in files)
        if total > P.ATTACHMENT_SIZE_LIMIT:
            return _error(413, 40005, "Request entity too large")
        errors = P.validate_message(data, prefix)
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        return None

    async def _callback(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.StreamResponse:
        """POST /interactions/{id}/{token}/callback: the initial response (ack)."""
        record = self._by_token.get(m["token"])
        if record is None or str(record.id) != m["iid"]:
            return _error(404, 10062, "Unknown interaction")
        if self.ack_deadline is not None and rec.time - record.dispatched_at > self.ack_deadline:
            return _error(404, 10062, "Unknown interaction")
        body = rec.json
        if not isinstance(body, dict) or not isinstance(body.get("type"), int):
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {"type": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}},
            )
        if record.acknowledged:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        ctype = body["type"]
        data = body.get("data") or {}
        if ctype == 4:
            bad = self._check_message(data, rec.files, ["data"])
            if bad is not None:
                return bad
            if P.message_is_empty(data, len(rec.files)):
                return _error(400, 50006, "Cannot send an empty message")
        record.callbacks.append((rec.time, body))
        record.files.extend(rec.files)
        ephemeral = bool(int(data.get("flags") or 0) & P.MESSAGE_FLAG_EPHEMERAL)
        message: dict[str, Any] | None = None
        if ctype in (4, 5):
            flags = P.MESSAGE_FLAG_EPHEMERAL if ephemeral else 0
            if ctype == 5:
                message = self._message(record, {}, [], flags=flags | P.MESSAGE_FLAG_LOADING, msg_type=20)
            else:
                message = self._message(record, data, rec.files, flags=flags, msg_type=20)
            record.original_id = message["id"]
        record._notify()
        if not _is_true(rec.query.get("with_response")):
            return web.Response(status=204)
        interaction: dict[str, Any] = {"id": str(record.id), "type": 2}
        if message is not None:
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=ctype == 5,
                response_message_ephemeral=ephemeral,
            )
        resource: dict[str, Any] = {"type": ctype}
        if ctype == 4 and message is not None:
            resource["message"] = message
        return _json({"interaction": interaction, "resource": resource})

    async def _followup(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.StreamResponse:
        """POST /webhooks/{app}/{token}: a follow-up message (only after the ack)."""
        record = self._interaction_for_webhook(m)
        if record is None or not record.acknowledged:
            return _error(404, 10015, "Unknown Webhook")
        data = rec.json
        bad = self._check_message(data, rec.files, [])
        if bad is not None:
            return bad
        if P.message_is_empty(data, len(rec.files)):
            return _error(400, 50006, "Cannot send an empty message")
        record.followups.append((rec.time, data))
        record.files.extend(rec.files)
        flags = P.MESSAGE_FLAG_EPHEMERAL if int(data.get("flags") or 0) & P.MESSAGE_FLAG_EPHEMERAL else 0
        msg = self._message(record, data, rec.files, flags=flags, msg_type=20)
        record._notify()
        if not _is_true(rec.query.get("wait")):
            return web.Response(status=204)
        return _json(msg)

    async def _webhook_message(
        self, request: web.Request, rec: RecordedRequest, m: re.Match[str]
    ) -> web.StreamResponse:
        """GET/PATCH/DELETE of @original or a follow-up message."""
        record = self._interaction_for_webhook(m)
        if record is None:
            return _error(404, 10015, "Unknown Webhook")
        mid = record.original_id if m["mid"] == "@original" else m["mid"]
        msg = record.messages.get(mid) if mid is not None else None
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if rec.method == "GET":
            return _json(msg)
        if rec.method == "DELETE":
            del record.messages[msg["id"]]
            if msg["id"] == record.original_id:
                record.original_id = None
            record.deletes.append((rec.time, m["mid"]))
            record._notify()
            return web.Response(status=204)
        data = rec.json
        bad = self._check_message(data, rec.files, [])
        if bad is not None:
            return bad
        if m["mid"] == "@original":
            record.edits.append((rec.time, data))
        else:
            record.followup_edits.append((rec.time, m["mid"], data))
        record.files.extend(rec.files)
        self._apply_edit(msg, data, rec.files)
        msg["flags"] &= ~P.MESSAGE_FLAG_LOADING
        record._notify()
        return _json(msg)

    # --- gateway --------------------------------------------------------------------------

    async def _dispatch(self, sess: _Session, event: str, data: Any, on_sent: Callable[[], None] | None = None) -> None:
        """Sequence an event into the session; send it now if the client is connected."""
        async with sess.lock:
            frame = sess.frame(event, data)
            sess.buffer.append((frame["s"], frame, on_sent))
            del sess.buffer[:-1000]
            conn = sess.conn
            if conn is not None and conn.ready:
                if on_sent is not None:
                    on_sent()
                await conn.send(frame)
        self._notify()

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        """One websocket: HELLO, then IDENTIFY or RESUME, heartbeats, until closed."""
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        query = dict(request.query)
        compressed = self.gateway_compression and query.get("compress") == "zlib-stream"
        record = GatewayConnection(path=request.path, query=query, compressed=compressed, opened_at=time.monotonic())
        self.connections.append(record)
        conn = _Conn(ws=ws, record=record, compressor=zlib.compressobj() if compressed else None)
        self._conns.add(conn)
        self._notify()
        try:
            await conn.send(
                {
                    "op": P.OP_HELLO,
                    "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gateway"]},
                    "s": None,
                    "t": None,
                }
            )
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    # discord.py only ever sends JSON text frames.
                    await conn.close(P.CLOSE_DECODE_ERROR, b"Error while decoding payload.")
                    break
                try:
                    frame = json.loads(msg.data)
                    op = frame["op"]
                except (ValueError, KeyError, TypeError):
                    await conn.close(P.CLOSE_DECODE_ERROR, b"Error while decoding payload.")
                    break
                await self._on_op(conn, op, frame.get("d"))
                if ws.closed:
                    break
        finally:
            conn.ready = False
            sess = conn.session
            if sess is not None and sess.conn is conn:
                sess.conn = None
            record.closed_at = time.monotonic()
            if record.close_code is None:
                record.close_code = ws.close_code
            self._conns.discard(conn)
            self._notify()
        return ws

    async def _on_op(self, conn: _Conn, op: Any, d: Any) -> None:
        if op == P.OP_HEARTBEAT:
            self.heartbeats.append(time.monotonic())
            await conn.send({"op": P.OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == P.OP_IDENTIFY:
            await self._identify(conn, d or {})
        elif op == P.OP_RESUME:
            await self._resume(conn, d or {})
        elif conn.session is None:
            await conn.close(P.CLOSE_NOT_AUTHENTICATED, message=b"Not authenticated.")
        elif op == P.OP_REQUEST_GUILD_MEMBERS:
            await self._members_chunk(conn.session, d or {})
        elif op in (P.OP_PRESENCE_UPDATE, P.OP_VOICE_STATE_UPDATE):
            pass
        else:
            await conn.close(P.CLOSE_UNKNOWN_OPCODE, message=b"Unknown opcode.")
        self._notify()

    async def _identify(self, conn: _Conn, d: dict[str, Any]) -> None:
        self.identifies += 1
        if conn.session is not None:
            await conn.close(P.CLOSE_ALREADY_AUTHENTICATED, message=b"Already authenticated.")
            return
        if d.get("token") != self.token:
            await conn.close(P.CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        intents = int(d.get("intents") or 0)
        if intents & P.PRIVILEGED_INTENTS & ~self.privileged_intents:
            await conn.close(P.CLOSE_DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return
        shard = d.get("shard")
        sess = _Session(id=secrets.token_hex(16), intents=intents, shard=shard)
        self._sessions[sess.id] = sess
        self._session = sess
        conn.session = sess
        conn.record.identified = True
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
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
            if intents & P.INTENT_GUILDS:
                frames.append(sess.frame("GUILD_CREATE", self._guild_create()))
            for frame in frames:  # not buffered: a RESUME never replays the handshake
                await conn.send(frame)
            conn.ready = True

    def _guild_create(self) -> dict[str, Any]:
        bot_member = P.member_object(self.bot_user)
        return P.guild_create_object(self.guild_id, self.channel, bot_member)

    async def _resume(self, conn: _Conn, d: dict[str, Any]) -> None:
        self.resumes += 1
        if d.get("token") != self.token:
            await conn.close(P.CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        sess = self._sessions.get(str(d.get("session_id")))
        if sess is None:
            # Not resumable: the client must start over with IDENTIFY.
            await conn.send({"op": P.OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        last_seq = int(d.get("seq") or 0)
        async with sess.lock:
            old = sess.conn
            if old is not None and old is not conn:
                old.ready = False
                await old.close(4009, message=b"Session resumed elsewhere.")
            sess.conn = conn
            conn.session = sess
            conn.record.resumed = True
            for seq, frame, on_sent in sess.buffer:
                if seq > last_seq:
                    if on_sent is not None:
                        on_sent()
                    await conn.send(frame)
            await conn.send(sess.frame("RESUMED", {"_trace": ["fake-gateway"]}))
            conn.ready = True

    async def _members_chunk(self, sess: _Session, d: dict[str, Any]) -> None:
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
