"""Who may start work now: one gate for every interaction, and one budget for downloads.

Every slash command, message command and modal submission passes `Admission.admit` before
anything else runs (`bot.discord.interactions.admit`, called by the command tree's
`interaction_check` and by the modal); autocomplete does not (it is answered from memory).
Nobody is exempt, Manage Server holders included: anyone can own a server and add the bot.

- **rate**: each person has a bucket of `USER_BURST` requests, refilled at one per
  `USER_COOLDOWN_S` (a few quick clicks pass; a flood does not);
- **in flight**: at most `USER_MAX_IN_FLIGHT` of one person's requests are served at once;
  the slot is freed when the interaction's task ends, however it ends.

`DownloadBudget` bounds the bytes of images held by requests in progress, reserved by the
size Discord declares before the download starts, so ten 25 MiB `/compare` files cannot
all be in memory for every user at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import RateLimitedError


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class Admission:
    """The per-person rate limit and in-flight cap (keys are plain user ids)."""

    def __init__(
        self,
        *,
        cooldown_s: float,
        burst: int,
        max_in_flight: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.burst = burst
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._in_flight: Counter[int] = Counter()

    def admit(self, user_id: int, task: asyncio.Task[object] | None) -> None:
        """Let one request of `user_id` in, held until `task` ends; else `RateLimitedError`.

        The in-flight check comes first, so a refused request does not spend a token.
        """
        if self.max_in_flight > 0 and self._in_flight[user_id] >= self.max_in_flight:
            noun = "request" if self.max_in_flight == 1 else "requests"
            raise RateLimitedError(
                f"You already have {self.max_in_flight} {noun} in progress; "
                "please wait for an answer before asking again."
            )
        self._take_token(user_id)
        if task is None:
            return
        self._in_flight[user_id] += 1
        task.add_done_callback(lambda _: self._release(user_id))

    def _take_token(self, user_id: int) -> None:
        if self.cooldown_s <= 0:
            return
        now = self._clock()
        self._forget_full_buckets(now)
        bucket = self._buckets.setdefault(user_id, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) / self.cooldown_s)
        bucket.updated = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) * self.cooldown_s
            raise RateLimitedError(f"Slow down a little: try again in {wait:.1f} s.")
        bucket.tokens -= 1

    def _forget_full_buckets(self, now: float) -> None:
        """Drop buckets refilled by now (memory stays bounded by recent users)."""
        if len(self._buckets) < 1024:
            return
        full_after = self.burst * self.cooldown_s
        for user_id in [u for u, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[user_id]

    def _release(self, user_id: int) -> None:
        self._in_flight[user_id] -= 1
        if self._in_flight[user_id] <= 0:
            del self._in_flight[user_id]

    def in_flight(self, user_id: int) -> int:
        """This person's requests being served now."""
        return self._in_flight[user_id]


class DownloadBudget:
    """Bytes that downloads in progress may hold, all users together; waiters are served in order.

    A reservation larger than the whole budget is cut to it (it then waits for an empty budget),
    so no single request can wait for ever.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.available = capacity
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def reserve(self, size: int) -> int:
        """Wait until `size` bytes (at most the capacity) are free and take them; returns what was taken."""
        size = min(max(size, 0), self.capacity)
        if not self._waiters and size <= self.available:
            self.available -= size
            return size
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((size, waiter))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(size)  # granted just as it was cancelled: hand it on
            else:
                with contextlib.suppress(ValueError):  # already skipped by `_wake`
                    self._waiters.remove((size, waiter))
                self._wake()
            raise
        return size

    def release(self, size: int) -> None:
        """Give `size` reserved bytes back and wake whoever now fits, in order."""
        self.available += size
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.available:
            size, waiter = self._waiters.popleft()
            if waiter.cancelled():
                continue
            self.available -= size
            waiter.set_result(None)
