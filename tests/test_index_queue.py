"""Index work is bounded: a flood of new image messages drops the oldest waiting, counted in
/metrics; a backfill's images are never dropped; and cancelled waiters leave no slot behind."""

from __future__ import annotations

import asyncio

import pytest

from bot.metrics import BotMetrics
from bot.search import IndexQueue, IndexWorkDropped


async def test_a_flood_drops_the_oldest_waiting_and_counts_it() -> None:
    metrics = BotMetrics()
    queue = IndexQueue(concurrency=2, limit=3, on_drop=metrics.index_dropped.inc)
    release = asyncio.Event()
    order: list[str] = []

    async def work(name: str, droppable: bool = True) -> str:
        try:
            async with queue.slot(droppable=droppable):
                order.append(name)
                await release.wait()
        except IndexWorkDropped:
            return f"{name} dropped"
        return f"{name} done"

    running = [asyncio.create_task(work(f"run{i}")) for i in range(2)]
    await asyncio.sleep(0)
    backfill = asyncio.create_task(work("backfill", droppable=False))
    await asyncio.sleep(0)
    flood = []
    for i in range(6):
        flood.append(asyncio.create_task(work(f"new{i}")))
        await asyncio.sleep(0)
    assert queue.waiting == 4  # the backfill's image and the 3 newest
    assert queue.dropped == 3
    release.set()
    results = await asyncio.gather(*running, backfill, *flood)
    assert results[:3] == ["run0 done", "run1 done", "backfill done"]
    assert results[3:] == ["new0 dropped", "new1 dropped", "new2 dropped", "new3 done", "new4 done", "new5 done"]
    assert order == ["run0", "run1", "backfill", "new3", "new4", "new5"]  # first come, first served
    assert "clipbot_index_dropped_total 3.0" in metrics.render().decode()
    assert queue._running == 0 and queue.waiting == 0


async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    queue = IndexQueue(concurrency=1, limit=10)
    release = asyncio.Event()

    async def hold() -> None:
        async with queue.slot(droppable=True):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    async with asyncio.timeout(1):  # the slot is free again
        async with queue.slot(droppable=True):
            pass
    assert queue._running == 0 and queue.waiting == 0
