"""Benchmark: how late the event loop's timer fires while a thread tokenises new words, with
rf-clip's own tokenizer and with the bot's fair one (`bot.engine.tokenizer`).

    python -m benchmarks.tokenizer [--repeats 5]

Prints one JSON object: per word length and tokenizer, the loop lag's median, p90 and max
(ms, medians over `--repeats`), and the thread's tokens per second. No model is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.probes import loop_lag_probe

#: (words, letters each): what fitting long labels tokenises (windows of 128 characters and
#: up), where the GIL changed hands most often; a few whole 1000-letter words (few regex
#: calls between long BPE); many label-length words.
WORKLOADS = ((400, 150), (40, 1000), (3000, 8))


async def lag_while_tokenising(tokenizer: Any, words: list[str]) -> tuple[list[float], float]:
    loop = asyncio.get_running_loop()
    async with loop_lag_probe(0.005) as lags:
        started = time.perf_counter()
        tokens = await loop.run_in_executor(None, lambda: sum(len(tokenizer.encode(w)) for w in words))
        took = time.perf_counter() - started
    return lags, tokens / took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from clip.simple_tokenizer import SimpleTokenizer

    from bot.engine.tokenizer import fair_copy

    rng = np.random.default_rng(time.time_ns())
    results: dict[str, Any] = {}
    for count, letters in WORKLOADS:
        figures: dict[str, dict[str, list[float]]] = {"rf-clip": {}, "fair": {}}
        for _ in range(args.repeats):
            for name in figures:  # back to back, so machine drift hits both alike
                rf_clip = SimpleTokenizer()  # afresh: an empty word cache
                tokenizer = rf_clip if name == "rf-clip" else fair_copy(rf_clip)
                words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), letters)) for _ in range(count)]
                lags, rate = await lag_while_tokenising(tokenizer, words)
                lag_ms = np.array(lags) * 1000
                for key, figure in (
                    ("lag_median_ms", float(np.median(lag_ms))),
                    ("lag_p90_ms", float(np.percentile(lag_ms, 90))),
                    ("lag_max_ms", float(lag_ms.max())),
                    ("tokens_per_s", rate),
                ):
                    figures[name].setdefault(key, []).append(figure)
        results[f"{count} words x {letters} letters"] = {
            name: {key: round(statistics.median(values), 1) for key, values in series.items()}
            for name, series in figures.items()
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
