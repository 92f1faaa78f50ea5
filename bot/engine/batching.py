"""Micro-batching: concurrent requests for one encoder become one model call.

A lone request runs at once (no added wait); while a batch is running, new
requests queue up and go together in the next call, up to `max_batch`. An
optional `window_s` waits a little longer to fill batches (worth it on a GPU,
where a batch of 8 costs about what a batch of 1 does).

`run_batch` may return an exception in place of one item's result: that
item's waiter gets it raised, the others get their results (one unreadable
image must not fail the other requests in its batch).

Items submitted as `background` (indexing, backfills) fill a batch only after
every interactive item waiting: a user's `/classify` never queues behind them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Told of each finished batch: (batcher name, batch size, seconds in the executor,
#: each item's seconds in the queue). For metrics; must be cheap, runs on the loop.
BatchObserver = Callable[[str, int, float, list[float]], None]
#: How many batch sizes `MicroBatcher.batch_sizes` keeps.
RECENT_BATCHES = 1000


class MicroBatcher(Generic[T, R]):
    """Feeds items to `run_batch` (a blocking function) in an executor, in batches.

    A batch is handed to the executor from `submit` itself when nothing is
    running, not from a worker task on a later turn of the loop: the model's
    thread starts on a lone item at once, while its caller goes on with other
    work (the labels). When a batch finishes, its callback starts the next one.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R | Exception]],
        *,
        executor: Executor,
        max_batch: int,
        window_s: float = 0.0,
        name: str = "batch",
    ) -> None:
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch = max_batch
        self.window_s = window_s
        self.name = name
        self._queue: deque[tuple[T, asyncio.Future[R], float]] = deque()  # (item, waiter, submitted at)
        self._background: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._running: list[asyncio.Future[R]] | None = None  # the waiters of the batch in the executor
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Sizes of the most recent batches (for tests and the benchmark; bounded).
        self.batch_sizes: deque[int] = deque(maxlen=RECENT_BATCHES)
        self.observer: BatchObserver | None = None
        self._started_at = 0.0
        self._queue_waits: list[float] = []

    async def submit(self, item: T, *, background: bool = False) -> R:
        """Queue one item and wait for its result."""
        (future,) = self.submit_all([item], background=background)
        return await future

    def submit_all(self, items: Sequence[T], *, background: bool = False) -> list[asyncio.Future[R]]:
        """Queue `items` together (they share batches, in order) and return their futures.

        One request's items go in one call: submitted one by one, the first
        would start alone, since a batch starts as soon as nothing is running.
        """
        if self._closed:
            raise RuntimeError(f"{self.name}: the batcher is closed")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        now = time.perf_counter()
        queue = self._background if background else self._queue
        queue.extend((item, future, now) for item, future in zip(items, futures, strict=True))
        self._kick(loop)
        return futures

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a batch unless one is running or waiting for its window to fill."""
        waiting = len(self._queue) + len(self._background)
        if self._running is not None or self._timer is not None or not waiting or self._closed:
            return
        if self.window_s > 0 and waiting < self.max_batch:
            self._timer = loop.call_later(self.window_s, self._start, loop)
        else:
            self._start(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        batch: list[tuple[T, asyncio.Future[R]]] = []
        waits: list[float] = []
        now = time.perf_counter()
        for queue in (self._queue, self._background):  # interactive items first
            while queue and len(batch) < self.max_batch:
                item, future, submitted = queue.popleft()
                if not future.done():  # its caller gave up (cancelled) while it queued
                    batch.append((item, future))
                    waits.append(now - submitted)
        if not batch:
            return
        self.batch_sizes.append(len(batch))
        self._started_at, self._queue_waits = now, waits
        self._running = [future for _, future in batch]
        job = loop.run_in_executor(self._executor, self._run_batch, [item for item, _ in batch])
        job.add_done_callback(lambda job: self._finish(loop, job))

    def _finish(self, loop: asyncio.AbstractEventLoop, job: asyncio.Future[Sequence[R | Exception]]) -> None:
        waiters, self._running = self._running or [], None
        if self.observer is not None and waiters:
            self.observer(self.name, len(waiters), time.perf_counter() - self._started_at, self._queue_waits)
        try:
            results = job.result()
            if len(results) != len(waiters):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(waiters)} items")
        except asyncio.CancelledError:
            for future in waiters:
                future.cancel()
        except Exception as exc:  # every waiter gets the failure; the batcher goes on
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
        else:
            for future, result in zip(waiters, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        self._kick(loop)

    async def aclose(self) -> None:
        """Stop batching; queued and running waiters get a CancelledError."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for future in self._running or []:
            future.cancel()
        for queue in (self._queue, self._background):
            while queue:
                _, future, _ = queue.popleft()
                future.cancel()
