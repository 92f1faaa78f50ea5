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
import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from . import payloads as P
from .components import components_v2_errors
from .gateway import GATEWAY_PATH, RESUME_GATEWAY_PATH, GatewayMixin
from .media import video_details
from .records import (
    CommandSync,
    Fault,
    InteractionRecord,
    RecordedRequest,
    UploadedFile,
)

API_PREFIX = "/api/v10"

DEFAULT_APPLICATION_ID = 1_100_000_000_000_000_001
DEFAULT_GUILD_ID = 1_100_000_000_000_000_100
DEFAULT_CHANNEL_ID = 1_100_000_000_000_000_200
DEFAULT_USER_ID = 1_100_000_000_000_000_300
# A guild the bot is not in: where "user_install_guild" interactions come from.
DEFAULT_OTHER_GUILD_ID = 1_100_000_000_000_000_400
DEFAULT_OTHER_CHANNEL_ID = 1_100_000_000_000_000_500
DEFAULT_DM_CHANNEL_ID = 1_100_000_000_000_000_600
DEFAULT_GROUP_DM_CHANNEL_ID = 1_100_000_000_000_000_700
# What send_command(context=...) accepts (its docstring says what each one is).
CONTEXTS = ("guild", "user_install_guild", "dm", "group_dm", "user_dm")
# Statuses a request can get for a body Discord would refuse (validation, not injected faults).
_REJECTION_STATUSES = (400, 413)

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


class FakeDiscord(GatewayMixin):
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
        attachment_ttl_s: float = 86_400.0,
        rate_limit: tuple[int, float] = (50, 1.0),
        install_types: tuple[int, ...] = (0, 1),
        **gateway: Any,
    ) -> None:
        """``bot_user_id`` defaults to the application id, as for every modern Discord app.

        ``privileged_intents`` are the privileged intents "enabled in the developer
        portal"; asking for others closes the gateway with 4014 like Discord does.
        ``gateway_compression`` honours ``compress=zlib-stream``; off, frames are plain
        text (discord.py accepts both). ``ack_deadline`` (seconds, Discord uses 3)
        makes late callbacks fail with 10062 Unknown interaction; None disables it.
        ``attachment_ttl_s``: how long signed CDN URLs stay valid (Discord's last about a
        day). ``rate_limit`` is ``(requests, per seconds)`` for every REST bucket; the
        default is never reached by ordinary tests, and it can be changed at any time.
        ``install_types`` are the installation contexts the app supports "in the developer
        portal" (0 guild, 1 user); commands may only declare those. The remaining keywords
        set the gateway's limits (``GatewayMixin._init_gateway`` says which).
        """
        self.token = token
        self.application_id = application_id
        self.bot_user_id = bot_user_id if bot_user_id is not None else application_id
        self.guild_id = guild_id
        #: The bot is a member of the guild; False once removed (READY then lists no guild).
        self.bot_in_guild = True
        self.channel_id = channel_id
        self.user_id = user_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents
        self.gateway_compression = gateway_compression
        self.ack_deadline = ack_deadline
        self.cdn_delay: float = 0.0
        self.attachment_ttl_s = attachment_ttl_s
        self.rate_limit = rate_limit
        self.install_types = install_types

        self.bot_user = P.user_object(self.bot_user_id, "clipbot", bot=True)
        self.user = P.user_object(user_id, "tester")
        self.channel = P.text_channel_object(channel_id, guild_id)

        # Records.
        self.requests: list[RecordedRequest] = []
        self.cdn_requests: list[RecordedRequest] = []
        self.command_syncs: list[CommandSync] = []
        self.interactions: list[InteractionRecord] = []
        # Requests refused because their body breaks a documented rule (400/413), in order.
        self.rejections: list[RecordedRequest] = []
        self.rejections_expected = False

        self._faults: list[Fault] = []
        self._commands: dict[str | int, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[str | int, str, int], int] = {}
        self._attachments: dict[str, tuple[bytes, str | None]] = {}
        self._external: dict[str, tuple[bytes, str]] = {}
        #: Requests for links users posted (``user_posted_url``): a bot must never make one.
        self.forbidden_fetches: list[RecordedRequest] = []
        self._cdn_key = secrets.token_bytes(32)
        # Rate-limit windows: (bucket, top-level resource) -> [window start, requests in it].
        self._buckets: dict[tuple[str, str], list[float]] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self._init_gateway(**gateway)
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

    def expect_rejections(self) -> None:
        """Opt out of ``check_rejections`` for this test: it sends refused bodies on purpose."""
        self.rejections_expected = True

    def check_rejections(self) -> None:
        """Fail if any request was refused for its body, unless the test said it expects that.

        The fixtures call this at teardown, so a bot reply that "Discord" refused fails the
        test even where the test never looked at that reply.
        """
        if self.rejections and not self.rejections_expected:
            lines = [
                f"{r.method} {r.path} -> {r.status}: {json.dumps(r.response)[:600]}; body {json.dumps(r.json)[:600]}"
                for r in self.rejections
            ]
            raise AssertionError(
                f"FakeDiscord refused {len(lines)} request(s) for breaking Discord's documented rules "
                "(call fake.expect_rejections() if the test means to):\n" + "\n".join(lines)
            )

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

    # --- rate limits ---------------------------------------------------------------------
    # docs: topics/rate-limits.mdx "Header Format": X-RateLimit-Limit, -Remaining, -Reset
    # (epoch seconds), -Reset-After (seconds, with decimals) and -Bucket ("non-inclusive of
    # top-level resources in the path") on API answers; per-route limits are counted per
    # top-level resource (channel, guild, webhook id + token).

    @staticmethod
    @functools.cache
    def _bucket_hash(method: str, pattern: str) -> str:
        return hashlib.sha256(f"{method} {pattern}".encode()).hexdigest()[:32]

    def _bucket_of(self, method: str, pattern: re.Pattern[str], m: re.Match[str]) -> tuple[str, str]:
        """The route's bucket hash (method + route) and its top-level resource."""
        bucket = self._bucket_hash(method, pattern.pattern)
        groups = m.groupdict()
        major = ":".join(str(groups[k]) for k in ("guild", "channel", "app", "token") if groups.get(k))
        return bucket, major

    def reset_rate_limits(self) -> None:
        """Start every bucket afresh (e.g. after changing ``rate_limit``)."""
        self._buckets.clear()

    def _window(self, bucket: str, major: str) -> list[float]:
        now = time.monotonic()
        window = self._buckets.get((bucket, major))
        if window is None or now - window[0] >= self.rate_limit[1]:
            window = self._buckets[(bucket, major)] = [now, 0.0]
        return window

    def _take_rate_limit(self, bucket: str, major: str) -> web.Response | None:
        """Count one request; a request over the limit gets Discord's 429 (scope "user")."""
        limit, per = self.rate_limit
        window = self._window(bucket, major)
        if window[1] >= limit:
            reset_after = max(0.0, window[0] + per - time.monotonic())
            headers = {
                "Retry-After": str(max(1, math.ceil(reset_after))),
                "X-RateLimit-Scope": "user",
                **self._rate_headers(bucket, major),
            }
            body = {"message": "You are being rate limited.", "retry_after": round(reset_after, 3), "global": False}
            return _json(body, 429, headers)
        window[1] += 1
        return None

    def _rate_headers(self, bucket: str, major: str) -> dict[str, str]:
        limit, per = self.rate_limit
        window = self._window(bucket, major)
        reset_after = max(0.0, window[0] + per - time.monotonic())
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - int(window[1]))),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    # --- attachments / CDN ------------------------------------------------------------

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        declared_size: int | None = None,
        ephemeral: bool = True,
        ttl_s: float | None = None,
    ) -> dict[str, Any]:
        """Serve ``data`` from the fake CDN and return its attachment object.

        By default the object is what a slash command's ATTACHMENT option carries: an
        ephemeral upload (``ephemeral: true``) under ``/ephemeral-attachments/{app id}/``
        (docs: components/reference.mdx, the File Upload example's resolved attachment;
        resources/message.mdx "Attachment Structure": "Ephemeral attachments will
        automatically be removed after a set period of time"). ``url`` and ``proxy_url``
        (the media proxy's path, under ``/media``) are signed like Discord's CDN links:
        ``?ex=<expiry, hex unix>&is=<issued, hex unix>&hm=<HMAC>&``; after ``ttl_s``
        (default ``attachment_ttl_s``) or with a tampered query the CDN answers 404.
        ``declared_size`` overrides the ``size`` field, so size checks can be tested
        without moving megabytes.
        """
        att_id = P.snowflake()
        dims = P.image_size(data) if (content_type or "").startswith("image/") else None
        video = video_details(data) if (content_type or "").startswith("video/") else None
        if video is not None:
            dims = video[:2]
        self._attachments[str(att_id)] = (data, content_type)
        name = quote(filename)
        if ephemeral:
            path = f"/ephemeral-attachments/{self.application_id}/{att_id}/{name}"
        else:
            path = f"/attachments/{self.channel_id}/{att_id}/{name}"
        issued = int(time.time())
        expires = int(time.time() + (self.attachment_ttl_s if ttl_s is None else ttl_s))
        query = f"?ex={expires:x}&is={issued:x}&hm={self._cdn_signature(path, expires, issued)}&"
        return P.attachment_object(
            attachment_id=att_id,
            filename=filename,
            size=declared_size if declared_size is not None else len(data),
            url=f"{self.base_url}{path}{query}",
            proxy_url=f"{self.base_url}/media{path}{query}",
            content_type=content_type,
            width=dims[0] if dims else None,
            height=dims[1] if dims else None,
            ephemeral=ephemeral,
            duration_secs=video[2] if video else None,
        )

    def _cdn_signature(self, path: str, expires: int, issued: int) -> str:
        return hmac.new(self._cdn_key, f"{path}|{expires:x}|{issued:x}".encode(), hashlib.sha256).hexdigest()

    def add_external_image(self, data: bytes, original_url: str, content_type: str = "image/png") -> dict[str, Any]:
        """An embed Discord made for an image link someone posted (``type: "image"``).

        docs: resources/message.mdx "Embed Types" and "Embed Thumbnail Structure": the
        ``url`` is the link as posted (any host: a bot must never fetch it), the
        ``proxy_url`` is Discord's media proxy, served here under ``/external/``. A fetch
        of the original link by the bot would reach nothing real; tests give it a path on
        this server that records the attempt in ``forbidden_fetches``.
        """
        image_id = str(P.snowflake())
        self._external[image_id] = (data, content_type)
        dims = P.image_size(data)
        proxy = f"{self.base_url}/external/{image_id}/{quote(original_url, safe='')}"
        thumbnail: dict[str, Any] = {"url": original_url, "proxy_url": proxy}
        if dims:
            thumbnail.update(width=dims[0], height=dims[1])
        return {"type": "image", "url": original_url, "thumbnail": thumbnail}

    def user_posted_url(self, path: str) -> str:
        """A link a user might post: on this server, so a fetch of it is seen (and refused)."""
        return f"{self.base_url}/user-posted/{path}"

    def channel_message(
        self,
        *,
        content: str = "",
        attachments: list[tuple[bytes, str, str | None]] = (),  # type: ignore[assignment]
        embeds: list[dict[str, Any]] = (),  # type: ignore[assignment]
        author_id: int | None = None,
        channel_id: int | None = None,
    ) -> dict[str, Any]:
        """A message someone posted in a channel (for ``send_command(target_message=...)``).

        docs: resources/message.mdx "Message Object": attachments are regular (not
        ephemeral) uploads on the CDN under ``/attachments/{channel}/{id}/``.
        """
        author = P.user_object(author_id or self.user_id + 7, "poster")
        uploaded = [
            self.add_attachment(data, filename, content_type, ephemeral=False)
            for data, filename, content_type in attachments
        ]
        return {
            "id": str(P.snowflake()),
            "type": 0,
            "channel_id": str(channel_id or self.channel_id),
            "author": author,
            "content": content,
            "timestamp": P.iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": uploaded,
            "embeds": list(embeds),
            "pinned": False,
            "flags": 0,
            "components": [],
        }

    async def submit_modal(self, rec: InteractionRecord, values: dict[str, str]) -> InteractionRecord:
        """The user fills in and submits the modal that ``rec`` was answered with.

        docs: receiving-and-responding.mdx "Modal Submit Data Structure" and
        components/reference.mdx "Label" / "Text Input Interaction Response Structure":
        a MODAL_SUBMIT (type 5) interaction with the same user and place, whose
        ``components`` are Labels holding each Text Input's ``custom_id`` and ``value``.
        Values are checked as the client checks them (required, min/max length).
        """
        modal = next((body.get("data") for _, body in rec.callbacks if body.get("type") == P.CALLBACK_MODAL), None)
        if modal is None:
            raise ValueError(f"{rec!r} was not answered with a modal")
        answers = []
        for label in modal["components"]:
            component = label["component"]
            custom_id = component["custom_id"]
            value = values.get(custom_id, component.get("value") or "")
            problem = P.text_input_value_error(component, value)
            if problem is not None:
                raise ValueError(f"modal field {custom_id!r} {problem}; Discord's client would not submit it")
            answers.append(
                {
                    "type": P.COMPONENT_LABEL,
                    "id": label.get("id", 0),
                    "component": {
                        "type": P.COMPONENT_TEXT_INPUT,
                        "id": component.get("id", 0),
                        "custom_id": custom_id,
                        "value": value,
                    },
                }
            )
        unknown = set(values) - {label["component"]["custom_id"] for label in modal["components"]}
        if unknown:
            raise ValueError(f"the modal has no field(s) {sorted(unknown)}")
        sess = self._session
        if sess is None:
            raise RuntimeError("no client has identified with the fake gateway yet")
        interaction_id = P.snowflake()
        token = "fake-itoken-" + secrets.token_urlsafe(48)
        payload = {key: value for key, value in rec.payload.items() if key not in ("id", "token", "type", "data")}
        payload.update(
            id=str(interaction_id),
            token=token,
            type=P.INTERACTION_MODAL_SUBMIT,
            data={"custom_id": modal["custom_id"], "components": answers},
        )
        record = InteractionRecord(id=interaction_id, token=token, name=f"modal:{modal['custom_id']}", payload=payload)
        self.interactions.append(record)
        self._by_token[token] = record

        def mark_sent() -> None:
            record.dispatched_at = time.monotonic()
            record.sent = True

        await self._dispatch(sess, "INTERACTION_CREATE", payload, mark_sent)
        return record

    async def _external_image(self, request: web.Request, rec: RecordedRequest, image_id: str) -> web.StreamResponse:
        entry = self._external.get(image_id)
        if entry is None:
            return web.Response(status=404, text="404: Not Found")
        data, content_type = entry
        return web.Response(body=data, content_type=content_type)

    async def _cdn(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.StreamResponse:
        if self.cdn_delay:
            await asyncio.sleep(self.cdn_delay)
        # The real CDN answers unknown, expired or badly signed links with this plain-text
        # 404 (not in the API docs: it is what cdn.discordapp.com serves since signed
        # links began, and what a bot must handle). The media proxy shares the signature.
        gone = web.Response(status=404, text="This content is no longer available.")
        entry = self._attachments.get(m["att"])
        if entry is None:
            return gone
        path = request.rel_url.raw_path.removeprefix("/media")  # as signed: still percent-encoded
        try:
            expires, issued = int(rec.query["ex"], 16), int(rec.query["is"], 16)
            signature = rec.query["hm"]
        except (KeyError, ValueError):
            return gone
        if not hmac.compare_digest(signature, self._cdn_signature(path, expires, issued)):
            return gone
        if time.time() >= expires:
            return gone
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
        rec.response_headers = dict(response.headers)
        if (
            response.status >= 400
            and isinstance(response, web.Response)
            and response.content_type == "application/json"
            and response.body
        ):
            with contextlib.suppress(ValueError, TypeError):
                rec.response = json.loads(response.body)  # type: ignore[arg-type]
        if is_api and not rec.injected and response.status in _REJECTION_STATUSES:
            self.rejections.append(rec)
        self._notify()
        return response

    async def _answer(self, request: web.Request, rec: RecordedRequest, is_api: bool) -> web.StreamResponse:
        fault = self._take_fault(rec.method, rec.path)
        if fault is not None:
            rec.injected = True
            return self._fault_response(fault)
        if not is_api:
            m = self._CDN_RE.match(rec.path)
            if rec.method == "GET" and m:
                return await self._cdn(request, rec, m)
            external = re.match(r"^/external/(?P<id>\d+)/", rec.path)
            if rec.method == "GET" and external:
                return await self._external_image(request, rec, external["id"])
            if rec.path.startswith("/user-posted/"):
                self.forbidden_fetches.append(rec)
                return web.Response(status=404, text="not Discord")
            rec.matched = False
            return web.Response(status=404, text="404: Not Found")
        for method, pattern, handler, auth in self._routes:
            m = pattern.match(rec.path)
            if m is None or method != rec.method:
                continue
            bucket, major = self._bucket_of(method, pattern, m)
            if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                unauthorized = _error(401, 0, "401: Unauthorized")
                unauthorized.headers.update(self._rate_headers(bucket, major))
                return unauthorized
            limited = self._take_rate_limit(bucket, major)
            if limited is not None:
                return limited
            response = await handler(request, rec, m)
            response.headers.update(self._rate_headers(bucket, major))
            return response
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
        app["integration_types_config"] = {str(t): {} for t in self.install_types}
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
        remaining, reset_after = self.session_start_remaining()
        return _json(
            {
                "url": self.gateway_url,
                "shards": self.required_shards,
                # GE "Session Start Limit Object" (gateway.mdx); enforced in _identify.
                "session_start_limit": {
                    "total": self.session_start_limit[0],
                    "remaining": remaining,
                    "reset_after": int(reset_after * 1000),
                    "max_concurrency": self.max_concurrency,
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

    def _validate_commands(self, commands: Any) -> dict[str, Any]:
        """P.validate_commands plus the app's supported installation contexts.

        docs: application-commands.mdx "Installation Context": integration_types can be set
        "as long as any included contexts are already supported on the application-level".
        """
        errors = P.validate_commands(commands)
        for i, cmd in enumerate(commands if isinstance(commands, list) else []):
            declared = cmd.get("integration_types") if isinstance(cmd, dict) else None
            unsupported = sorted(set(declared) - set(self.install_types)) if isinstance(declared, list) else []
            if unsupported:
                errors.setdefault(str(i), {})["integration_types"] = P._err(
                    "APPLICATION_COMMAND_INTEGRATION_TYPES_INVALID",
                    f"The application does not support installation contexts {unsupported}.",
                )
        return errors

    async def _commands_ep(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.Response:
        scope, err = self._scope_of(m)
        if err is not None:
            return err
        assert scope is not None
        current = self._commands.setdefault(scope, [])
        if rec.method == "GET":
            return _json(current)
        if rec.method == "PUT":
            errors = self._validate_commands(rec.json)
            if errors:
                return _error(400, 50035, "Invalid Form Body", errors)
            stored = [self._command_out(scope, c) for c in rec.json]
            self._commands[scope] = stored
            self.command_syncs.append(CommandSync(scope=scope, commands=rec.json, time=rec.time))
            return _json(stored)
        # POST: create or overwrite one command by name.
        errors = self._validate_commands([rec.json] if isinstance(rec.json, dict) else rec.json)
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

    def _find_command(
        self, name: str, guild_id: int | None, command_type: int = 1
    ) -> tuple[dict[str, Any], str | int] | None:
        for scope in ((guild_id,) if guild_id is not None else ()) + ("global",):
            for cmd in self._commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == command_type:
                    return cmd, scope
        return None

    @staticmethod
    def command_availability(cmd: dict[str, Any], scope: str | int) -> tuple[set[int], set[int]]:
        """(installation contexts, interaction contexts) where Discord offers a synced command.

        docs: interactions/application-commands.mdx "Application Command Structure":
        ``integration_types`` and ``contexts`` are "only for globally-scoped commands"; a
        guild command is offered only in its own guild, through the guild install
        ("Guild commands don't support the BOT_DM interaction context", "Using Default
        Permissions"), whatever those fields say. For a global command, an absent
        ``integration_types`` is GUILD_INSTALL only (``[0]``: "Bulk Overwrite ... defaults
        to GUILD_INSTALL"; the structure table's "your app's configured contexts" could be
        wider, so [0] is the stricter reading) and an absent or null ``contexts`` is all of
        ``[0, 1, 2]`` ("defaults to all contexts"). PRIVATE_CHANNEL "is only meaningful for
        commands installed to a user", so it is dropped without USER_INSTALL.
        """
        if scope != "global":
            return {P.GUILD_INSTALL}, {P.CONTEXT_GUILD}
        installs = set(cmd.get("integration_types") or [P.GUILD_INSTALL])
        contexts = set(
            cmd["contexts"]
            if cmd.get("contexts") is not None
            else (P.CONTEXT_GUILD, P.CONTEXT_BOT_DM, P.CONTEXT_PRIVATE_CHANNEL)
        )
        if P.USER_INSTALL not in installs:
            contexts.discard(P.CONTEXT_PRIVATE_CHANNEL)
        if cmd.get("dm_permission") is False:  # deprecated, still honoured: no bot DM
            contexts.discard(P.CONTEXT_BOT_DM)
        return installs, contexts

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
        context: str = "guild",
        focused: str | None = None,
        target_message: dict[str, Any] | None = None,
    ) -> InteractionRecord:
        """Dispatch a slash-command INTERACTION_CREATE and return its record at once.

        The command must have been synced (guild scope first, then global), so ids
        and option types come from what the bot registered. ``options`` values are
        plain values; for ATTACHMENT options pass an ``add_attachment()`` dict, or give
        ``attachments={"opt": (bytes, filename, content_type)}``. For a subcommand pass
        ``{"sub": {...its options...}}``. If the client is disconnected the event is
        buffered and delivered on RESUME.

        ``context`` says where the user ran it, shaped as real Discord sends it:

        - ``"guild"``: a member in ``guild_id`` (default: the bot's guild), guild install;
        - ``"user_install_guild"``: a member in a guild the bot is *not* in (default
          ``DEFAULT_OTHER_GUILD_ID``, no GUILD_CREATE for it), through the user install;
        - ``"dm"``: the bot's DM channel (context BOT_DM, channel type 1);
        - ``"group_dm"``: a group DM (PRIVATE_CHANNEL, channel type 3), user install;
        - ``"user_dm"``: a DM between the user and someone else (PRIVATE_CHANNEL, type 1).

        ``target_message`` (a ``channel_message()`` dict) makes it a message command (a
        command of type 3 named ``name``, run from a message's Apps menu): ``data`` then
        has ``target_id`` and the message in ``resolved.messages`` (application-commands.mdx
        "Message Commands"), and no options.

        ``focused`` names the option being typed: the interaction is then an autocomplete
        (type 4) with the partial values typed so far, as application-commands.mdx
        "Autocomplete" describes (required options may be missing; the focused one has
        ``focused: true`` and must have been synced with ``autocomplete: true``).

        A context the synced command is not offered in (see ``command_availability``),
        or option values Discord's client would not send (``P.option_value_error``),
        raise ``ValueError``: a real user could not produce that interaction.
        """
        self._check_loop()
        sess = self._session
        if sess is None:
            raise RuntimeError("no client has identified with the fake gateway yet")
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, not {context!r}")
        user_id = user_id if user_id is not None else self.user_id
        in_guild = context in ("guild", "user_install_guild")
        if context == "user_install_guild":
            guild_id = guild_id if guild_id is not None else DEFAULT_OTHER_GUILD_ID
            if guild_id == self.guild_id:
                raise ValueError("the bot is in this guild: use context='guild' there")
        elif context == "guild":
            guild_id = guild_id if guild_id is not None else self.guild_id
        elif guild_id is not None:
            raise ValueError(f"context {context!r} has no guild")
        # Guild commands exist only in the bot's guild(s), so only "guild" can see them.
        command_type = P.COMMAND_MESSAGE if target_message is not None else 1
        found = self._find_command(name, guild_id if context == "guild" else None, command_type)
        if found is None:
            known = sorted({c["name"] for cmds in self._commands.values() for c in cmds})
            where = f"guild {guild_id} or globally" if context == "guild" else "globally"
            raise LookupError(f"/{name} has not been synced {where} (context {context!r}); known: {known}")
        cmd, scope = found
        installs, contexts = self.command_availability(cmd, scope)
        ctx_type, install = {
            "guild": (P.CONTEXT_GUILD, P.GUILD_INSTALL),
            "user_install_guild": (P.CONTEXT_GUILD, P.USER_INSTALL),
            "dm": (P.CONTEXT_BOT_DM, None),
            "group_dm": (P.CONTEXT_PRIVATE_CHANNEL, P.USER_INSTALL),
            "user_dm": (P.CONTEXT_PRIVATE_CHANNEL, P.USER_INSTALL),
        }[context]
        if ctx_type not in contexts or (install is not None and install not in installs):
            raise ValueError(
                f"/{name} is not offered in context {context!r}: synced with integration_types "
                f"{sorted(installs)} and contexts {sorted(contexts)} (after Discord's defaults; "
                "docs: application-commands.mdx 'Contexts')"
            )
        values: dict[str, object] = dict(options or {})
        for opt_name, (data, filename, content_type) in (attachments or {}).items():
            values[opt_name] = self.add_attachment(data, filename, content_type)
        resolved: dict[str, dict[str, Any]] = {}
        built = self._build_options(cmd.get("options") or [], values, resolved, f"/{name}", focused=focused)

        user = self.user if user_id == self.user_id else P.user_object(user_id, f"user{user_id}")
        interaction_id = P.snowflake()
        token = "fake-itoken-" + secrets.token_urlsafe(48)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": command_type}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if target_message is not None:
            if options or attachments:
                raise ValueError("a message command has no options")
            data["target_id"] = target_message["id"]
            data["resolved"] = {"messages": {target_message["id"]: target_message}}
        if scope != "global":
            data["guild_id"] = str(scope)
        # docs: receiving-and-responding.mdx "Authorizing Integration Owners Object": "0" is the
        # guild id (or "0" in the bot's DM), "1" the authorizing user's id; a key is present
        # only where the app is installed that way and the command supports that install.
        owners: dict[str, str] = {}
        if context == "guild":
            owners["0"] = str(guild_id)
        elif context == "dm":
            if P.GUILD_INSTALL in installs:
                owners["0"] = "0"
            if P.USER_INSTALL in installs:
                owners["1"] = str(user_id)
        else:
            owners["1"] = str(user_id)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": P.INTERACTION_AUTOCOMPLETE if focused is not None else 2,
            "data": data,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": owners,
            "context": ctx_type,
            "attachment_size_limit": P.ATTACHMENT_SIZE_LIMIT,
        }
        if in_guild:
            assert guild_id is not None
            channel_id = self.channel_id if context == "guild" else DEFAULT_OTHER_CHANNEL_ID
            channel = P.text_channel_object(channel_id, guild_id)
            # docs: "Interaction Structure": member (with permissions) in a guild, user in DMs.
            payload.update(
                guild={"id": str(guild_id), "locale": "en-US", "features": []},
                guild_id=str(guild_id),
                guild_locale="en-US",
                channel=channel,
                channel_id=str(channel_id),
                member=P.member_object(user, permissions=member_permissions or P.ALL_PERMISSIONS),
                # Where the bot is not a member, its permissions are not the guild's: the
                # docs give none for this case, so the smallest documented set, the (G)DM one.
                app_permissions=P.ALL_PERMISSIONS if context == "guild" else P.PRIVATE_APP_PERMISSIONS,
            )
        else:
            if member_permissions is not None:
                raise ValueError("member_permissions only exist in a guild")
            if context == "dm":
                channel = P.dm_channel_object(DEFAULT_DM_CHANNEL_ID, user)
                app_permissions = P.BOT_DM_APP_PERMISSIONS
            elif context == "user_dm":
                channel = P.dm_channel_object(DEFAULT_DM_CHANNEL_ID + 1, P.user_object(user_id + 1, "friend"))
                app_permissions = P.PRIVATE_APP_PERMISSIONS
            else:
                others = [P.user_object(user_id + 1, "friend"), P.user_object(user_id + 2, "friend2")]
                channel = P.group_dm_object(DEFAULT_GROUP_DM_CHANNEL_ID, user, others)
                app_permissions = P.PRIVATE_APP_PERMISSIONS
            payload.update(user=user, channel=channel, channel_id=channel["id"], app_permissions=app_permissions)
        self._shape_interaction(payload)
        record = InteractionRecord(id=interaction_id, token=token, name=name, payload=payload)
        self.interactions.append(record)
        self._by_token[token] = record

        def mark_sent() -> None:
            record.dispatched_at = time.monotonic()
            record.sent = True

        await self._dispatch(sess, "INTERACTION_CREATE", payload, mark_sent)
        return record

    def _shape_interaction(self, payload: dict[str, Any]) -> None:
        """Hook for a stand-in with more of a guild (``messages.GuildFakeDiscord``): place and member."""

    def _channel_option(self, channel_id: int, resolved: dict[str, dict[str, Any]]) -> str:
        """A CHANNEL option: the id, and the partial channel in ``resolved.channels``.

        docs: receiving-and-responding.mdx "Resolved Data Structure": partial channels carry
        id, name, type and the invoking member's permissions there.
        """
        if channel_id != self.channel_id:
            raise ValueError(f"channel {channel_id} does not exist in the fake guild")
        channel = {key: self.channel[key] for key in ("id", "name", "type")}
        resolved.setdefault("channels", {})[str(channel_id)] = {**channel, "permissions": P.ALL_PERMISSIONS}
        return str(channel_id)

    def _build_options(
        self,
        defs: list[dict[str, Any]],
        values: dict[str, object],
        resolved: dict[str, dict[str, Any]],
        where: str,
        *,
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        """Turn ``{name: value}`` into interaction options, typed by the synced definition.

        Values are checked as Discord's client checks them before sending (required
        options, choices, min/max length and value): see ``P.option_value_error``. For an
        autocomplete (``focused`` set) values may be partial and required ones missing.
        """
        by_name = {d["name"]: d for d in defs}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(f"{where}: no option(s) {sorted(unknown)}; defined: {sorted(by_name)}")
        out: list[dict[str, Any]] = []
        for d in defs:  # Discord sends options in definition order
            if d["name"] not in values:
                if d.get("required") and focused is None:
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
                        "options": self._build_options(
                            d.get("options") or [], sub, resolved, f"{where} {d['name']}", focused=focused
                        ),
                    }
                )
                continue
            is_focused = focused is not None and d["name"] == focused
            if is_focused and not d.get("autocomplete"):
                raise ValueError(f"{where}: option {d['name']!r} has no autocomplete; the client sends none for it")
            partial_ok = is_focused and value == ""  # typing has only just begun
            problem = P.option_value_error(d, value) if otype in P.VALUE_OPTION_TYPES and not partial_ok else None
            if problem is not None:
                raise ValueError(f"{where}: option {d['name']!r} {problem}; Discord's client would not send it")
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
            elif otype == P.OPTION_CHANNEL:
                value = self._channel_option(int(value), resolved)  # type: ignore[call-overload]
            option = {"name": d["name"], "type": otype, "value": value}
            if is_focused:
                option["focused"] = True
            out.append(option)
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
            "channel_id": record.payload["channel_id"],
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
                "user": record.payload.get("user") or record.payload["member"]["user"],
                "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
            },
        }
        if record.original_id is not None and msg_type != 20:
            msg["interaction_metadata"]["original_response_message_id"] = record.original_id
        self._apply_edit(msg, data, files, creating=True)
        msg["edited_timestamp"] = None
        record.messages[msg_id] = msg
        return msg

    def _apply_edit(
        self, msg: dict[str, Any], data: dict[str, Any], files: list[UploadedFile], *, creating: bool = False
    ) -> None:
        """Apply message fields; uploaded files become attachments served by the fake CDN.

        Flags are validated before this runs; on an edit only SUPPRESS_EMBEDS (set or
        unset) and IS_COMPONENTS_V2 (set only) change (docs: resources/webhook.mdx "Edit
        Webhook Message"); on creation the caller passes the flags.
        """
        for key in ("content", "embeds", "components", "poll"):
            if key in data:
                msg[key] = data[key] if data[key] is not None else ([] if key != "content" else "")
        if not creating and data.get("flags") is not None:
            new = int(data["flags"])
            msg["flags"] = (msg["flags"] & ~P.MESSAGE_FLAG_SUPPRESS_EMBEDS) | (new & P.EDIT_MESSAGE_FLAGS)
        if "attachments" in data or files:
            kept = self._kept_attachments(msg, data)
            for f in files:
                kept.append(
                    self.add_attachment(
                        f.data, f.filename, f.content_type, ephemeral=bool(msg["flags"] & P.MESSAGE_FLAG_EPHEMERAL)
                    )
                )
            msg["attachments"] = kept
        msg["edited_timestamp"] = P.iso_now()

    @staticmethod
    def _kept_attachments(msg: dict[str, Any] | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Existing attachments an edit keeps: all, or only those listed in ``attachments``.

        docs: resources/webhook.mdx "Edit Webhook Message": "the attachments array must
        contain all attachments that should be present after edit".
        """
        if msg is None:
            return []
        if "attachments" not in data:
            return list(msg["attachments"])
        keep_ids = {str(a.get("id")) for a in data.get("attachments") or []}
        return [a for a in msg["attachments"] if a["id"] in keep_ids]

    def _check_message(
        self,
        data: Any,
        files: list[UploadedFile],
        prefix: list[str],
        *,
        allowed_flags: int,
        editing: dict[str, Any] | None = None,
    ) -> web.Response | None:
        """Refuse a message body as Discord would (``editing``: the message being edited)."""
        if not isinstance(data, dict):
            return _error(400, 50109, "The request body contains invalid JSON.")
        total = sum(len(f.data) for f in files)
        # docs: topics/opcodes-and-status-codes.mdx 40005 "Request entity too large".
        if total > P.ATTACHMENT_SIZE_LIMIT:
            return _error(413, 40005, "Request entity too large")
        kept = self._kept_attachments(editing, data)
        names = {f.filename for f in files} | {a["filename"] for a in kept}
        errors = P.validate_message(data, prefix, allowed_flags=allowed_flags, attachment_names=names)
        errors.update(components_v2_errors(data, prefix, editing))
        if (
            editing is not None
            and editing["flags"] & P.MESSAGE_FLAG_IS_COMPONENTS_V2
            and data.get("flags") is not None
            and not int(data["flags"]) & P.MESSAGE_FLAG_IS_COMPONENTS_V2
        ):
            # docs: resources/webhook.mdx "Edit Webhook Message": IS_COMPONENTS_V2 "can only be set".
            errors.setdefault("flags", P._err("MESSAGE_FLAGS_INVALID", "IS_COMPONENTS_V2 cannot be unset."))
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        if editing is None:
            empty = P.message_is_empty(data, len(files))
        else:
            merged = {k: data.get(k, editing.get(k)) for k in ("content", "embeds", "components", "poll")}
            empty = P.message_is_empty(merged, len(files) + len(kept))
        if empty:
            # docs: opcodes-and-status-codes.mdx 50006; an edit that leaves nothing to show is
            # refused too (stricter: the docs do not single edits out).
            return _error(400, 50006, "Cannot send an empty message")
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
        ctype = body["type"]
        if record.payload.get("type") == P.INTERACTION_AUTOCOMPLETE:
            return self._autocomplete_result(record, rec, body)
        # docs: receiving-and-responding.mdx "Interaction Callback Type": an application
        # command can be answered with 4, 5 or 9 only (see P.COMMAND_CALLBACK_TYPES); the
        # error has the documented shape (reference.mdx "Error Messages").
        if ctype not in P.COMMAND_CALLBACK_TYPES:
            allowed = ", ".join(str(t) for t in P.COMMAND_CALLBACK_TYPES)
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {"type": P._err("BASE_TYPE_CHOICES", f"Value must be one of ({allowed}).")},
            )
        if record.acknowledged:
            # docs: opcodes-and-status-codes.mdx 40060.
            return _error(400, 40060, "Interaction has already been acknowledged.")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            return _error(400, 50035, "Invalid Form Body", {"data": P._err("MODEL_TYPE_CONVERT", "Not an object")})
        if ctype == P.CALLBACK_CHANNEL_MESSAGE:
            bad = self._check_message(data, rec.files, ["data"], allowed_flags=P.CALLBACK_MESSAGE_FLAGS)
            if bad is not None:
                return bad
        elif ctype == P.CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            # docs: "Messages" footnote: with type 5 "the only valid message flag you may use is EPHEMERAL".
            errors = P.validate_message({"flags": data.get("flags")}, ["data"], allowed_flags=P.DEFERRED_MESSAGE_FLAGS)
            if errors:
                return _error(400, 50035, "Invalid Form Body", errors)
        else:
            if record.payload.get("type") == P.INTERACTION_MODAL_SUBMIT:
                # docs: receiving-and-responding.mdx "Interaction Callback Type": MODAL (9) is
                # "not available for MODAL_SUBMIT and PING interactions".
                return _error(
                    400,
                    50035,
                    "Invalid Form Body",
                    {"type": P._err("BASE_TYPE_CHOICES", "Value must be one of (4, 5).")},
                )
            errors = P.validate_modal(data)
            if errors:
                return _error(400, 50035, "Invalid Form Body", errors)
        record.callbacks.append((rec.time, body))
        record.files.extend(rec.files)
        flags = int(data.get("flags") or 0)
        ephemeral = bool(flags & P.MESSAGE_FLAG_EPHEMERAL)
        message: dict[str, Any] | None = None
        if ctype == P.CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            loading = (flags & P.MESSAGE_FLAG_EPHEMERAL) | P.MESSAGE_FLAG_LOADING
            message = self._message(record, {}, [], flags=loading, msg_type=20)
            record.deferred_pending = True
        elif ctype == P.CALLBACK_CHANNEL_MESSAGE:
            message = self._message(record, data, rec.files, flags=flags, msg_type=20)
        if message is not None:
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

    def _autocomplete_result(
        self, record: InteractionRecord, rec: RecordedRequest, body: dict[str, Any]
    ) -> web.StreamResponse:
        """The answer to an autocomplete interaction: callback type 8 with choices, once."""
        if body["type"] != P.CALLBACK_AUTOCOMPLETE_RESULT:
            # docs: receiving-and-responding.mdx "Interaction Callback Type".
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {"type": P._err("BASE_TYPE_CHOICES", f"Value must be one of ({P.CALLBACK_AUTOCOMPLETE_RESULT}).")},
            )
        if record.acknowledged:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        option = _focused_option(record.payload["data"].get("options") or [])
        definition = self._option_definition(record.payload["data"], option)
        errors = P.validate_autocomplete(body.get("data") or {}, definition)
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        record.callbacks.append((rec.time, body))
        record._notify()
        return web.Response(status=204)

    def _option_definition(self, data: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
        """The synced definition of an interaction's option (searched through subcommands)."""
        for commands in self._commands.values():
            for cmd in commands:
                if cmd["id"] == data["id"]:
                    stack = list(cmd.get("options") or [])
                    while stack:
                        d = stack.pop()
                        if d["name"] == option["name"] and int(d["type"]) == option["type"]:
                            return d
                        stack.extend(d.get("options") or [])
        raise LookupError(f"no synced option {option['name']!r}")

    async def _followup(self, request: web.Request, rec: RecordedRequest, m: re.Match[str]) -> web.StreamResponse:
        """POST /webhooks/{app}/{token}: a follow-up message (only after the ack).

        docs: receiving-and-responding.mdx "Create Followup Message": "wait is always true"
        (the message is always returned); the first follow-up right after a type-5
        deferral "will function as Edit Original Interaction Response": it edits the
        loading message, ignores EPHEMERAL and keeps the deferral's visibility. If that
        message was deleted first, it answers 10008 Unknown Message (the docs do not say;
        this is what discord.py users report, and the stricter answer).
        """
        record = self._interaction_for_webhook(m)
        if record is None or not record.acknowledged:
            return _error(404, 10015, "Unknown Webhook")
        data = rec.json
        if record.deferred_pending:
            original = record.messages.get(record.original_id) if record.original_id is not None else None
            if original is None:
                return _error(404, 10008, "Unknown Message")
            bad = self._check_message(data, rec.files, [], allowed_flags=P.FOLLOWUP_MESSAGE_FLAGS, editing=original)
            if bad is not None:
                return bad
            record.deferred_pending = False
            record.edits.append((rec.time, data))
            record.edits_by_followup += 1
            record.files.extend(rec.files)
            self._apply_edit(original, {k: v for k, v in data.items() if k != "flags"}, rec.files)
            original["flags"] &= ~P.MESSAGE_FLAG_LOADING
            record._notify()
            return _json(original)
        # docs: "Create Followup Message": at most 5 when authorizing_integration_owners only
        # holds USER_INSTALL (every accepted follow-up POST counts: stricter); error 40094.
        owners = record.payload.get("authorizing_integration_owners") or {}
        limited = set(owners) == {str(P.USER_INSTALL)}
        if limited and len(record.followups) >= P.USER_INSTALL_FOLLOWUP_LIMIT:
            return _error(400, 40094, "This interaction has hit the maximum number of follow up messages")
        bad = self._check_message(data, rec.files, [], allowed_flags=P.FOLLOWUP_MESSAGE_FLAGS)
        if bad is not None:
            return bad
        record.followups.append((rec.time, data))
        record.files.extend(rec.files)
        flags = int(data.get("flags") or 0) & P.FOLLOWUP_MESSAGE_FLAGS
        msg = self._message(record, data, rec.files, flags=flags, msg_type=20)
        record._notify()
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
        # docs: resources/webhook.mdx "Edit Webhook Message": flags "SUPPRESS_EMBEDS and
        # IS_COMPONENTS_V2 only"; anything else is refused rather than silently dropped.
        bad = self._check_message(data, rec.files, [], allowed_flags=P.EDIT_MESSAGE_FLAGS, editing=msg)
        if bad is not None:
            return bad
        if msg["id"] == record.original_id:
            record.edits.append((rec.time, data))
            record.deferred_pending = False
        else:
            record.followup_edits.append((rec.time, m["mid"], data))
        record.files.extend(rec.files)
        self._apply_edit(msg, data, rec.files)
        msg["flags"] &= ~P.MESSAGE_FLAG_LOADING
        record._notify()
        return _json(msg)


def _focused_option(options: list[dict[str, Any]]) -> dict[str, Any]:
    for option in options:
        if option.get("focused"):
            return option
        found = option.get("options")
        if found:
            try:
                return _focused_option(found)
            except LookupError:
                continue
    raise LookupError("no focused option")
