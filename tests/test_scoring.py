"""Scoring maths against a plain numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from bot.render import bar, percent
from bot.scoring import cosine_similarities, normalize, rank, softmax, zero_shot_probabilities


def reference_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_cosine_matches_reference_for_unnormalised_vectors() -> None:
    rng = np.random.default_rng(0)
    subject = rng.normal(size=(1, 64)).astype(np.float32) * 7
    candidates = rng.normal(size=(5, 64)).astype(np.float32) * 3
    got = cosine_similarities(subject, candidates)
    want = [reference_cosine(subject[0], c) for c in candidates]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_zero_shot_probability_is_softmax_of_100_cosine() -> None:
    cosines = np.array([0.2429935, 0.30160928, 0.19586928])  # the seed's bloody mary numbers
    probs = zero_shot_probabilities(cosines)
    exp = np.exp(100 * cosines)
    np.testing.assert_allclose(probs, exp / exp.sum(), rtol=1e-12)
    assert probs.sum() == pytest.approx(1.0)
    assert int(np.argmax(probs)) == 1  # "bloody mary"


def test_softmax_is_stable_for_large_logits() -> None:
    probs = softmax(np.array([1000.0, 999.0, -1000.0]))
    assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0)


def test_zero_vector_does_not_produce_nan() -> None:
    assert np.isfinite(normalize(np.zeros((2, 4)))).all()


def test_rank_orders_best_first_and_keeps_user_order_on_ties() -> None:
    cosines = np.array([0.1, 0.5, 0.5, 0.3])
    ranked = rank(["a", "b", "c", "d"], ["pa", "pb", "pc", "pd"], cosines, zero_shot_probabilities(cosines))
    assert [s.label for s in ranked] == ["b", "c", "d", "a"]
    assert ranked[0].prompt == "pb"
    assert ranked[0].probability == ranked[1].probability


def test_rank_without_probabilities_for_similar() -> None:
    ranked = rank(["globe", "cat", "dog"], ["globe", "cat", "dog"], np.array([0.8489042, 0.7678248, 0.78415155]))
    assert [s.label for s in ranked] == ["globe", "dog", "cat"]
    assert all(s.probability is None for s in ranked)


def test_bar_and_percent_rendering() -> None:
    assert bar(0.5, 10) == "█████░░░░░"
    assert bar(0.001, 10) == "█░░░░░░░░░"  # a non-zero score is visible
    assert bar(0.0, 4) == "░░░░" and bar(1.5, 4) == "████"
    assert percent(0.7123) == "71.2%"
    assert percent(0.0001) == "<0.1%"
    assert percent(0.99999) == "100%"
