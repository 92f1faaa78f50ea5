"""The autocomplete benchmark runs (on a small database) and reports its figures."""

from __future__ import annotations

from benchmarks.autocomplete import database_url, run


async def test_autocomplete_benchmark_reports_latency() -> None:
    with database_url(postgres=False) as url:
        result = await run(presets=40, rounds=10, url=url)
    assert result["backend"] == "sqlite" and result["presets"] == 40
    assert 0 < result["median_ms"] <= result["p95_ms"] <= result["max_ms"]  # type: ignore[operator]
