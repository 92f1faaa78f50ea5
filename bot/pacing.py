"""Background work (`/autotag`) that yields to people: one job at a time, resting between jobs
while the bot is in interactive use.

The engine already runs interactive items before background ones, but it cannot stop a batch
it has started: a request arriving then waits for it. So while someone used the bot lately
(`RECENT_S`), background jobs take at most `share` of the time (each is followed by a rest in
proportion to its length); when nobody has, they run back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

#: An interactive request this recent (seconds) means people are using the bot.
RECENT_S = 5.0


class BackgroundPacer:
    """Paces background jobs around interactive requests (see the module's docstring)."""

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share <= 1:
            raise ValueError("share is a fraction of the time, above 0 and at most 1")
        self.share = share
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_interactive = float("-inf")
        self._rest_until = float("-inf")

    def interactive(self) -> None:
        """An interactive request started."""
        self._last_interactive = self._clock()

    @property
    def in_use(self) -> bool:
        return self._clock() - self._last_interactive < RECENT_S

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold this around one background job: it waits its turn (and its rest, while in use)."""
        async with self._lock:
            rest = self._rest_until - self._clock()
            if rest > 0 and self.in_use:
                await asyncio.sleep(rest)
            started = self._clock()
            try:
                yield
            finally:
                ended = self._clock()
                self._rest_until = ended + (ended - started) * (1 / self.share - 1)
