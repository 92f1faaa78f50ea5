"""The repost-threshold benchmark runs end to end on the tiny model, and its choice follows its rule."""

from __future__ import annotations

import numpy as np

from benchmarks.repost import TRANSFORMS, choose_threshold, measure


def test_the_threshold_is_the_lowest_with_few_enough_false_positives() -> None:
    negatives = np.array([0.1] * 97 + [0.955, 0.962, 0.991])
    positives = np.array([0.999, 0.97, 0.5])
    assert choose_threshold(positives, negatives, 0.01) == 0.97  # 0.96 would let 2 of 100 through
    assert choose_threshold(positives, negatives, 0.0) == 1.0  # 0.991 is a different image too


async def test_the_benchmark_prints_distributions_threshold_and_rates() -> None:
    lines = {line["what"]: line for line in await measure(None, 6, 0.005)}
    assert lines["near-duplicates"]["pairs"] == 6 * len(TRANSFORMS)
    assert lines["different images"]["pairs"] == 15 + 6 * 5 * len(TRANSFORMS)
    chosen = lines["threshold"]
    assert 0.5 <= chosen["threshold"] <= 1.0 and chosen["false_positive_rate"] <= 0.005  # type: ignore[operator]
    assert set(lines["false negatives by transformation"]) == {"what", *TRANSFORMS}
    # JPEG re-encoding keeps the tiny model's vector: never missed at the chosen threshold.
    assert lines["false negatives by transformation"]["jpeg q90"] == 0.0
