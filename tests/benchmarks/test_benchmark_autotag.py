"""The autotag benchmark runs end to end on the tiny model, in a tiny version."""

from __future__ import annotations

from benchmarks.autotag import run
from tests.support.paths import TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR


async def test_autotag_benchmark_measures_classify_idle_and_while_tagging() -> None:
    result = await run(TINY_MODEL_DIR, images=40, probes=5, gap_ms=5, rounds=2, cache_dir=TEST_CACHE_DIR)
    assert result["images"] == 40 and result["background_images_per_s"] > 0  # type: ignore[operator]
    assert result["idle"]["p50_ms"] > 0 and result["busy_probes"] >= 1  # type: ignore[index,operator]
    assert result["busy_over_idle_p50"] > 0  # type: ignore[operator]
