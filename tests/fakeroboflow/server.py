"""A local stand-in for Roboflow's model API, for first-run download tests.

Roboflow Inference asks ``{API_BASE_URL}/core_model/<model id>?nocache=true&device=...&dynamic=true``
(plus ``api_key`` when one is set) for a ``weights`` mapping of signed storage URLs,
and fetches each URL; the file's name is the last part of the URL's path. This
server answers both, so a test points inference's own ``API_BASE_URL`` here and
nothing else changes: inference builds the request, the bot downloads the files.

The storage side behaves like a signed Google Cloud Storage URL: the signature
and expiry are checked (403 otherwise), ``Range`` is honoured (206 with
``Content-Range``; 416 past the end; ``If-Range`` with a stale ETag gets the
whole file), and ``ETag`` and ``x-goog-hash: md5=...`` describe the whole object.

`Faults` injects what goes wrong in real life: a connection dropped mid-file
(once, or every time), 403/404 on the metadata or on a file, a server that
ignores ``Range``, slow serving, a corrupted body, and a hook run when a file's
body starts (a test fills the disk there). `FakeRoboflow.seen` records every
request. It binds 127.0.0.1 only and runs its own event loop in a thread, so a
test can drive a subprocess (or blocking code) against it.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import contextlib
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CHUNK = 64 * 1024
STORAGE_PREFIX = "/roboflow-core-models"
#: The query parameters inference always sends on a core-model metadata request.
REQUIRED_METADATA_PARAMS = ("nocache", "device", "dynamic")


@dataclass
class Faults:
    """What goes wrong; read per request, so a test may change it between runs."""

    #: Status for every metadata request (e.g. 403, 404); None: answer normally.
    metadata_status: int | None = None
    #: File name -> status returned for it instead of the file (e.g. {"visual.onnx": 404}).
    file_status: dict[str, int] = field(default_factory=dict)
    #: How many file requests get `file_status` (None: all of them).
    file_status_times: int | None = None
    #: Close the connection after this many body bytes of a file response (None: never).
    drop_after: int | None = None
    #: How many responses are dropped (None: every one).
    drop_times: int | None = 1
    #: Only this file's responses are dropped (None: any file).
    drop_file: str | None = None
    #: Answer 200 with the whole file even when a range is asked for.
    ignore_range: bool = False
    #: Serve file bodies at about this rate (None: as fast as possible).
    bytes_per_s: float | None = None
    #: Files whose body is served with bytes flipped (headers still describe the real file).
    corrupt_files: set[str] = field(default_factory=set)
    #: Called with the file name and the body's length (in the server's thread) before a body is sent.
    on_body_start: Callable[[str, int], None] | None = None


@dataclass(frozen=True)
class SeenRequest:
    """One request as the stand-in saw it."""

    kind: str  # "metadata" or "file"
    path: str
    query: dict[str, str]
    range: str | None
    if_range: str | None
    status: int


@dataclass(frozen=True)
class _ModelFile:
    name: str
    data: bytes
    etag: str
    md5_b64: str


class FakeRoboflow:
    """The metadata endpoint and signed file URLs for `models` (model id -> folder).

    Each folder's ``*.onnx`` files are served. `valid_keys`: when given, a request
    carrying an ``api_key`` outside it is refused with 403 (no key is always fine:
    CLIP is a public foundation model). `url_ttl_s`: lifetime of a signed URL.
    """

    def __init__(self, models: dict[str, Path], *, valid_keys: tuple[str, ...] = (), url_ttl_s: float = 900) -> None:
        self.models = {model_id: self._load(Path(folder)) for model_id, folder in models.items()}
        self.valid_keys = valid_keys
        self.url_ttl_s = url_ttl_s
        self.faults = Faults()
        self.seen: list[SeenRequest] = []
        self._secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @staticmethod
    def _load(folder: Path) -> dict[str, _ModelFile]:
        files = {}
        for path in sorted(folder.glob("*.onnx")):
            data = path.read_bytes()
            digest = hashlib.md5(data).digest()
            files[path.name] = _ModelFile(path.name, data, f'"{digest.hex()}"', base64.b64encode(digest).decode())
        return files

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeRoboflow:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Serve on 127.0.0.1 (a free port) from a background thread; returns the base URL."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakeroboflow", daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def _serve(self) -> int:
        app = web.Application()
        app.router.add_get("/core_model/{model_id:.+}", self._metadata)
        app.router.add_get(STORAGE_PREFIX + "/{model_id:.+}/{name:[^/]+}", self._file)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    # -------------------------------------------------------------- helpers
    def requests(self, kind: str) -> list[SeenRequest]:
        """The requests of one kind ("metadata" or "file") seen so far."""
        with self._lock:
            return [r for r in self.seen if r.kind == kind]

    def _record(self, request: web.Request, kind: str, status: int) -> None:
        with self._lock:
            self.seen.append(
                SeenRequest(
                    kind,
                    request.path,
                    dict(request.query),
                    request.headers.get("Range"),
                    request.headers.get("If-Range"),
                    status,
                )
            )

    def _signature(self, path: str, date: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}\n{date}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, model_id: str, name: str) -> str:
        """A GCS-style V4 signed URL for one file (what the metadata endpoint hands out)."""
        path = f"{STORAGE_PREFIX}/{model_id}/{name}"
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        expires = str(int(self.url_ttl_s))
        query = {
            "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
            "X-Goog-Credential": "fake-signer@roboflow.example/20260101/auto/storage/goog4_request",
            "X-Goog-Date": date,
            "X-Goog-Expires": expires,
            "X-Goog-SignedHeaders": "host",
            "X-Goog-Signature": self._signature(path, date, expires),
        }
        return f"{self.base_url}{path}?{urlencode(query)}"

    # ------------------------------------------------------------- handlers
    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["model_id"]
        faults = self.faults
        status = 200
        body: dict[str, Any]
        missing = [name for name in REQUIRED_METADATA_PARAMS if name not in request.query]
        key = request.query.get("api_key")
        if missing:
            status, body = 400, {"error": f"missing query parameters {missing}"}
        elif faults.metadata_status is not None:
            status, body = faults.metadata_status, {"error": {"message": "injected", "status": faults.metadata_status}}
        elif key is not None and self.valid_keys and key not in self.valid_keys:
            status, body = 403, {"error": {"message": "This API key does not exist (or has been revoked)."}}
        elif model_id not in self.models:
            status, body = 404, {"error": {"message": f"Model {model_id} not found"}}
        else:
            # Named by what they are; inference only uses each URL's last path segment.
            body = {
                "weights": {
                    name.removesuffix(".onnx"): self.signed_url(model_id, name) for name in self.models[model_id]
                }
            }
        self._record(request, "metadata", status)
        return web.json_response(body, status=status)

    def _signature_problem(self, request: web.Request) -> str | None:
        q = request.query
        try:
            date, expires, signature = q["X-Goog-Date"], q["X-Goog-Expires"], q["X-Goog-Signature"]
            issued = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
        except (KeyError, ValueError):
            return "MissingSecurityHeader"
        if not hmac.compare_digest(signature, self._signature(request.path, date, expires)):
            return "SignatureDoesNotMatch"
        if time.time() > issued + float(expires):
            return "ExpiredToken"
        return None

    async def _file(self, request: web.Request) -> web.StreamResponse:
        faults = self.faults
        model_id, name = request.match_info["model_id"], request.match_info["name"]
        problem = self._signature_problem(request)
        if problem is not None:
            self._record(request, "file", 403)
            return _xml_error(403, problem)
        model_file = self.models.get(model_id, {}).get(name)
        if model_file is None:
            self._record(request, "file", 404)
            return _xml_error(404, "NoSuchKey")
        injected = faults.file_status.get(name)
        if injected is not None and faults.file_status_times != 0:
            if faults.file_status_times is not None:
                faults.file_status_times -= 1
            self._record(request, "file", injected)
            return _xml_error(injected, "Injected")

        data, total = model_file.data, len(model_file.data)
        start, end = 0, total - 1
        status = 200
        wanted = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if wanted and not faults.ignore_range and (if_range is None or if_range == model_file.etag):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match:
                start = int(match[1])
                end = min(int(match[2]), total - 1) if match[2] else total - 1
                if start >= total or start > end:
                    self._record(request, "file", 416)
                    return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
                status = 206
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(end - start + 1),
            "Accept-Ranges": "bytes",
            "ETag": model_file.etag,
            "x-goog-hash": f"md5={model_file.md5_b64}",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        self._record(request, "file", status)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        body = data[start : end + 1]
        if faults.on_body_start is not None:
            faults.on_body_start(name, len(body))
        if name in faults.corrupt_files:
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        drop_at = None
        if (
            faults.drop_after is not None
            and faults.drop_after < len(body)
            and faults.drop_times != 0
            and faults.drop_file in (None, name)
        ):
            drop_at = faults.drop_after
            if faults.drop_times is not None:
                faults.drop_times -= 1
        sent = 0
        try:
            while sent < len(body):
                chunk = body[sent : sent + CHUNK]
                if drop_at is not None and sent + len(chunk) >= drop_at:
                    await response.write(chunk[: drop_at - sent])
                    # Mid-body: the client sees fewer bytes than Content-Length, then EOF.
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(chunk)
                sent += len(chunk)
                if faults.bytes_per_s:
                    await asyncio.sleep(len(chunk) / faults.bytes_per_s)
            await response.write_eof()
        except ConnectionResetError:  # the client went away (it stopped, or gave up): not our error
            pass
        return response


def _xml_error(status: int, code: str) -> web.Response:
    """Google Cloud Storage's error body (XML, no detail worth echoing)."""
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")
