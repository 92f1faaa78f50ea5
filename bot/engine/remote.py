"""CLIP on Roboflow Inference Servers (`CLIP_BACKEND=remote`), through `inference_sdk`.

The servers' own HTTP API does the model work (`/clip/embed_text`, `/clip/embed_image`);
the bot keeps everything else: the text cache, request limits, prompt fitting and the
decoding of uploads in its isolated workers (`bot.engine.decoding`). A server only ever
receives the model-sized centre crop of an upload, as a PNG (lossless), never the user's
original file: the server's own Resize(n) + CenterCrop(n) is then the identity and the
embedding equals the local backend's.

Several servers (`INFERENCE_SERVER_URL=a,b,c`): each request goes to the server with the
fewest requests outstanding (ties in turn); a timeout, a 5xx or a connection error moves
it to another server, at most `INFERENCE_RETRIES` times, and then the user gets one line.
A server that failed is avoided for a few seconds and probed in the background meanwhile;
`/readyz` reports the backend unready while no server answers.

Spreading, failover and health share the per-server state, so they stay together.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import numpy as np
from PIL import Image

from bot.config import Settings
from bot.engine.backend import ImageEmbedding, ModelInfo
from bot.engine.decoding import ImageWorkers
from bot.engine.frames import frame_limits, mean_of_frames
from bot.engine.preparation import THUMBNAIL_SIDE, PrepareSpec
from bot.errors import BackendUnavailableError, ConfigError, EngineError, StartupError, first_line, redact

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Input side of Roboflow's CLIP versions (`clip_version_id`), so the crop is made without the model.
KNOWN_RESOLUTIONS = {
    "RN50": 224,
    "RN101": 224,
    "RN50x4": 288,
    "RN50x16": 384,
    "RN50x64": 448,
    "ViT-B-32": 224,
    "ViT-B-16": 224,
    "ViT-L-14": 224,
    "ViT-L-14-336px": 336,
}
#: A server that failed is passed over for this long (unless every server has failed).
AVOID_FAILED_S = 5.0
#: While some server is down, how often all servers are probed (`GET /healthz`).
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 3.0
UNREACHABLE = "The CLIP servers are unreachable right now. Please try again in a minute."


class ServerError(Exception):
    """One server failed one request in a way another server may not (timeout, 5xx, connection)."""


def clip_version(model_id: str) -> str:
    """`clip/ViT-B-16` -> `ViT-B-16`, the `clip_version_id` the server's CLIP endpoints take."""
    return model_id.removeprefix("clip/")


def remote_resolution(settings: Settings) -> int:
    """The model's input side: `CLIP_REMOTE_RESOLUTION`, else known from the CLIP version."""
    if settings.clip_remote_resolution is not None:
        return settings.clip_remote_resolution
    version = clip_version(settings.clip_model_id)
    if version not in KNOWN_RESOLUTIONS:
        raise ConfigError(
            f"The input size of CLIP model {settings.clip_model_id} is not known here; "
            "set CLIP_REMOTE_RESOLUTION (e.g. 224) to the model's input side in pixels."
        )
    return KNOWN_RESOLUTIONS[version]


def png_base64(pixels: np.ndarray) -> str:
    """A uint8 RGB crop as a base64 PNG: lossless, so the server sees exactly these pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class _Server:
    url: str
    client: Any  # inference_sdk.InferenceHTTPClient
    outstanding: int = 0
    failed_at: float = -1e9
    last_error: str | None = None
    reachable: bool = True

    def avoided(self, now: float) -> bool:
        return now - self.failed_at < AVOID_FAILED_S


@dataclass
class _Tries:
    """Servers one request has tried, so a retry goes elsewhere first."""

    tried: list[_Server] = field(default_factory=list)


class RemoteBackend:
    """The `bot.engine` backend protocol on a pool of Roboflow Inference Servers."""

    def __init__(self, settings: Settings, workers: ImageWorkers) -> None:
        from inference_sdk import InferenceConfiguration, InferenceHTTPClient

        self.settings = settings
        self._workers = workers
        self._version = clip_version(settings.clip_model_id)
        key = settings.roboflow_api_key.get_secret_value() if settings.roboflow_api_key else None
        config = InferenceConfiguration(api_key_transport="header")
        self._servers = [
            _Server(url, InferenceHTTPClient(api_url=url, api_key=key).configure(config))
            for url in settings.inference_server_url
        ]
        self._turn = itertools.count()
        self._resolution: int | None = None
        self._waiting: str | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._warmups: set[asyncio.Task[bool]] = set()
        self._session: aiohttp.ClientSession | None = None
        #: Requests that went to another server after one failed (for tests and metrics).
        self.retries = 0

    # ----------------------------------------------------------------- start-up
    async def load(self) -> ModelInfo:
        """Wait until one server embeds a text (each loads the model on first use); the others
        warm up in the background, and requests go to whichever answers."""
        started = time.perf_counter()
        self._resolution = remote_resolution(self.settings)
        deadline = time.monotonic() + self.settings.inference_startup_timeout_s
        while not await self._first_answer(deadline):
            if time.monotonic() >= deadline:
                detail = "; ".join(f"{s.url}: {s.last_error}" for s in self._servers)
                raise StartupError(
                    f"No CLIP inference server answered within {self.settings.inference_startup_timeout_s:g} s "
                    f"({detail}). Check INFERENCE_SERVER_URL and that the servers are running."
                )
            self._waiting = f"waiting for the CLIP servers ({len(self._servers)} configured, none answering yet)"
            await asyncio.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        self._waiting = None
        log.info("CLIP %s on inference servers %s", self._version, ", ".join(s.url for s in self._servers))
        self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop(), name="inference-probe")
        count = len(self._servers)
        return ModelInfo(
            model=self.settings.clip_model_id,
            model_id=self.settings.clip_model_id,
            device=f"remote: {count} inference server{'s' if count != 1 else ''}",
            providers=(),
            requested_providers=(),
            resolution=self._resolution,
            load_s=time.perf_counter() - started,
        )

    async def _first_answer(self, deadline: float) -> bool:
        """Warm every server up at once; True as soon as one has answered, False if none did by `deadline`."""
        pending = {asyncio.create_task(self._warm_up(server, deadline)) for server in self._servers}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.result() for task in done):  # a `StartupError` (refused model) ends here
                    return True
            return False
        finally:
            for task in pending:  # the slower ones go on warming up; `aclose` stops them
                task.add_done_callback(_retrieve)
            self._warmups |= pending

    async def _warm_up(self, server: _Server, deadline: float) -> bool:
        """Whether `server` embedded a text before `deadline` (its first call may load or download the model)."""
        call = server.client.get_clip_text_embeddings_async(text=["warm-up"], clip_version=self._version)
        try:
            await self._guarded(server, call, timeout=max(0.1, deadline - time.monotonic()))
        except ServerError:
            return False
        except EngineError as exc:
            # A 4xx (a bad ROBOFLOW_API_KEY, a refused request): restarting cannot fix it.
            raise ConfigError(f"Inference server {server.url} refused CLIP model {self._version}: {exc}") from None
        return True

    def warming_up(self) -> str | None:
        return self._waiting

    @property
    def batchers(self) -> tuple[()]:
        """No micro-batching here: each request is one HTTP call (the servers run them concurrently)."""
        return ()

    async def settled(self) -> None:
        """Nothing runs in the background after `load`, apart from health probes."""

    # --------------------------------------------------------------------- work
    async def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        """One request for all of `texts` (already fitted and de-duplicated by the facade)."""
        if not texts:
            return []

        def call(client: Any) -> Awaitable[Any]:
            return client.get_clip_text_embeddings_async(text=list(texts), clip_version=self._version)

        answer = await self._request(call)
        rows = _embeddings(answer, len(texts))
        return list(rows)

    async def embed_image(
        self, data: bytes, *, thumbnail: bool, background: bool = False, requester: Hashable | None = None
    ) -> ImageEmbedding:
        """Decode and crop in our workers, send the crop losslessly, return the server's vector
        (a clip's frames: one request each, at once, averaged after normalising)."""
        assert self._resolution is not None, "load() first"
        spec = PrepareSpec(
            crop=self._resolution,
            max_pixels=self.settings.max_image_pixels,
            thumbnail=THUMBNAIL_SIDE if thumbnail else 0,
            frames=frame_limits(self.settings),
        )
        prepared = await asyncio.wrap_future(self._workers.submit(data, spec, requester))

        async def embed(frame: np.ndarray) -> np.ndarray:
            encoded = await asyncio.to_thread(png_base64, frame)

            def call(client: Any) -> Awaitable[Any]:
                return client.get_clip_image_embeddings_async(inference_input=encoded, clip_version=self._version)

            return _embeddings(await self._request(call), 1)[0]

        rows = await asyncio.gather(*(embed(frame) for frame in prepared.arrays()))
        return ImageEmbedding(mean_of_frames(np.stack(rows)), prepared.thumbnail, prepared.frames)

    # ------------------------------------------------------------ spreading, failover
    def _pick(self, tries: _Tries) -> _Server:
        """Fewest outstanding requests among servers not tried yet and not recently failed; ties in turn."""
        now = time.monotonic()
        fresh = [s for s in self._servers if s not in tries.tried]
        pool = [s for s in fresh if not s.avoided(now)] or fresh or self._servers
        turn = next(self._turn)
        order = {id(s): (i - turn) % len(self._servers) for i, s in enumerate(self._servers)}
        return min(pool, key=lambda s: (s.outstanding, order[id(s)]))

    async def _request(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """`call` on one server, then on others after a timeout, 5xx or connection error; else one line."""
        tries = _Tries()
        for attempt in range(1 + self.settings.inference_retries):
            server = self._pick(tries)
            tries.tried.append(server)
            if attempt:
                self.retries += 1
            try:
                return await self._guarded(server, call(server.client), timeout=self.settings.inference_timeout_s)
            except ServerError as exc:
                log.warning("inference server %s failed (try %d): %s", server.url, attempt + 1, exc)
        raise BackendUnavailableError(UNREACHABLE)

    async def _guarded(self, server: _Server, call: Awaitable[T], *, timeout: float) -> T:  # noqa: ASYNC109
        """Await one server call with a deadline; sort its failure into retryable or not."""
        from inference_sdk.http.errors import HTTPCallErrorError, HTTPClientError

        server.outstanding += 1
        try:
            answer = await asyncio.wait_for(call, timeout)
            if isinstance(answer, dict) and "embeddings" not in answer:
                # an answer without embeddings (an error body the SDK did not raise for)
                raise ServerError(f"unexpected answer: {str(answer)[:200]}")
        except TimeoutError:
            self._failed(server, f"no answer within {timeout:.3g} s")
            raise ServerError(server.last_error) from None
        except HTTPCallErrorError as exc:
            if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 429:
                # Our request or configuration is wrong (unknown model, bad key): no other server will differ.
                raise EngineError(f"the CLIP server refused the request (HTTP {exc.status_code})") from None
            self._failed(server, f"HTTP {exc.status_code}")
            raise ServerError(server.last_error) from None
        except (HTTPClientError, aiohttp.ClientError, OSError, ServerError) as exc:
            self._failed(server, first_line(exc, 200))
            raise ServerError(server.last_error) from None
        except KeyError as exc:
            if exc.args != ("request_data",):
                raise
            # inference_sdk retries 429/503/504 itself; when it gives up, its async give-up
            # handler looks for a keyword argument it was never given and raises this instead.
            self._failed(server, "busy (HTTP 429/503/504 after inference_sdk's own retries)")
            raise ServerError(server.last_error) from None
        finally:
            server.outstanding -= 1
        server.reachable = True
        return answer

    def _failed(self, server: _Server, why: str) -> None:
        why = redact(why, self.settings.secrets())
        server.failed_at = time.monotonic()
        server.last_error = why
        server.reachable = False

    # ------------------------------------------------------------------- health
    @property
    def reachable(self) -> bool:
        """Some server answered its last request or probe (what `/readyz` reads, synchronously)."""
        return any(server.reachable for server in self._servers)

    async def problem(self) -> str | None:
        """Probe every server now; None when at least one answers, else why none does."""
        await asyncio.gather(*(self._probe(server) for server in self._servers))
        if self.reachable:
            return None
        return "no CLIP inference server answers: " + "; ".join(
            f"{server.url}: {server.last_error}" for server in self._servers
        )

    async def _probe(self, server: _Server) -> None:
        """`GET /healthz`: the server's liveness endpoint (cheap, no model call)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S))
        try:
            async with self._session.get(f"{server.url}/healthz") as response:
                if response.status != 200:
                    raise ServerError(f"health check answered HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError, OSError, ServerError) as exc:
            why = "health check timed out" if isinstance(exc, TimeoutError) else first_line(exc, 200)
            self._failed(server, why)
        else:
            server.reachable = True

    async def _probe_loop(self) -> None:
        """While some server is down, probe them all, so a recovered one is used again soon."""
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            if not all(server.reachable for server in self._servers):
                with contextlib.suppress(Exception):
                    await self.problem()

    async def aclose(self) -> None:
        for task in [*self._warmups, *([self._probe_task] if self._probe_task else [])]:
            task.cancel()
        await asyncio.gather(*self._warmups, *([self._probe_task] if self._probe_task else []), return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def _embeddings(answer: Any, count: int) -> np.ndarray:
    """The `embeddings` rows of a CLIP endpoint's answer, checked for shape."""
    try:
        rows = np.asarray(answer["embeddings"], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineError("the CLIP server sent an answer without embeddings") from exc
    if rows.ndim != 2 or rows.shape[0] != count:
        raise EngineError(f"the CLIP server sent {rows.shape[0] if rows.ndim else 0} embeddings for {count} inputs")
    return rows


def _retrieve(task: asyncio.Task[bool]) -> None:
    """A background warm-up's outcome is in its server's state; its exception needs no other handling."""
    if not task.cancelled():
        task.exception()
