"""Starting Roboflow Inference's `Clip` in this process: environment, cache staging, load, warm-up.

Roboflow Inference reads its configuration (cache folder, offline mode, batch
limit) from environment variables once, when it is first imported, so these are
set from `Settings` right before that import, in the loader thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import importlib.metadata
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from bot.engine.backend import ModelInfo
from bot.engine.model_download import ensure_model_downloaded
from bot.errors import ConfigError, StartupError, first_line, redact
from bot.logs import PrintsToLog

log = logging.getLogger(__name__)

MODEL_FILES = ("visual.onnx", "textual.onnx")


@dataclass(frozen=True, slots=True)
class LoadedClip:
    """inference's `Clip`, loaded and warmed up, and what the backend needs beside it."""

    model: Any
    info: ModelInfo
    #: `clip.tokenize` (rf-clip, inference's own), for the real-length text session.
    tokenize: Any
    on_cpu: bool


#: inference_models._offline's marker for the offline decision made at process start.
OFFLINE_LATCH_ENV = "_ROBOFLOW_INFERENCE_OFFLINE_MODE_AT_PROCESS_START"


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
    if "inference_models" not in sys.modules:
        latch_offline_mode(env)
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


def latch_offline_mode(env: MutableMapping[str, str]) -> None:
    """Decide OFFLINE_MODE for this process as inference would, and hand inference the decision.

    inference latches OFFLINE_MODE once per process and passes the latch on to child
    processes in `OFFLINE_LATCH_ENV`, where it beats OFFLINE_MODE: a latch inherited from
    whatever started us (a supervisor, a test run) is not ours, so it is replaced. Deciding
    here also keeps inference from deciding while it is imported in the loader's thread: it then
    walks `sys.modules`, which the decode workers' start-up changes at the same time.
    """
    from dotenv import dotenv_values

    # inference's own order: the variable, then the project's .env, else online.
    requested = env["OFFLINE_MODE"] if "OFFLINE_MODE" in env else dotenv_values(".env").get("OFFLINE_MODE", "false")
    decided = {"true": "True", "false": "False"}.get(requested.lower()) if isinstance(requested, str) else None
    if decided is None:
        env.pop(OFFLINE_LATCH_ENV, None)  # not true or false: inference refuses it in its own words
    else:
        env[OFFLINE_LATCH_ENV] = decided


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
        raise ConfigError(f"CLIP_MODEL_DIR {folder} is not a folder.")
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
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


def load_clip(settings: Settings, stop: threading.Event | None = None) -> LoadedClip:
    """Load the configured CLIP (downloading it on first run) and warm it up. Blocking: run it in a thread.

    `stop`: set on shutdown, it ends a first-run download early (its partial files kept)."""
    started = time.perf_counter()
    configure_inference_env(settings)
    problem = onnxruntime_install_problem()
    if problem:
        log.warning("onnxruntime: %s", problem)
    preload_cuda_libraries(settings.clip_execution_providers)
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
        ensure_model_downloaded(settings, model_id, stop=stop)
    requested = tuple(settings.clip_execution_providers)
    try:
        # inference print()s progress; stdout is reserved for results.
        with warnings.catch_warnings(), contextlib.redirect_stdout(PrintsToLog(log)):
            warnings.simplefilter("ignore")
            model = clip_class(model_id=model_id, onnxruntime_execution_providers=list(requested))
    except Exception as exc:
        message = explain_load_failure(settings, exc)
        offline = message.startswith(f"CLIP model {settings.clip_model_id} is not in MODEL_CACHE_DIR")
        raise (ConfigError if offline else StartupError)(message) from exc
    import clip as clip_package  # rf-clip, inference's own tokenizer

    from bot.engine.tokenizer import install_fair_tokenizer

    install_fair_tokenizer()  # the same tokens; the loop keeps its turns while texts are tokenised
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
    log_provider_fallback(requested, visual)
    # inference, torch and discord.py leave ~500k long-lived objects; a full
    # collection walks them all (~180 ms on 2 cores) holding the GIL, which
    # stalls the event loop. Freeze them out of the collector's reach.
    gc.collect()
    gc.freeze()
    return LoadedClip(model, info, clip_package.tokenize, on_cpu=visual[0] == "CPUExecutionProvider")


def preload_cuda_libraries(requested: Sequence[str]) -> None:
    """Load CUDA and cuDNN from their pip packages (nvidia-*-cu12) before the first session.

    onnxruntime-gpu does not look in site-packages by itself: without this a host (or image) needs
    a system-wide CUDA toolkit. Skipping or failing here is not fatal: the session then falls back
    to the CPU, and log_provider_fallback says so.
    """
    if "CUDAExecutionProvider" not in requested:
        return
    import onnxruntime

    preload = getattr(onnxruntime, "preload_dlls", None)  # onnxruntime-gpu >= 1.21 only
    if preload is None or "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return
    if sys.platform == "linux":
        # Without the driver's libcuda, CUDA cannot run; and with CUDA preloaded, onnxruntime
        # 1.21 then crashes creating the CUDA provider instead of falling back to the CPU.
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            log.debug("no NVIDIA driver (libcuda.so.1): CUDA libraries not preloaded")
            return
    try:
        with contextlib.redirect_stdout(PrintsToLog(log)):
            preload()  # a CUDA build of torch first, then the nvidia-* packages, then the system
    except Exception as exc:
        log.debug("onnxruntime.preload_dlls failed: %s", first_line(exc))


def log_provider_fallback(requested: Sequence[str], actual: Sequence[str]) -> None:
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
                "CUDAExecutionProvider requested, but this onnxruntime build has none (installed: %s); running on %s",
                ", ".join(sorted(available)),
                actual[0],
            )


def explain_load_failure(settings: Settings, exc: Exception) -> str:
    """One line on why the model did not load (secrets redacted)."""
    detail = redact(first_line(exc, limit=10_000), settings.secrets())
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
