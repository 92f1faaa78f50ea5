"""Better onnxruntime sessions for a loaded inference `Clip`, built after start-up.

inference creates both sessions with onnxruntime's defaults and the text graph
at a fixed 77 tokens. The engine swaps in, once the bot is quiet:

- the visual graph in a session whose worker threads stop spinning as soon as
  a run ends: otherwise they busy-wait for a while and take the cores from the
  image preparation that runs between batches (4 photos: 21 ms -> 15 ms,
  measured on 2 cores), and without a memory arena (`session_options`);
- the text graph rewritten to take prompts at their real length
  (`bot.engine.text_graph`), cached on disk and verified against inference's own
  session before use.

Each function returns a new session or raises; the engine keeps the old one then.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def session_options() -> Any:
    """onnxruntime's defaults, except two.

    - Idle worker threads stop spinning as soon as a run ends.
    - No CPU memory arena: the arena keeps the largest batch's activations
      (hundreds of MB) for good, and runs cost the same without it (measured
      on ViT-B/16, batches of 1 and 4).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.enable_cpu_mem_arena = False
    return options


def tuned_visual_session(model: Any) -> Any:
    """`visual.onnx` again, with `session_options()`; checked against inference's session."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        model.cache_file("visual.onnx"), sess_options=session_options(), providers=model.onnxruntime_execution_providers
    )
    probe = np.random.default_rng(0).standard_normal((1, 3, model.resolution, model.resolution)).astype(np.float32)
    name = session.get_inputs()[0].name
    want = model.visual_onnx_session.run(None, {name: probe})[0]
    got = session.run(None, {name: probe})[0]
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max())):
        raise RuntimeError("the re-created visual session does not give inference's results")
    return session


def real_length_text_session(model: Any, cache_dir: Path) -> tuple[Any, float]:
    """The text graph rewritten for real-length prompts, and its largest difference from the original.

    The rewrite is cached in `cache_dir`, one file per source file, named after the
    source's path and its size, time and the rewrite's version. A cached file that
    fails to load or verify is rebuilt once; a rebuild removes the source's older files.
    """
    import onnxruntime

    from bot.engine import text_graph

    source = Path(model.cache_file("textual.onnx"))
    destination = real_length_text_path(model, cache_dir)
    source_key = destination.name.partition("-")[0]

    def load_verified() -> tuple[Any, float]:
        session = onnxruntime.InferenceSession(
            str(destination), sess_options=session_options(), providers=model.onnxruntime_execution_providers
        )
        return session, text_graph.verify_rewrite(model.textual_onnx_session, session)

    if destination.is_file():
        try:
            return load_verified()
        except Exception as exc:  # a damaged or stale cached file: rebuild it once
            log.info("rebuilding the cached real-length text graph (%s)", type(exc).__name__)
            destination.unlink(missing_ok=True)
    text_graph.build_dynamic_text_model(source, destination, verify=False)
    for stale in cache_dir.glob(f"{source_key}-*.onnx"):  # the same model's older rewrites
        if stale != destination:
            stale.unlink(missing_ok=True)
    return load_verified()


def real_length_text_path(model: Any, cache_dir: Path) -> Path:
    """Where the real-length rewrite of `model`'s text graph is cached: named after the source's
    path, and its size, time and the rewrite's version."""
    from bot.engine import text_graph

    source = Path(model.cache_file("textual.onnx"))
    stat = source.stat()
    source_key = _short_hash(str(source.resolve()))
    version_key = _short_hash(f"{stat.st_size}:{stat.st_mtime_ns}:{text_graph.REWRITE_VERSION}")
    return cache_dir / f"{source_key}-{version_key}.onnx"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it otherwise); no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
