"""What the fake Discord saw, kept as plain data so e2e tests can assert on it.

Times are ``time.monotonic()`` values taken on the event loop that runs both the
fake server and the bot, so differences between them measure real latencies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class UploadedFile:
    """One ``files[n]`` part of a multipart request (discord.py uploads files this way)."""

    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """One HTTP request, recorded before it is answered so that failures are visible too.

    ``path`` is relative to the API base (``/users/@me``) for REST calls and the full
    URL path for CDN downloads. ``json`` is the JSON body, or the parsed ``payload_json``
    part of a multipart body. ``status`` is filled in once the answer is known;
    ``matched`` is False for calls to routes the fake does not implement.
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    time: float
    files: list[UploadedFile] = field(default_factory=list)
    status: int | None = None
    matched: bool = True
    # The JSON error answer (None for successes and non-JSON bodies) and the answer's headers.
    response: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # True when the answer came from a fail_next() switch rather than the fake's own rules.
    injected: bool = False


@dataclass
class CommandSync:
    """One bulk overwrite of application commands (what ``CommandTree.sync`` sends)."""

    scope: str | int  # "global" or the guild id
    commands: list[dict[str, Any]]
    time: float


@dataclass
class GatewayConnection:
    """One websocket connection to the fake gateway."""

    path: str
    query: dict[str, str]
    compressed: bool
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None
    identified: bool = False
    resumed: bool = False


@dataclass
class Fault:
    """A pending ``fail_next`` switch."""

    method: str
    path_regex: str
    status: int
    retry_after: float
    count: int
    global_: bool


class InteractionRecord:
    """Everything the bot did with one dispatched INTERACTION_CREATE.

    ``callbacks``, ``followups`` and ``edits`` hold ``(monotonic time, JSON body)``; for
    multipart requests the body is the parsed ``payload_json`` and the uploaded files
    are in ``files``. ``edits`` are edits of @original, including the first follow-up
    POST after a type-5 deferral, which Discord applies to the loading message instead
    of creating one (counted in ``edits_by_followup``); ``followups`` are the follow-ups
    that created messages. Edits of follow-up messages are in ``followup_edits``.
    ``deletes`` holds ``(time, message id or "@original")``.
    """

    def __init__(self, *, id: int, token: str, name: str, payload: dict[str, Any]) -> None:
        self.id = id
        self.token = token
        self.name = name
        self.payload = payload
        # Set when the INTERACTION_CREATE frame is actually written to a websocket;
        # an event queued while the bot was disconnected gets the time it was replayed.
        self.dispatched_at: float = time.monotonic()
        self.sent = False
        self.callbacks: list[tuple[float, dict[str, Any]]] = []
        self.followups: list[tuple[float, dict[str, Any]]] = []
        self.edits: list[tuple[float, dict[str, Any]]] = []  # of @original
        self.followup_edits: list[tuple[float, str, dict[str, Any]]] = []  # (time, id, body)
        self.deletes: list[tuple[float, str]] = []
        self.files: list[UploadedFile] = []
        # Messages this interaction produced, by id; ``original_id`` is the @original one.
        self.messages: dict[str, dict[str, Any]] = {}
        self.original_id: str | None = None
        # After a type-5 deferral, until @original is edited: the next follow-up POST edits
        # @original instead of creating a message (it is then recorded in ``edits``).
        self.deferred_pending = False
        self.edits_by_followup = 0  # how many of ``edits`` came through the follow-up endpoint
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return (
            f"<InteractionRecord id={self.id} name={self.name!r} callbacks={len(self.callbacks)}"
            f" followups={len(self.followups)} edits={len(self.edits)}>"
        )

    @property
    def acknowledged(self) -> bool:
        """True once a callback was accepted (a second one gets error 40060)."""
        return bool(self.callbacks)

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the first callback: Discord allows 3 s."""
        if not self.callbacks:
            return None
        return self.callbacks[0][0] - self.dispatched_at

    @property
    def final(self) -> dict[str, Any] | None:
        """The message the user ends up seeing as the answer, if there is one yet.

        A type-4 callback's ``data``; after a type-5 deferral, whichever came first of
        the first follow-up and the first edit of @original.
        """
        if not self.callbacks:
            return None
        first = self.callbacks[0][1]
        if first.get("type") == 4:
            data = first.get("data")
            return data if isinstance(data, dict) else {}
        if first.get("type") == 5:
            later = [*self.followups[:1], *self.edits[:1]]
            if later:
                return min(later, key=lambda item: item[0])[1]
        return None

    def _notify(self) -> None:
        """Wake waiters; a fresh Event per change keeps the waiting loop simple."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[InteractionRecord], bool], timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until ``predicate(self)`` holds, re-checking after every recorded change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting on {self!r}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_final(self, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait for the final message body (see ``final``) and return it."""
        await self.wait_for(lambda rec: rec.final is not None, timeout)
        final = self.final
        assert final is not None
        return final
