"""The micro-batcher on its own: batching, order, and one item's failure staying its own."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.engine.batching import MicroBatcher


async def test_items_arriving_during_a_run_share_the_next_batch_in_order() -> None:
    gate = threading.Event()

    def run(batch: list[int]) -> list[int]:
        gate.wait(5)
        return [item * 10 for item in batch]

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, executor=pool, max_batch=3)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the lone item runs at once, alone
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
        assert list(batcher.batch_sizes) == [1, 3, 2]
        await batcher.aclose()


async def test_an_exception_for_one_item_fails_only_that_item() -> None:
    gate = threading.Event()

    def run(batch: list[int]) -> list[int | Exception]:
        gate.wait(5)
        return [ValueError(f"bad {item}") if item % 2 else item for item in batch]

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, executor=pool, max_batch=8)
        blocker = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        waiters = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 5)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(blocker, *waiters, return_exceptions=True)
        assert list(batcher.batch_sizes) == [1, 4], "the failing items were in a shared batch"
        assert results[0] == 0 and results[2] == 2 and results[4] == 4
        assert [str(results[i]) for i in (1, 3)] == ["bad 1", "bad 3"]
        assert await batcher.submit(6) == 6, "the batcher keeps serving"
        await batcher.aclose()


async def test_a_failing_batch_fails_its_items_and_the_batcher_lives_on() -> None:
    calls = 0

    def run(batch: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("out of memory")
        return batch

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, executor=pool, max_batch=4)
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2
        await batcher.aclose()


async def test_a_lone_item_reaches_the_executor_before_the_loop_turns() -> None:
    """The caller goes on with other work (the labels) while its image is already being prepared."""
    started = threading.Event()

    def run(batch: list[int]) -> list[int]:
        started.set()
        return batch

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, executor=pool, max_batch=4)
        (future,) = batcher.submit_all([7])
        assert started.wait(5), "the batch started with no further turn of the event loop"
        assert await future == 7
        await batcher.aclose()


async def test_items_submitted_together_share_a_batch_even_when_idle() -> None:
    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda batch: batch, executor=pool, max_batch=3)
        assert await asyncio.gather(*batcher.submit_all([1, 2, 3, 4, 5])) == [1, 2, 3, 4, 5]
        assert list(batcher.batch_sizes) == [3, 2], "in order, at most max_batch at a time"
        await batcher.aclose()


async def test_closing_cancels_running_and_queued_waiters() -> None:
    gate = threading.Event()

    def run(batch: list[int]) -> list[int]:
        gate.wait(5)
        return batch

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, executor=pool, max_batch=1)
        running, queued = batcher.submit_all([1, 2])
        await asyncio.sleep(0.05)
        await batcher.aclose()
        gate.set()
        assert running.cancelled() and queued.cancelled(), "nobody waits forever on a closed batcher"
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(3)


async def test_background_items_wait_behind_every_interactive_one() -> None:
    """Indexing work submitted in the background never delays a user's request: each batch
    takes the interactive items waiting first, and background items fill what room is left."""
    gate = threading.Event()
    ran: list[list[str]] = []

    def run(batch: list[str]) -> list[str]:
        gate.wait(5)
        ran.append(batch)
        return batch

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[str, str] = MicroBatcher(run, executor=pool, max_batch=2)
        first = asyncio.ensure_future(batcher.submit("b0", background=True))  # runs at once, alone
        await asyncio.sleep(0.05)
        backlog = [asyncio.ensure_future(batcher.submit(f"b{i}", background=True)) for i in range(1, 5)]
        await asyncio.sleep(0.01)
        users = [asyncio.ensure_future(batcher.submit(f"u{i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *backlog, *users)
        assert ran == [["b0"], ["u0", "u1"], ["u2", "b1"], ["b2", "b3"], ["b4"]]
        await batcher.aclose()


async def test_the_batch_size_record_is_bounded() -> None:
    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda batch: batch, executor=pool, max_batch=1)
        for i in range(1200):
            await batcher.submit(i)
        assert len(batcher.batch_sizes) == 1000
        await batcher.aclose()
