"""Scoring maths: cosine similarity and CLIP's zero-shot softmax, ranked.

Pure numpy, so it is checked against a plain reference in tests without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: CLIP's learned logit scale is ~100 for the released models; zero-shot
#: classification uses softmax(100 * cosine).
LOGIT_SCALE = 100.0


@dataclass(frozen=True, slots=True)
class Score:
    """One label's (or phrase's) result."""

    label: str
    prompt: str
    cosine: float
    probability: float | None = None


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (float64 for stable maths); zero rows stay zero."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def cosine_similarities(subject: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine of one subject embedding against each candidate row."""
    return normalize(candidates) @ normalize(subject)[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits)
    exp = np.exp(shifted)
    return exp / exp.sum()


def zero_shot_probabilities(cosines: np.ndarray, scale: float = LOGIT_SCALE) -> np.ndarray:
    """CLIP's zero-shot probability over the labels: softmax(scale * cosine)."""
    return softmax(scale * np.asarray(cosines, dtype=np.float64))


def rank(
    labels: Sequence[str],
    prompts: Sequence[str],
    cosines: np.ndarray,
    probabilities: np.ndarray | None = None,
) -> list[Score]:
    """Scores best first (by cosine, which orders probability the same way).

    Ties keep the user's order, so the result is deterministic.
    """
    order = sorted(range(len(labels)), key=lambda i: -float(cosines[i]))
    return [
        Score(
            label=labels[i],
            prompt=prompts[i],
            cosine=float(cosines[i]),
            probability=None if probabilities is None else float(probabilities[i]),
        )
        for i in order
    ]
