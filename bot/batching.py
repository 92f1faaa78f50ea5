"""Micro-batching: concurrent requests for one encoder become one model call.

A lone request runs at once (no added wait); while a batch is running, new
requests queue up and go together in the next call, up to `max_batch`. An
optional `window_s` waits a little longer to fill batches (worth it on a GPU,
where a batch of 8 costs about what a batch of 1 does).

`run_batch` may return an exception in place of one item's result: that
item's waiter gets it raised, the others get their results (one unreadable
image must not fail the other requests in its batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class MicroBatcher(Generic[T, R]):
    """Feeds items to `run_batch` (a blocking function) in an executor, in batches."""

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
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        #: Sizes of the batches run so far (for tests and the benchmark).
        self.batch_sizes: list[int] = []

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work(), name=f"microbatch-{self.name}")
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self.window_s > 0 and len(self._queue) < self.max_batch:
                    await asyncio.sleep(self.window_s)
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                batch = [(item, fut) for item, fut in batch if not fut.done()]
                if not batch:
                    continue
                self.batch_sizes.append(len(batch))
                try:
                    results = await loop.run_in_executor(self._executor, self._run_batch, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
                except Exception as exc:  # every waiter gets the failure; the worker lives on
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)

    async def aclose(self) -> None:
        """Stop the worker; queued waiters get a CancelledError."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue:
            _, fut = self._queue.popleft()
            fut.cancel()
