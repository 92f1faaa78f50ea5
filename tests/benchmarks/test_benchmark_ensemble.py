"""The ensemble benchmark runs on the tiny model and reports both costs."""

from __future__ import annotations

from benchmarks.ensemble import run
from tests.support.paths import TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR


async def test_ensemble_benchmark_reports_cold_costs() -> None:
    result = await run(TINY_MODEL_DIR, labels=4, rounds=2, cache_dir=TEST_CACHE_DIR)
    assert result["single_cold_s"] > 0 and result["ensemble_cold_s"] > 0  # type: ignore[operator]
    assert result["labels"] == 4
