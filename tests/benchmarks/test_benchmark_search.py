"""The search benchmark runs end to end on the tiny model and a small store."""

from __future__ import annotations

from pathlib import Path

from benchmarks.search import indexing, queries
from tests.support.paths import TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR


async def test_search_benchmark_indexes_and_queries(tmp_path: Path) -> None:
    result = await indexing(TINY_MODEL_DIR, 6, tmp_path, cache_dir=TEST_CACHE_DIR)
    assert result["stored"] == 6 and result["images_per_s"] > 0  # type: ignore[operator]
    result = await queries(2000, 32, "FLAT", 5, tmp_path)
    assert result["mean_results"] == 10 and result["p50_ms"] > 0  # type: ignore[operator]
