"""The text encoder on the image encoder's reduced precision (`bot.engine.runtimes`), where it agrees.

At real length (`bot.engine.text_graph`) a label set is a small graph run, yet OpenVINO
bf16 and onnxruntime int8 still take less than half of fp32's time on it (BENCHMARKS.md).
No measurement of its own: the visual choice has already shown which runtime is fastest
on this CPU. The agreement check runs here too, at every start, before the session
serves: the probe prompts and the rewrite's own probes (empty to nearly 77 tokens),
against the fp32 real-length session, to the same bound as the image encoder; below it,
the fp32 session stays.
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


def text_session(
    candidate: runtimes.Candidate, graph: Path, reference: Any, tokenize: Any, cache_dir: Path
) -> tuple[Any, float]:
    """`candidate` on the real-length text `graph`, and its lowest cosine to `reference` on the probes.

    Raises when it cannot be built or run, or disagrees with `reference` (fp32): the caller keeps fp32.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    session = runtimes.build_session(candidate, graph, cache_dir)
    tokens = tokenize([*PROBE_PROMPTS, *PROBE_TEXTS]).numpy().astype(np.int32)
    name = reference.get_inputs()[0].name
    lowest = 1.0
    # A batch of mixed lengths, and each prompt alone at its own length, as the bot sends them.
    for feed in [tokens, *(tokens[i : i + 1] for i in range(0, len(tokens), 5))]:
        trimmed = trim_tokens(feed)
        want = np.asarray(reference.run(None, {name: trimmed})[0], dtype=np.float32)
        got = session.run(None, {name: trimmed})[0]
        if got.shape != want.shape:
            raise RuntimeError(f"{candidate.name} text encoder returns {got.shape}, not {want.shape}")
        lowest = min(lowest, float(np.min(np.sum(_unit(got) * _unit(want), axis=-1))))
    bound = runtimes.MIN_COSINE[candidate.precision]
    if not lowest >= bound:  # also catches NaN
        raise RuntimeError(f"{candidate.name} text encoder disagrees with fp32: min cosine {lowest:.5f} < {bound}")
    return session, lowest


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
