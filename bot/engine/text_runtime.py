"""The text encoder in OpenVINO bf16, where the image encoder already runs there (`bot.engine.runtimes`).

At real length (`bot.engine.text_graph`) a label set is a small graph run, yet bf16
still halves it on a CPU with AMX (BENCHMARKS.md); onnxruntime's int8 does not pay at
these sizes, so it is never tried. No measurement of its own: the visual choice has
already shown that OpenVINO bf16 is the fastest runtime on this CPU and agrees with fp32.
The same agreement check runs here, at every start, before the session serves: the
probe prompts and the rewrite's own probes (empty to nearly 77 tokens), against the
fp32 real-length session; below the bound, the fp32 session stays.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bot.engine import runtimes
from bot.engine.runtime_probes import PROBE_PROMPTS
from bot.engine.text_graph_check import PROBE_TEXTS, trim_tokens

log = logging.getLogger(__name__)


def bf16_text_session(graph: Path, reference: Any, tokenize: Any, cache_dir: Path) -> tuple[Any, float]:
    """OpenVINO bf16 on the real-length text `graph`, and its lowest cosine to `reference` on the probes.

    Raises when it cannot be built or run, or disagrees with `reference` (fp32): the caller keeps fp32.
    """
    session = runtimes.build_session(runtimes.OPENVINO_BF16, graph, cache_dir)
    tokens = tokenize([*PROBE_PROMPTS, *PROBE_TEXTS]).numpy().astype(np.int32)
    name = reference.get_inputs()[0].name
    lowest = 1.0
    # A batch of mixed lengths, and each prompt alone at its own length, as the bot sends them.
    for feed in [tokens, *(tokens[i : i + 1] for i in range(0, len(tokens), 5))]:
        trimmed = trim_tokens(feed)
        want = np.asarray(reference.run(None, {name: trimmed})[0], dtype=np.float32)
        got = session.run(None, {name: trimmed})[0]
        if got.shape != want.shape:
            raise RuntimeError(f"OpenVINO's text encoder returns {got.shape}, not {want.shape}")
        lowest = min(lowest, float(np.min(np.sum(_unit(got) * _unit(want), axis=-1))))
    bound = runtimes.MIN_COSINE["bf16"]
    if not lowest >= bound:  # also catches NaN
        raise RuntimeError(f"OpenVINO bf16 text encoder disagrees with fp32: min cosine {lowest:.5f} < {bound}")
    return session, lowest


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
