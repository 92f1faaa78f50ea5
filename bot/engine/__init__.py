"""The CLIP engine: one facade over where the model runs, with what every backend shares.

Knows nothing of Discord. The facade owns the isolated decode workers, prompt
fitting and the text-embedding cache (`bot.engine.text`); a backend
(`bot.engine.backend.Backend`) owns the model: `LocalBackend` runs Roboflow
Inference's `Clip` in this process (`bot.engine.local`), `RemoteBackend` calls
Roboflow Inference Servers (`bot.engine.remote`). Every call into a model or a
decoder runs off the event loop, which only ever waits on futures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from bot.engine.backend import Backend, ImageEmbedding, ModelInfo
from bot.engine.batching import BatchObserver
from bot.engine.decoding import ImageWorkers
from bot.engine.preparation import THUMBNAIL_SIDE, PrepareSpec
from bot.engine.text import PromptFitter, TextEmbeddings
from bot.errors import EngineError

if TYPE_CHECKING:  # the decode workers import this package: it stays light (no pydantic)
    from bot.config import Settings

__all__ = ["Backend", "ClipEngine", "ImageEmbedding", "ModelInfo", "make_backend"]

log = logging.getLogger(__name__)


def make_backend(settings: Settings, workers: ImageWorkers, *, tune_sessions: bool = True) -> Backend:
    """The backend `settings.clip_backend` names."""
    if settings.clip_backend == "remote":
        from bot.engine.remote import RemoteBackend

        return RemoteBackend(settings, workers)
    from bot.engine.local import LocalBackend

    return LocalBackend(settings, workers, tune_sessions=tune_sessions)


class ClipEngine:
    """Embeddings for the service: texts (cached, fitted to CLIP's context) and uploads (decoded
    in isolated workers), from whichever backend is configured."""

    def __init__(self, settings: Settings, *, tune_sessions: bool = True, backend: Backend | None = None) -> None:
        """`tune_sessions=False` keeps inference's sessions as they are (one-shot CLI queries)."""
        self.settings = settings
        #: Uploads are decoded in these processes, within a time and memory budget (`bot.engine.decoding`).
        self.workers = ImageWorkers(
            settings.decode_workers,
            timeout_s=settings.decode_timeout_s,
            memory_mb=settings.decode_memory_mb,
            per_requester=settings.decodes_per_user,
        )
        self.backend: Backend = backend or make_backend(settings, self.workers, tune_sessions=tune_sessions)
        self.fitter = PromptFitter(settings.text_cache_size)
        self.texts = TextEmbeddings(self.backend.embed_texts, settings.text_cache_size)
        self._info: ModelInfo | None = None
        self._load_error: BaseException | None = None
        self._ready = asyncio.Event()
        self._load_task: asyncio.Task[ModelInfo] | None = None

    # ----------------------------------------------------------------- loading
    async def start(self) -> ModelInfo:
        """Start the decode workers and load (or reach) the model; the loop stays free."""
        if self._load_task is None:
            self._load_task = asyncio.get_running_loop().create_task(self._load())
        return await asyncio.shield(self._load_task)

    async def _load(self) -> ModelInfo:
        loop = asyncio.get_running_loop()
        # First the workers' fork server, alone: it is started with a narrowed environment
        # (`worker_env`), and loading the model reads and writes the environment (inference, at import).
        await loop.run_in_executor(None, self.workers.start)
        # Then the decode workers warm up alongside the model (and count in start-up).
        workers = loop.run_in_executor(None, self._start_workers)
        try:
            self._info = await self.backend.load()
            await workers
        except BaseException as exc:
            self._load_error = exc
            await asyncio.gather(workers, return_exceptions=True)
            raise
        finally:
            self._ready.set()
        return self._info

    def _start_workers(self) -> None:
        """Start the decode worker processes and wait for their first answers (pre-warmed)."""
        started = time.perf_counter()
        self.workers.start()
        self.workers.warm_up(PrepareSpec(crop=224, max_pixels=self.settings.max_image_pixels, thumbnail=THUMBNAIL_SIDE))
        log.info(
            "%d image decode worker(s) ready in %.2fs (budget per image: %g s, %d MB)",
            self.workers.workers,
            time.perf_counter() - started,
            self.workers.timeout_s,
            self.workers.memory_mb,
        )

    async def settled(self) -> None:
        """Wait for start-up work that runs after `start()` (the local backend's session swap)."""
        await self.backend.settled()

    async def wait_ready(self) -> ModelInfo:
        """Wait for the model (requests that arrive during start-up wait here)."""
        await self._ready.wait()
        if self._load_error is not None or self._info is None:
            raise EngineError("the CLIP model failed to load") from self._load_error
        return self._info

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    @property
    def runtime(self) -> str:
        """What runs the visual encoder, e.g. "openvino-bf16" ("remote" for an inference server)."""
        return str(getattr(self.backend, "runtime", "remote"))

    @property
    def load_error(self) -> BaseException | None:
        """Why loading failed, once it has."""
        return self._load_error

    def warming_up(self) -> str | None:
        """While the model is being downloaded: how far along, for users who ask meanwhile."""
        if self._info is not None or self._load_error is not None:
            return None
        return self.backend.warming_up()

    async def problem(self) -> str | None:
        """None while the engine can serve; otherwise why not (for `/readyz`)."""
        if self._load_error is not None:
            return "the CLIP model failed to load"
        if self._info is None:
            return "the CLIP model is loading"
        return await self.backend.problem()

    def observe_batches(self, observer: BatchObserver) -> None:
        """Report every batch the backend runs (metrics)."""
        for batcher in self.backend.batchers:
            batcher.observer = observer

    @property
    def text_lookups(self) -> int:
        return self.texts.lookups

    @property
    def text_cache_misses(self) -> int:
        return self.texts.misses

    # ------------------------------------------------------------------ work
    async def fit_texts(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        """Each text cut to what CLIP's 77-token context holds, and whether it was cut."""
        await self.wait_ready()
        return await self.fitter.fit(texts)

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts` (rows in order), from the cache where possible; concurrent
        requests' misses are batched together, and a text being embedded is not embedded twice."""
        info = await self.wait_ready()
        return await self.texts.get(info.model_id, texts)

    async def embed_image(
        self, data: bytes, *, background: bool = False, requester: Hashable | None = None
    ) -> np.ndarray:
        """Decode, preprocess and embed (batched) one upload, off the event loop."""
        vector, _ = await self.embed_image_and_thumbnail(
            data, thumbnail=False, background=background, requester=requester
        )
        return vector

    async def embed_image_and_thumbnail(
        self, data: bytes, *, thumbnail: bool = True, background: bool = False, requester: Hashable | None = None
    ) -> tuple[np.ndarray, bytes | None]:
        """The upload's embedding and (when asked) a small JPEG of it for the reply, from one decode.

        `background` work (indexing) waits behind every interactive request; one `requester`'s
        uploads (a plain key, e.g. a user id) decode at most `DECODES_PER_USER` at a time.
        """
        embedded = await self.embed_upload(data, thumbnail=thumbnail, background=background, requester=requester)
        return embedded.vector, embedded.thumbnail

    async def embed_upload(
        self, data: bytes, *, thumbnail: bool = True, background: bool = False, requester: Hashable | None = None
    ) -> ImageEmbedding:
        """`embed_image_and_thumbnail`, saying how many frames a clip or an animation was embedded from."""
        await self.wait_ready()
        return await self.backend.embed_image(data, thumbnail=thumbnail, background=background, requester=requester)

    async def aclose(self) -> None:
        """Stop the backend, the fitting thread and the decode workers."""
        await self.backend.aclose()
        self.fitter.close()
        await asyncio.to_thread(self.workers.close)
