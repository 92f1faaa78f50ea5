"""Checking a rewritten CLIP text graph against the original, and trimming token ids for it.

A rewrite (`bot.engine.text_graph`) is only used once it gives the original's embeddings,
to `DEFAULT_TOLERANCE`, on probes from the empty prompt to nearly the full context, in a
batch and alone, trimmed and at full length (`verify_rewrite`).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from bot.errors import first_line

#: CLIP's text context, in tokens (start and end included).
CONTEXT_LENGTH = 77
#: Default bound for :func:`verify_rewrite`: float reordering moves outputs ~1e-7 relative,
#: a wrong rewrite (mask or positions cut wrongly) moves them by ~1.
DEFAULT_TOLERANCE = 1e-4

PROBE_TEXTS: tuple[str, ...] = (
    "a photo of a dog",
    "dog",
    "",
    "a bloody mary cocktail with a celery stick on a wooden bar table",
    # 72 tokens (74 with start/end): near the 75-token limit, yet the batch is still trimmed.
    " ".join(["a very long and detailed caption about a small red bicycle leaning on a wall"] * 4)
    + " near the old harbour at sunset with two dogs and a cat",
    "a photo of a cat.",
)


class UnsupportedTextGraph(Exception):
    """The text graph cannot be made length-dynamic, or the rewrite did not verify."""


def trim_tokens(tokens: np.ndarray) -> np.ndarray:
    """``[N, 77]`` ids from ``clip.tokenize`` cut after the batch's last end-of-text token.

    Each row's EOT is its largest id, so ``argmax + 1`` is its real length; the result
    keeps at least one column and is contiguous (what onnxruntime wants).
    """
    if tokens.ndim != 2:
        raise ValueError(f"expected [batch, length] token ids, got shape {tokens.shape}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        return tokens
    length = int(tokens.argmax(axis=1).max()) + 1
    return np.ascontiguousarray(tokens[:, :length])


def probe_tokens(context_length: int = CONTEXT_LENGTH) -> np.ndarray:
    """int32 ids of :data:`PROBE_TEXTS`: lengths 2 (empty) to ~75 tokens, for verification."""
    from clip.clip import tokenize  # imports torch; only verification needs it

    return tokenize(list(PROBE_TEXTS), context_length=context_length, truncate=True).numpy().astype(np.int32)


def _run(session: ort.InferenceSession, tokens: np.ndarray) -> np.ndarray:
    """The first output for ``tokens``, cast to the graph's integer input type."""
    feed = session.get_inputs()[0]
    dtype = np.int64 if feed.type == "tensor(int64)" else np.int32
    return np.asarray(session.run(None, {feed.name: tokens.astype(dtype, copy=False)})[0])


def max_difference(original: ort.InferenceSession, rewritten: ort.InferenceSession, tokens: np.ndarray) -> float:
    """Largest difference of ``rewritten`` (trimmed and full ids) from ``original`` (full ids).

    Relative to the largest magnitude in the original's output, since raw CLIP embeddings
    are not normalised and their scale depends on the weights; ``inf`` on a shape mismatch.
    """
    want = _run(original, tokens)
    scale = max(float(np.abs(want).max()), float(np.finfo(np.float32).tiny))
    worst = 0.0
    for feed in (trim_tokens(tokens), tokens):
        got = _run(rewritten, feed)
        if got.shape != want.shape or got.dtype != want.dtype:
            return float("inf")
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()) / scale)
    return worst


def verify_rewrite(
    original: ort.InferenceSession,
    rewritten: ort.InferenceSession,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    tokens: np.ndarray | None = None,
) -> float:
    """Check the rewrite on the probe batch and on each probe alone; returns the worst difference.

    The original runs once, on the batch at full length (its rows do not depend on each
    other); the rewritten graph runs on the batch trimmed and at full length, and on each
    probe alone at its own short length, so the sliced mask and mixed lengths are both
    exercised at the cost of about three batch runs. Raises :class:`UnsupportedTextGraph`
    when the rewritten graph fails to run or differs by more than ``tolerance`` (relative).
    """
    probes = probe_tokens() if tokens is None else tokens
    try:
        want = _run(original, probes)
        scale = max(float(np.abs(want).max()), float(np.finfo(np.float32).tiny))
        runs = [(trim_tokens(probes), want), (probes, want)]
        runs += [(trim_tokens(probes[i : i + 1]), want[i : i + 1]) for i in range(len(probes))]
        worst = 0.0
        for feed, expected in runs:
            got = _run(rewritten, feed)
            if got.shape != expected.shape or got.dtype != expected.dtype:
                raise UnsupportedTextGraph(f"rewritten text graph returns {got.shape}, not {expected.shape}")
            worst = max(worst, float(np.abs(got.astype(np.float64) - expected).max()) / scale)
    except UnsupportedTextGraph:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/RuntimeException types
        raise UnsupportedTextGraph(f"rewritten text graph failed to run: {first_line(exc, 10_000)}") from exc
    if not worst <= tolerance:  # also catches NaN
        raise UnsupportedTextGraph(f"rewritten text graph differs from the original by {worst:.3g} > {tolerance:g}")
    return worst
