"""A pebble worker that takes a while to start: its initializer's argument unpickles slowly.

What the CLI saw under load, made certain: pebble's `stop` unlinks the pool's semaphores,
then stops the workers; a worker still starting opens them after the unlink and fails.
"""

from __future__ import annotations

import signal
import time


def _rebuild(seconds: float) -> float:
    # pebble's stop sends SIGTERM right after the unlink; ignoring it here stands for a
    # worker that was a moment further along, already opening the semaphores.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return seconds


class SlowToUnpickle:
    """Unpickling it (in the starting worker) takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self) -> tuple[object, tuple[float]]:
        return _rebuild, (self.seconds,)


def initializer(_: object) -> None:
    """The worker's set-up; its argument is what made it slow to start."""


def ping() -> str:
    return "pong"
