"""The CLIP engine: Roboflow Inference's `Clip`, its executor, caches and batching.

Knows nothing of Discord. Every call into the model or into image decoding
runs in a thread pool, so the event loop only ever waits on futures.

Roboflow Inference reads its configuration (cache folder, offline mode, batch
limit) from environment variables once, when it is first imported, so the
engine sets them from `Settings` right before that import, in the loader thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import hashlib
import importlib.metadata
import logging
import os
import shutil
import sys
import time
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.config import Settings
from bot.engine import sessions
from bot.engine.batching import MicroBatcher
from bot.engine.decoding import THUMBNAIL_SIDE, ImageWorkers, Prepared, PrepareSpec, prepare
from bot.engine.model_download import describe_eta, ensure_model_downloaded, progress_for
from bot.engine.preprocess import ClipImageTransform
from bot.errors import BusyError, EngineError, StartupError
from bot.logs import PrintsToLog

log = logging.getLogger(__name__)

MODEL_FILES = ("visual.onnx", "textual.onnx")
#: Better sessions (`bot.engine.sessions`) are swapped in once no request has run for this long (it
#: costs a few CPU-seconds; users come first), or after `UPGRADE_MAX_WAIT_S` regardless.
UPGRADE_QUIET_S = 1.0
UPGRADE_MAX_WAIT_S = 30.0
#: Default image batch limits. On a CPU, batches of more than 4 cost more per image
#: (likely: 8 images' activations outgrow the caches): at concurrency 8 on 2 cores,
#: 0.92x the bare model's rate with batches of 8 against 0.98x with batches of 4 (measured).
CPU_BATCH = 4
ACCELERATOR_BATCH = 16
#: CLIP's context is 77 tokens, two of which are start/end markers.
MAX_TEXT_TOKENS = 75
#: Fitting tokenises this many characters of a text first (growing while they fit in
#: `MAX_TEXT_TOKENS`): BPE is quadratic in a word's length (~0.15 s for 1000 random letters).
FIT_WINDOW = 128
#: Words the fitting tokenizer remembers before it starts afresh (bounded memory).
FIT_TOKENIZER_CACHE = 50_000


def _cut_word(word: str, tokenizer: Any) -> str:
    """The longest start of one word (no spaces; more than 75 tokens) that fits, cut between characters.

    Where the tokenizer's cleaning leaves the word as it is (lower case aside), the cut
    is read off the word's own tokens: the characters the first 75 cover, checked by
    encoding (one token fewer at a time, rarely needed), then lengthened while one more
    character still fits. Otherwise, or if that fails, a binary search on characters.
    """
    from clip.simple_tokenizer import basic_clean, whitespace_clean

    encode: Callable[[str], list[int]] = tokenizer.encode
    lowered = word.lower()
    if len(lowered) == len(word) and whitespace_clean(basic_clean(word)).lower() == lowered:
        data = lowered.encode("utf-8")
        sizes = [len(_token_bytes(token, tokenizer)) for token in encode(word)[:MAX_TEXT_TOKENS]]
        for keep in range(len(sizes), max(len(sizes) - 4, 0), -1):
            # Whole characters only: a token may end inside a character's UTF-8 bytes.
            chars = len(data[: sum(sizes[:keep])].decode("utf-8", errors="ignore"))
            if chars and len(encode(word[:chars])) <= MAX_TEXT_TOKENS:
                # A shorter word may merge differently: a character or two more often still fits.
                for _ in range(8):
                    if chars >= len(word) or len(encode(word[: chars + 1])) > MAX_TEXT_TOKENS:
                        break
                    chars += 1
                return word[:chars]
    low, high = 0, len(word) - 1
    while low < high:
        mid = (low + high + 1) // 2
        if len(encode(word[:mid])) <= MAX_TEXT_TOKENS:
            low = mid
        else:
            high = mid - 1
    return word[:low]


def _token_bytes(token: int, tokenizer: Any) -> bytes:
    """The UTF-8 bytes one BPE token stands for."""
    return bytes(tokenizer.byte_decoder[c] for c in tokenizer.decoder[token].removesuffix("</w>"))


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


@dataclass(frozen=True, slots=True)
class _Late:
    """An upload whose decode outlasted `IN_BATCH_WAIT_S`: its request awaits it outside the batch."""

    future: Future[Prepared]


@dataclass(frozen=True, slots=True)
class _Embedded:
    vector: np.ndarray
    thumbnail: bytes | None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What was loaded and where it runs (shown in replies and logs)."""

    model: str
    model_id: str
    device: str
    providers: tuple[str, ...]
    requested_providers: tuple[str, ...]
    resolution: int
    load_s: float


def configure_inference_env(settings: Settings) -> None:
    """Set the env vars Roboflow Inference reads at import time (process-wide)."""
    env = os.environ
    env["MODEL_CACHE_DIR"] = str(settings.model_cache_dir)
    # Our own batches are bounded by max_batch_size and max_labels; inference's
    # embed_text splits anything larger into chunks of this size.
    env["CLIP_MAX_BATCH_SIZE"] = str(max(32, settings.max_batch_size or 0, settings.max_labels))
    if settings.roboflow_api_key is not None:
        env["ROBOFLOW_API_KEY"] = settings.roboflow_api_key.get_secret_value()
    if settings.clip_model_dir is not None:
        env["OFFLINE_MODE"] = "True"
    # No telemetry, no version check, none of the server's optional endpoints.
    env.setdefault("METRICS_ENABLED", "False")
    env.setdefault("DISABLE_VERSION_CHECK", "True")
    env.setdefault("CORE_MODEL_GAZE_ENABLED", "False")
    # inference reads LOG_LEVEL too (the bot's own setting, same name) and, at INFO, logs
    # through rich onto stdout while it is imported, before `import_clip_class` can reroute
    # it: stdout is for results (`--json`), so inference always starts at WARNING.
    env["LOG_LEVEL"] = "WARNING"
    # Otherwise inference keeps a usage.db queue inside the model cache.
    env.setdefault("TELEMETRY_USE_PERSISTENT_QUEUE", "False")
    already = sys.modules.get("inference.core.env")
    if already is not None and os.path.abspath(getattr(already, "MODEL_CACHE_DIR", "")) != str(
        Path(settings.model_cache_dir).absolute()
    ):
        raise StartupError(
            "Roboflow Inference was already imported with another MODEL_CACHE_DIR; one process serves one cache folder."
        )


def import_clip_class() -> type:
    """Import `inference.models.Clip` quietly and route its logs to ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from inference.models import Clip
    # inference logs through a RichHandler on stdout; stdout is for results
    # (`--json`), so send its records to our stderr handler instead.
    inference_logger = logging.getLogger("inference")
    for handler in list(inference_logger.handlers):
        inference_logger.removeHandler(handler)
    inference_logger.propagate = True
    return Clip


def stage_local_model(model_dir: Path) -> str:
    """Put a folder's `visual.onnx`/`textual.onnx` into inference's own cache.

    Returns the model id to load. The id is derived from the folder's path and
    the files' sizes and times, so an updated folder is staged anew. Files are
    hard-linked when possible (inference refuses symlinks in its cache).
    """
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise StartupError(f"CLIP_MODEL_DIR {folder} is not a folder.")
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise StartupError(
            f"CLIP_MODEL_DIR {folder} has no {' or '.join(missing)} "
            f"(a CLIP model folder holds {' and '.join(MODEL_FILES)})."
        )
    fingerprint = hashlib.sha256(str(folder.resolve()).encode())
    for name in MODEL_FILES:
        st = (folder / name).stat()
        fingerprint.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    model_id = f"clip/local-{fingerprint.hexdigest()[:16]}"

    from inference.core.cache.model_artifacts import get_cache_dir

    target = Path(get_cache_dir(model_id=model_id))
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        source, destination = folder / name, target / name
        if destination.is_file() and destination.stat().st_size == source.stat().st_size:
            continue
        partial = target / f".{name}.partial"
        partial.unlink(missing_ok=True)
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, destination)
    return model_id


def onnxruntime_install_problem() -> str | None:
    """Both onnxruntime and onnxruntime-gpu installed: they overwrite each other."""
    installed = set()
    for name in ("onnxruntime", "onnxruntime-gpu"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            importlib.metadata.distribution(name)
            installed.add(name)
    if len(installed) == 2:
        return (
            "both onnxruntime and onnxruntime-gpu are installed; they share files and "
            "the GPU build may be silently replaced by the CPU one. "
            "Run scripts/install.sh --gpu (see README, GPU set-up)."
        )
    return None


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line (or its type's name), for one-line log and error messages."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def device_name(providers: Sequence[str]) -> str:
    """A short device name for the provider onnxruntime actually chose."""
    first = providers[0] if providers else "CPUExecutionProvider"
    return {
        "CUDAExecutionProvider": "GPU (CUDA)",
        "TensorrtExecutionProvider": "GPU (TensorRT)",
        "ROCMExecutionProvider": "GPU (ROCm)",
        "CoreMLExecutionProvider": "CoreML",
        "OpenVINOExecutionProvider": "OpenVINO",
    }.get(first, "CPU")


class ClipEngine:
    """Owns the model, its executors, the text cache and the micro-batchers."""

    def __init__(self, settings: Settings, *, tune_sessions: bool = True) -> None:
        """`tune_sessions=False` keeps inference's sessions as they are (one-shot CLI queries)."""
        self.settings = settings
        self._tune_sessions_enabled = tune_sessions
        self._clip_pool = ThreadPoolExecutor(settings.clip_workers, thread_name_prefix="clip")
        #: Uploads are decoded in these processes, within a time and memory budget (`bot.engine.decoding`).
        self._workers = ImageWorkers(
            settings.decode_workers, timeout_s=settings.decode_timeout_s, memory_mb=settings.decode_memory_mb
        )
        #: Tokenising to fit CLIP's context (`fit_texts`): one thread, so its tokenizer needs no lock.
        self._fit_pool = ThreadPoolExecutor(1, thread_name_prefix="fit")
        self._fit_tokenizer: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._tokenize: Any = None  # clip.tokenize, once the model is loaded
        self._image_transform: ClipImageTransform | None = None
        #: On a CPU, images are prepared inside the visual batch (see `embed_image_and_thumbnail`).
        self._prepare_in_batch = True
        self._info: ModelInfo | None = None
        self._load_error: BaseException | None = None
        self._ready = asyncio.Event()
        self._load_task: asyncio.Task[ModelInfo] | None = None
        self._tune_task: asyncio.Task[None] | None = None
        #: The real-length text graph's session, once built and verified (`_tune_sessions`).
        self._text_session: Any = None
        #: How the text encoder runs: "77 tokens" until the real-length graph is in place.
        self.text_mode = "77 tokens"
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_inflight: dict[str, asyncio.Future[np.ndarray]] = {}
        self._fitted: OrderedDict[str, tuple[str, bool]] = OrderedDict()
        self._pending = 0
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
        #: Texts asked for, and those sent to the text encoder (the rest came from the
        #: cache or an in-flight twin).
        self.text_lookups = 0
        self.text_cache_misses = 0

    # ----------------------------------------------------------------- loading
    async def start(self) -> ModelInfo:
        """Load and warm up the model in the CLIP thread; the loop stays free."""
        if self._load_task is None:
            self._load_task = asyncio.get_running_loop().create_task(self._load())
        return await asyncio.shield(self._load_task)

    async def _load(self) -> ModelInfo:
        loop = asyncio.get_running_loop()
        # The decode workers start alongside the model (and count in start-up).
        workers = loop.run_in_executor(None, self._start_workers)
        try:
            self._info = await loop.run_in_executor(self._clip_pool, self._load_blocking)
            await workers
        except BaseException as exc:
            self._load_error = exc
            await asyncio.gather(workers, return_exceptions=True)
            raise
        finally:
            self._ready.set()
        if self._tune_sessions_enabled:
            # In the background, once quiet: requests are served meanwhile.
            self._last_active = time.monotonic()  # the quiet period counts from now
            self._tune_task = loop.create_task(self._tune_sessions())
        return self._info

    async def settled(self) -> None:
        """Wait for start-up work that runs after `start()` (`_tune_sessions`)."""
        if self._tune_task is not None:
            await asyncio.shield(self._tune_task)

    async def _tune_sessions(self) -> None:
        """Swap in better sessions (`bot.engine.sessions`) once the bot is quiet; on any problem keep inference's."""
        await self._quiet_moment()
        model = self._model
        try:
            visual = await asyncio.to_thread(sessions.tuned_visual_session, model)
        except Exception as exc:
            log.warning("visual session left as inference made it: %s", _first_line(exc))
        else:
            with model._visual_session_lock:
                model.visual_onnx_session = visual
        if self.settings.text_real_length:
            started = time.perf_counter()
            cache = Path(self.settings.model_cache_dir) / "clipbot" / "text-real-length"
            try:
                text, difference = await asyncio.to_thread(sessions.real_length_text_session, model, cache)
            except Exception as exc:
                log.warning("text encoder stays at 77 tokens per prompt: %s", _first_line(exc))
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
        await asyncio.to_thread(sessions.release_free_memory)  # the old sessions' weights

    async def _quiet_moment(self) -> None:
        """Return once no embedding call has run for `UPGRADE_QUIET_S` (or `UPGRADE_MAX_WAIT_S` passed)."""
        deadline = time.monotonic() + UPGRADE_MAX_WAIT_S
        while True:
            idle_for = time.monotonic() - self._last_active
            if (not self._active and idle_for >= UPGRADE_QUIET_S) or time.monotonic() >= deadline:
                return
            await asyncio.sleep(max(0.05, UPGRADE_QUIET_S - idle_for))

    async def wait_ready(self) -> ModelInfo:
        """Wait for the model (requests that arrive during start-up wait here)."""
        await self._ready.wait()
        if self._load_error is not None or self._info is None:
            raise EngineError("the CLIP model failed to load") from self._load_error
        return self._info

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def warming_up(self) -> str | None:
        """While the model is being downloaded: how far along, for users who ask meanwhile
        (e.g. "downloading CLIP: 45%, about 2 min left"); None once there is nothing to wait for
        but a load of a few seconds (requests then simply wait for it)."""
        if self._info is not None or self._load_error is not None:
            return None
        snap = progress_for(self.settings.clip_model_id).snapshot()
        if snap.state not in ("downloading", "verifying"):
            return None
        if snap.state == "verifying":
            return "checking the downloaded CLIP model"
        share = f"{snap.fraction * 100:.0f}%" if snap.fraction is not None else "started"
        eta = describe_eta(snap.eta_s)
        return f"downloading CLIP: {share}" + (f", {eta}" if eta else "")

    @property
    def load_error(self) -> BaseException | None:
        """Why loading failed, once it has."""
        return self._load_error

    def _start_workers(self) -> None:
        """Start the decode worker processes and wait for their first answers (pre-warmed)."""
        started = time.perf_counter()
        self._workers.start()
        self._workers.warm_up(
            PrepareSpec(crop=224, max_pixels=self.settings.max_image_pixels, thumbnail=THUMBNAIL_SIDE)
        )
        log.info(
            "%d image decode worker(s) ready in %.2fs (budget per image: %g s, %d MB)",
            self._workers.workers,
            time.perf_counter() - started,
            self._workers.timeout_s,
            self._workers.memory_mb,
        )

    def _load_blocking(self) -> ModelInfo:
        started = time.perf_counter()
        settings = self.settings
        configure_inference_env(settings)
        problem = onnxruntime_install_problem()
        if problem:
            log.warning("onnxruntime: %s", problem)
        clip_class = import_clip_class()
        # torch only runs inference's preprocessing here (tiny tensor ops). Its
        # default thread pool spins against onnxruntime's for the same cores and
        # made ToTensor+Normalize take ~40 ms instead of ~0.3 ms on 2 cores.
        import torch

        torch.set_num_threads(1)
        model_id = settings.clip_model_id
        if settings.clip_model_dir is not None:
            model_id = stage_local_model(settings.clip_model_dir)
        else:  # first run: download with progress and resume, before inference's silent one
            ensure_model_downloaded(settings, model_id)
        requested = tuple(settings.clip_execution_providers)
        try:
            # inference print()s progress; stdout is reserved for results.
            with warnings.catch_warnings(), contextlib.redirect_stdout(PrintsToLog(log)):
                warnings.simplefilter("ignore")
                model = clip_class(model_id=model_id, onnxruntime_execution_providers=list(requested))
        except Exception as exc:
            raise StartupError(self._explain_load_failure(exc)) from exc
        import clip as clip_package  # rf-clip, inference's own tokenizer

        self._tokenizer = clip_package.clip._tokenizer
        self._tokenize = clip_package.tokenize
        self._image_transform = ClipImageTransform(model.clip_preprocess)
        self._model = model
        resolution = int(model.resolution)
        # Warm-up: first runs allocate arenas and pick kernels.
        model.predict(np.zeros((1, 3, resolution, resolution), dtype=np.float32))
        model.embed_text(["warm-up"])
        visual = tuple(model.visual_onnx_session.get_providers())
        textual = tuple(model.textual_onnx_session.get_providers())
        info = ModelInfo(
            model=settings.model_label,
            model_id=model_id,
            device=device_name(visual),
            providers=visual,
            requested_providers=requested,
            resolution=resolution,
            load_s=time.perf_counter() - started,
        )
        log.info(
            "CLIP %s ready in %.1fs on %s (visual session: %s; textual session: %s)",
            info.model,
            info.load_s,
            info.device,
            ", ".join(visual),
            ", ".join(textual),
        )
        self._log_provider_fallback(requested, visual)
        self._prepare_in_batch = on_cpu = visual[0] == "CPUExecutionProvider"
        if settings.max_batch_size is None:
            self.image_batcher.max_batch = CPU_BATCH if on_cpu else ACCELERATOR_BATCH
        # inference, torch and discord.py leave ~500k long-lived objects; a full
        # collection walks them all (~180 ms on 2 cores) holding the GIL, which
        # stalls the event loop. Freeze them out of the collector's reach.
        gc.collect()
        gc.freeze()
        return info

    @staticmethod
    def _log_provider_fallback(requested: Sequence[str], actual: Sequence[str]) -> None:
        """Make a requested accelerator that is not in use impossible to miss."""
        import onnxruntime

        available = set(onnxruntime.get_available_providers())
        for provider in requested:
            if provider == "CPUExecutionProvider" or provider in actual:
                continue
            if provider in available:
                log.warning(
                    "%s is installed and was requested, but the session fell back to %s "
                    "(driver or CUDA/cuDNN libraries missing?)",
                    provider,
                    actual[0],
                )
            elif provider == "CUDAExecutionProvider":
                log.info(
                    "CUDAExecutionProvider requested, but this onnxruntime build has none "
                    "(installed: %s); running on %s",
                    ", ".join(sorted(available)),
                    actual[0],
                )

    def _explain_load_failure(self, exc: Exception) -> str:
        settings = self.settings
        detail = _first_line(exc, limit=10_000)
        for secret in settings.secrets():
            detail = detail.replace(secret, "[redacted]")
        if "OFFLINE_MODE" in detail or "missing from the local cache" in detail:
            return (
                f"CLIP model {settings.clip_model_id} is not in MODEL_CACHE_DIR "
                f"({settings.model_cache_dir}) and offline mode forbids downloading it; "
                "run once online, or set CLIP_MODEL_DIR to a folder with visual.onnx and textual.onnx."
            )
        return (
            f"Could not load CLIP model {settings.model_label}: {type(exc).__name__}: {detail[:300]}. "
            "If this machine is offline, set CLIP_MODEL_DIR to a folder with visual.onnx and textual.onnx."
        )

    # ------------------------------------------------------------------ work
    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[int]:
        """Reserve a place for one request; yields how many are ahead of it.

        Raises `BusyError` at once when `max_pending` requests are in progress,
        so nobody waits forever behind a long queue.
        """
        if self._pending >= self.settings.max_pending:
            raise BusyError(
                f"I'm busy right now ({self._pending} requests in progress). Please try again in a few seconds."
            )
        ahead = self._pending
        self._pending += 1
        try:
            yield ahead
        finally:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Requests admitted and not yet finished (the queue depth)."""
        return self._pending

    async def fit_texts(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        """Each text cut to what CLIP's 77-token context holds, and whether it was cut.

        Waits for the model (the tokenizer comes with it). Texts fitted before come from a
        cache, here on the loop (microseconds); the others are tokenised in the fitting
        thread, since a long label costs milliseconds of BPE.
        """
        await self.wait_ready()
        found: dict[str, tuple[str, bool]] = {}
        for text in texts:
            fitted = self._fitted.get(text)
            if fitted is not None:
                self._fitted.move_to_end(text)
                found[text] = fitted
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._fit_pool, self._fit_many, missing)
            for text, fitted in zip(missing, results, strict=True):
                found[text] = self._fitted[text] = fitted
            while len(self._fitted) > max(self.settings.text_cache_size, 64):
                self._fitted.popitem(last=False)
        return [found[text] for text in texts]

    def _fit_many(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        """`_fit_text` for each, in the fitting thread, with its own tokenizer.

        The tokenizer is a copy of inference's that shares the vocabulary but not the
        per-word cache, which grows with every new word: this one is only used in this
        one thread, so it can be emptied safely when it grows large.
        """
        if self._fit_tokenizer is None:
            self._fit_tokenizer = copy.copy(self._tokenizer)
            self._fit_tokenizer.cache = dict(self._tokenizer.cache)
        tokenizer = self._fit_tokenizer
        if len(tokenizer.cache) > FIT_TOKENIZER_CACHE:
            tokenizer.cache = {key: value for key, value in tokenizer.cache.items() if key.startswith("<|")}
        return [self._fit_text(text, tokenizer) for text in texts]

    def _fit_text(self, text: str, tokenizer: Any = None) -> tuple[str, bool]:
        """The longest start of `text` that fits in 75 tokens: whole words, else characters of the first.

        BPE only ever sees a bounded start of the text: `FIT_WINDOW` characters, grown (at
        most doubled) while they still fit. Once a window holds more than 75 tokens, the
        answer lies inside it, so a 1000-character word costs about what ~150 characters do.
        """
        tokenizer = tokenizer or self._tokenizer
        encode: Callable[[str], list[int]] = tokenizer.encode
        window = FIT_WINDOW
        while True:
            head = text[:window]
            count = len(encode(head))
            if count > MAX_TEXT_TOKENS:
                break
            if window >= len(text):
                return text, False
            # Grow to a little past where the 76th token should end, by the rate so far.
            window = min(2 * window, max(window + 16, window * (MAX_TEXT_TOKENS + 8) // max(count, 1)))
        # The last word of `head` may be cut short, or `head` is all of `text`: never take it whole.
        words = head.split(" ")
        low, high = 0, len(words) - 1  # longest word prefix that fits: binary search
        while low < high:
            mid = (low + high + 1) // 2
            if len(encode(" ".join(words[:mid]))) <= MAX_TEXT_TOKENS:
                low = mid
            else:
                high = mid - 1
        if low:
            return " ".join(words[:low]), True
        return _cut_word(words[0], tokenizer), True

    @contextlib.contextmanager
    def _activity(self) -> Iterator[None]:
        """Track embedding calls, so background work can wait for a quiet moment."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            self._last_active = time.monotonic()

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts` (rows in order), from the cache where possible.

        Misses from concurrent requests are batched together; a text already
        being embedded for someone else is awaited, not embedded twice.
        """
        self.text_lookups += len(texts)
        with self._activity():
            return await self._embed_texts(texts)

    async def _embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        await self.wait_ready()
        prefix = f"{self._info.model_id if self._info else ''}\x00"
        keys = [prefix + text for text in texts]
        new = [key for key in dict.fromkeys(keys) if key not in self._text_cache and key not in self._text_inflight]
        if new:  # in one submission, so that this request's new texts share a batch
            self.text_cache_misses += len(new)
            submitted = self.text_batcher.submit_all([key.removeprefix(prefix) for key in new])
            for key, future in zip(new, submitted, strict=True):
                self._text_inflight[key] = future
                future.add_done_callback(lambda fut, key=key: self._remember_text(key, fut))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[np.ndarray]] = []
        for key in keys:
            cached = self._text_cache.get(key)
            if cached is None:
                futures.append(self._text_inflight[key])
                continue
            self._text_cache.move_to_end(key)
            done: asyncio.Future[np.ndarray] = loop.create_future()
            done.set_result(cached)
            futures.append(done)
        rows = await asyncio.gather(*(asyncio.shield(f) for f in futures))
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _remember_text(self, key: str, future: asyncio.Future[np.ndarray]) -> None:
        self._text_inflight.pop(key, None)
        if future.cancelled() or future.exception() is not None:
            return
        if self.settings.text_cache_size <= 0:
            return
        self._text_cache[key] = future.result()
        self._text_cache.move_to_end(key)
        while len(self._text_cache) > self.settings.text_cache_size:
            self._text_cache.popitem(last=False)

    async def embed_image(self, data: bytes) -> np.ndarray:
        """Decode, preprocess and embed (batched) one image, off the event loop."""
        vector, _ = await self.embed_image_and_thumbnail(data, thumbnail=False)
        return vector

    async def embed_image_and_thumbnail(
        self, data: bytes, *, thumbnail: bool = True
    ) -> tuple[np.ndarray, bytes | None]:
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
            await self.wait_ready()
            if self._prepare_in_batch:
                result = await self.image_batcher.submit(_Upload(data, thumbnail))
                if isinstance(result, _Late):
                    result = await self.image_batcher.submit(await asyncio.wrap_future(result.future))
            else:
                prepared = await asyncio.wrap_future(self._workers.submit(data, self._spec(thumbnail)))
                result = await self.image_batcher.submit(prepared)
            assert isinstance(result, _Embedded)
            return result.vector, result.thumbnail

    def _spec(self, thumbnail: bool) -> PrepareSpec:
        """What a worker makes of an upload: CLIP's crop (the lookup table runs here, exact)."""
        assert self._image_transform is not None
        return PrepareSpec(
            crop=self._image_transform.size,
            max_pixels=self.settings.max_image_pixels,
            thumbnail=THUMBNAIL_SIDE if thumbnail else 0,
        )

    def _model_input(self, prepared: Prepared) -> np.ndarray:
        """A worker's crop to the model's input (the whole picture when the transform is not fusable)."""
        assert self._image_transform is not None
        if prepared.notes:
            log.debug("image decoder said: %s", "; ".join(prepared.notes))
        if self._image_transform.size is not None:
            return self._image_transform.from_crop(prepared.array())
        return self._image_transform(Image.fromarray(prepared.array()))

    def _prepare_image(self, data: bytes) -> np.ndarray:
        """Bytes to the model's input in this process, without a worker (the bench's comparison)."""
        return self._model_input(prepare(data, self._spec(False)))

    def _run_visual(self, batch: list[_Upload | Prepared | np.ndarray]) -> list[_Embedded | _Late | Exception]:
        """One visual batch; uploads still in bytes are prepared first in the workers, in parallel
        (see `embed_image_and_thumbnail`); those not done within `IN_BATCH_WAIT_S` come back `_Late`."""
        jobs = {
            index: self._workers.submit(item.data, self._spec(item.thumbnail))
            for index, item in enumerate(batch)
            if isinstance(item, _Upload)
        }
        if jobs:
            wait_futures(jobs.values(), timeout=IN_BATCH_WAIT_S)
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
            for (index, _, thumbnail), vector in zip(ready, embeddings, strict=True):
                results[index] = _Embedded(vector, thumbnail)
        return results  # type: ignore[return-value]  # every slot is filled

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
        """Stop the batchers, the thread pool and the decode workers."""
        if self._tune_task is not None:
            self._tune_task.cancel()
        await self.image_batcher.aclose()
        await self.text_batcher.aclose()
        self._clip_pool.shutdown(wait=False, cancel_futures=True)
        self._fit_pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._workers.close)
