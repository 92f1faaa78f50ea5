"""The local backend: Roboflow Inference's `Clip` in this process, its thread, batching and sessions.

On a CPU, uploads are decoded inside their visual batch (see `embed_image`); on an
accelerator, alongside the running batch. Once the bot is quiet after start-up,
better onnxruntime sessions are swapped in under inference's own locks
(`bot.engine.sessions`: no CPU memory arena, no spinning, prompts at their real
length); until then, and on any problem, inference's sessions serve.

Why swap rather than own both sessions from load (measured, `benchmarks/sessions.py`,
BENCHMARKS.md): owning them would be ready sooner and peak lower at start-up, but
inference's `Clip` is the seed's path and stays the reference: every start checks the
tuned sessions against its outputs before they serve, so parity is verified in
production, not assumed; requests are answered as soon as inference has loaded; and once
settled the swap holds less memory than owning did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.config import Settings
from bot.engine import runtimes, sessions, text_runtime
from bot.engine.backend import ImageEmbedding, ModelInfo
from bot.engine.batching import MicroBatcher
from bot.engine.decoding import ImageWorkers
from bot.engine.frames import frame_limits, mean_of_frames
from bot.engine.loading import first_line, load_clip
from bot.engine.model_download import describe_eta, progress_for
from bot.engine.preparation import THUMBNAIL_SIDE, Prepared, PrepareSpec
from bot.engine.preprocess import ClipImageTransform
from bot.errors import EngineError

log = logging.getLogger(__name__)

#: Better sessions (`bot.engine.sessions`) are swapped in once no request has run for this long (it
#: costs a few CPU-seconds; users come first), or after `UPGRADE_MAX_WAIT_S` regardless.
UPGRADE_QUIET_S = 1.0
UPGRADE_MAX_WAIT_S = 30.0
#: Default image batch limits. On a CPU, batches of more than 4 cost more per image
#: (likely: 8 images' activations outgrow the caches): at concurrency 8 on 2 cores,
#: 0.92x the bare model's rate with batches of 8 against 0.98x with batches of 4 (measured).
CPU_BATCH = 4
ACCELERATOR_BATCH = 16


#: On a CPU, how long a visual batch waits for its uploads' decode workers before it runs
#: without the late ones (they rejoin a later batch once decoded). A 640 x 480 photo takes
#: ~5 ms and a 12 MP one ~0.2 s; a decompression bomb would hold everyone's batch for the
#: whole decode budget (`DECODE_TIMEOUT_S`) without this.
IN_BATCH_WAIT_S = 0.2


@dataclass(frozen=True, slots=True)
class _Upload:
    """An image still in bytes, queued for its visual batch (CPU: prepared right before the run)."""

    data: bytes
    thumbnail: bool
    #: Whose upload (`ImageWorkers.submit`'s fairness key); None: nobody's in particular.
    requester: Hashable | None = None


@dataclass(frozen=True, slots=True)
class _Late:
    """An upload whose decode outlasted `IN_BATCH_WAIT_S`: its request awaits it outside the batch."""

    future: Future[Prepared]


@dataclass(frozen=True, slots=True)
class _Embedded:
    vector: np.ndarray
    thumbnail: bytes | None
    frames: int = 1


class LocalBackend:
    """inference's `Clip` in this process: one model thread, two micro-batchers (`Backend`)."""

    def __init__(self, settings: Settings, workers: ImageWorkers, *, tune_sessions: bool = True) -> None:
        """`tune_sessions=False` keeps inference's sessions as they are (one-shot CLI queries)."""
        self.settings = settings
        self._workers = workers
        self._tune_sessions_enabled = tune_sessions
        self._clip_pool = ThreadPoolExecutor(settings.clip_workers, thread_name_prefix="clip")
        #: Set by `aclose`: a first-run download in `_clip_pool` stops (the interpreter joins it at exit).
        self._stop_download = threading.Event()
        self._model: Any = None
        self._tokenize: Any = None  # clip.tokenize, once the model is loaded
        self._image_transform: ClipImageTransform | None = None
        #: On a CPU, images are prepared inside the visual batch (see `embed_image`).
        self._prepare_in_batch = True
        #: Which runtime and precision serve the visual encoder (`bot.engine.runtimes`); fp32 until checked.
        self.runtime_choice = runtimes.RuntimeChoice()
        self._tune_task: asyncio.Task[None] | None = None
        #: The real-length text graph's session, once built and verified (`_tune_sessions`).
        self._text_session: Any = None
        #: How the text encoder runs: "77 tokens" until the real-length graph is in place.
        self.text_mode = "77 tokens"
        self._loaded = False
        self._active = 0  # embedding calls in progress
        self._last_active = 0.0
        window = settings.batch_window_ms / 1000
        self.image_batcher: MicroBatcher[_Upload | Prepared | np.ndarray, _Embedded | _Late] = MicroBatcher(
            self._run_visual,
            executor=self._clip_pool,
            max_batch=settings.max_batch_size or ACCELERATOR_BATCH,  # set for the device at load
            window_s=window,
            name="visual",
        )
        self.text_batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            self._run_textual,
            executor=self._clip_pool,
            max_batch=max(settings.max_batch_size or ACCELERATOR_BATCH, settings.max_labels),
            window_s=window,
            name="textual",
        )

    @property
    def batchers(self) -> Sequence[MicroBatcher]:
        return (self.image_batcher, self.text_batcher)

    async def load(self) -> ModelInfo:
        """Load and warm up the model in the CLIP thread; the loop stays free."""
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(self._clip_pool, load_clip, self.settings, self._stop_download)
        self._model, self._tokenize = loaded.model, loaded.tokenize
        self._image_transform = ClipImageTransform(loaded.model.clip_preprocess)
        self._prepare_in_batch = loaded.on_cpu
        if self.settings.max_batch_size is None:
            self.image_batcher.max_batch = CPU_BATCH if loaded.on_cpu else ACCELERATOR_BATCH
        self._loaded = True
        if loaded.on_cpu and not self._tune_sessions_enabled and self._wants_runtime_choice():
            # A one-shot query that asked for a reduced precision: checked before it answers.
            await self._choose_runtime(self._model.visual_onnx_session)
        if self._tune_sessions_enabled:
            # In the background, once quiet: requests are served meanwhile.
            self._last_active = time.monotonic()  # the quiet period counts from now
            self._tune_task = loop.create_task(self._tune_sessions())
        return loaded.info

    @property
    def runtime(self) -> str:
        """The visual encoder's runtime and precision, e.g. "openvino-bf16"."""
        return self.runtime_choice.name

    def _wants_runtime_choice(self) -> bool:
        """False for today's exact path: onnxruntime fp32 (`CLIP_PRECISION=fp32`)."""
        return not (self.settings.clip_precision == "fp32" and self.settings.clip_runtime != "openvino")

    async def _choose_runtime(self, reference: Any) -> None:
        """Swap in the fastest visual runtime that agrees with `reference` (fp32); on any problem keep fp32."""
        assert self._image_transform is not None
        model = self._model
        try:
            choice = await asyncio.to_thread(
                runtimes.choose_visual_runtime,
                model,
                reference,
                runtime=self.settings.clip_runtime,
                precision=self.settings.clip_precision,
                cache_root=Path(self.settings.model_cache_dir) / "clipbot" / "runtime",
                transform=self._image_transform,
            )
        except Exception as exc:
            log.warning("visual encoder stays on onnxruntime fp32: %s", first_line(exc))
            return
        if choice.session is not None:
            with model._visual_session_lock:
                model.visual_onnx_session = choice.session
        self.runtime_choice = choice

    def warming_up(self) -> str | None:
        """While the model is being downloaded: how far along (e.g. "downloading CLIP: 45%,
        about 2 min left"); None once there is nothing to wait for but a load of a few seconds."""
        if self._loaded:
            return None
        snap = progress_for(self.settings.clip_model_id).snapshot()
        if snap.state not in ("downloading", "verifying"):
            return None
        if snap.state == "verifying":
            return "checking the downloaded CLIP model"
        share = f"{snap.fraction * 100:.0f}%" if snap.fraction is not None else "started"
        eta = describe_eta(snap.eta_s)
        return f"downloading CLIP: {share}" + (f", {eta}" if eta else "")

    async def problem(self) -> str | None:
        return None if self._loaded else "the CLIP model is not loaded"

    async def settled(self) -> None:
        """Wait for start-up work that runs after `load()` (`_tune_sessions`)."""
        if self._tune_task is not None:
            await asyncio.shield(self._tune_task)

    async def _tune_sessions(self) -> None:
        """Swap in better sessions (`bot.engine.sessions`) once the bot is quiet; on any problem keep inference's."""
        await self._quiet_moment()
        model = self._model
        try:
            visual = await asyncio.to_thread(sessions.tuned_visual_session, model)
        except Exception as exc:
            log.warning("visual session left as inference made it: %s", first_line(exc))
        else:
            with model._visual_session_lock:
                model.visual_onnx_session = visual
        if self._prepare_in_batch and self._wants_runtime_choice():  # on a CPU only
            await self._choose_runtime(model.visual_onnx_session)
        if self.settings.text_real_length:
            started = time.perf_counter()
            cache = Path(self.settings.model_cache_dir) / "clipbot" / "text-real-length"
            try:
                text, difference = await asyncio.to_thread(sessions.real_length_text_session, model, cache)
            except Exception as exc:
                log.warning("text encoder stays at 77 tokens per prompt: %s", first_line(exc))
            else:
                self._text_session = text
                with model._textual_session_lock:  # inference's own calls (and memory) move to it too
                    model.textual_onnx_session = text
                self.text_mode = "real length"
                log.info(
                    "text encoder now runs prompts at their real length "
                    "(%.1fs; equal to the 77-token graph within %.1g)",
                    time.perf_counter() - started,
                    difference,
                )
                if self.runtime_choice.candidate != runtimes.REFERENCE:
                    await self._text_reduced(sessions.real_length_text_path(model, cache), text)
        await asyncio.to_thread(sessions.release_free_memory)  # the old sessions' weights

    async def _text_reduced(self, graph: Path, reference: Any) -> None:
        """The real-length text graph on the image encoder's runtime too, once it agrees with `reference` (fp32)."""
        candidate = self.runtime_choice.candidate
        cache = Path(self.settings.model_cache_dir) / "clipbot" / "runtime" / "text"
        try:
            text, lowest = await asyncio.to_thread(
                text_runtime.text_session, candidate, graph, reference, self._tokenize, cache
            )
        except Exception as exc:
            log.warning("text encoder stays on onnxruntime fp32: %s", first_line(exc))
            return
        self._text_session = text
        with self._model._textual_session_lock:
            self._model.textual_onnx_session = text
        self.text_mode = f"real length, {candidate.name}"
        log.info("text encoder runs on %s too (agrees with fp32: min cosine %.5f)", candidate.name, lowest)

    async def _quiet_moment(self) -> None:
        """Return once no embedding call has run for `UPGRADE_QUIET_S` (or `UPGRADE_MAX_WAIT_S` passed)."""
        deadline = time.monotonic() + UPGRADE_MAX_WAIT_S
        while True:
            idle_for = time.monotonic() - self._last_active
            if (not self._active and idle_for >= UPGRADE_QUIET_S) or time.monotonic() >= deadline:
                return
            await asyncio.sleep(max(0.05, UPGRADE_QUIET_S - idle_for))

    @contextlib.contextmanager
    def _activity(self) -> Iterator[None]:
        """Track embedding calls, so background work can wait for a quiet moment."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            self._last_active = time.monotonic()

    async def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        with self._activity():
            return list(await asyncio.gather(*self.text_batcher.submit_all(texts)))

    async def embed_image(
        self, data: bytes, *, thumbnail: bool, background: bool = False, requester: Hashable | None = None
    ) -> ImageEmbedding:
        """The image's embedding and (when asked) a small JPEG of it for the reply, from one decode.

        The upload is decoded in a worker process (`bot.engine.decoding`: time and memory
        budget, crash-proof). On a CPU that happens inside its visual batch, right
        before the model runs (the batch's images in parallel in the workers), so
        preparation never overlaps an onnxruntime run: the model's threads use every
        core, and a decode competing with them stalls the whole run (measured: 5-10%
        less throughput). An upload still decoding after `IN_BATCH_WAIT_S` leaves the
        batch and rejoins a later one once decoded, so a hostile one never holds the
        others. On an accelerator the cores are otherwise idle, so uploads are decoded
        while the previous batch runs.
        """
        with self._activity():
            if self._prepare_in_batch:
                result = await self.image_batcher.submit(_Upload(data, thumbnail, requester), background=background)
                if isinstance(result, _Late):
                    prepared = await asyncio.wrap_future(result.future)
                    result = await self.image_batcher.submit(prepared, background=background)
            else:
                prepared = await asyncio.wrap_future(self._workers.submit(data, self._spec(thumbnail), requester))
                result = await self.image_batcher.submit(prepared, background=background)
            assert isinstance(result, _Embedded)
            return ImageEmbedding(result.vector, result.thumbnail, result.frames)

    def _spec(self, thumbnail: bool) -> PrepareSpec:
        """What a worker makes of an upload: CLIP's crop (the lookup table runs here, exact)."""
        assert self._image_transform is not None
        return PrepareSpec(
            crop=self._image_transform.size,
            max_pixels=self.settings.max_image_pixels,
            thumbnail=THUMBNAIL_SIDE if thumbnail else 0,
            frames=frame_limits(self.settings),
        )

    def _model_input(self, prepared: Prepared) -> np.ndarray:
        """A worker's crop to the model's input (the whole picture when the transform is not fusable);
        a clip's frames, one row each."""
        assert self._image_transform is not None
        if prepared.notes:
            log.debug("image decoder said: %s", "; ".join(prepared.notes))
        transform = self._image_transform
        if transform.size is not None:
            rows = [transform.from_crop(frame) for frame in prepared.arrays()]
        else:
            rows = [transform(Image.fromarray(frame)) for frame in prepared.arrays()]
        return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)

    def _run_visual(self, batch: list[_Upload | Prepared | np.ndarray]) -> list[_Embedded | _Late | Exception]:
        """One visual batch; uploads still in bytes are prepared first in the workers, in parallel
        (see `embed_image_and_thumbnail`); those not done within `IN_BATCH_WAIT_S` come back `_Late`."""
        jobs = {
            index: self._workers.submit(item.data, self._spec(item.thumbnail), item.requester)
            for index, item in enumerate(batch)
            if isinstance(item, _Upload)
        }
        self._wait_for_decodes(list(jobs.values()))
        results: list[_Embedded | _Late | Exception | None] = [None] * len(batch)
        ready: list[tuple[int, np.ndarray, bytes | None]] = []
        for index, item in enumerate(batch):
            thumbnail = None
            try:
                if isinstance(item, _Upload):
                    job = jobs[index]
                    if not job.done():
                        results[index] = _Late(job)
                        continue
                    if job.cancelled():
                        raise EngineError("image decoding was cancelled")
                    item = job.result()
                if isinstance(item, Prepared):
                    thumbnail = item.thumbnail
                    item = self._model_input(item)
            except Exception as exc:  # that request's answer; the rest of the batch goes on
                results[index] = exc
                continue
            ready.append((index, item, thumbnail))
        if ready:
            pixels = ready[0][1] if len(ready) == 1 else np.concatenate([p for _, p, _ in ready], axis=0)
            embeddings = np.asarray(self._model.predict(pixels)[0], dtype=np.float32)
            row = 0
            for index, inputs, thumbnail in ready:  # a clip's frames: several rows, averaged
                count = len(inputs)
                results[index] = _Embedded(mean_of_frames(embeddings[row : row + count]), thumbnail, count)
                row += count
        return results  # type: ignore[return-value]  # every slot is filled

    def _wait_for_decodes(self, jobs: list[Future[Prepared]]) -> None:
        """Up to `IN_BATCH_WAIT_S` for the batch's decodes; an upload held back for its requester's
        turn is waited for only while one in the pool (its requester's, say) may still free it."""
        deadline = time.monotonic() + IN_BATCH_WAIT_S
        while True:
            in_pool = [job for job in jobs if not job.done() and not self._workers.waiting_turn(job)]
            left = deadline - time.monotonic()
            if not in_pool or left <= 0:
                return
            wait_futures(in_pool, timeout=left, return_when=FIRST_COMPLETED)

    def _run_textual(self, texts: list[str]) -> list[np.ndarray]:
        session = self._text_session
        if session is None:
            embeddings = self._model.embed_text(list(texts))
        else:
            from bot.engine.text_graph import trim_tokens  # loaded with the session already

            tokens = self._tokenize(list(texts)).numpy().astype(np.int32)  # what `embed_text` feeds
            embeddings = session.run(None, {session.get_inputs()[0].name: trim_tokens(tokens)})[0]
        return list(np.asarray(embeddings, dtype=np.float32))

    async def aclose(self) -> None:
        """Stop the batchers and the model thread (and a download in progress)."""
        self._stop_download.set()
        if self._tune_task is not None:
            self._tune_task.cancel()
        await self.image_batcher.aclose()
        await self.text_batcher.aclose()
        self._clip_pool.shutdown(wait=False, cancel_futures=True)
