"""What `/about` reports: uptime and how many answers were served, how fast.

Kept in memory only (a restart starts afresh), bounded: the latency figures
cover the most recent `WINDOW` answers per command.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

WINDOW = 1000


@dataclass(frozen=True, slots=True)
class Latency:
    answers: int
    median_s: float
    p95_s: float


@dataclass(slots=True)
class UsageStats:
    """Answers served per command since start, with recent latencies."""

    started: float = field(default_factory=time.monotonic)
    _answers: dict[str, int] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)

    def record(self, command: str, seconds: float) -> None:
        self._answers[command] = self._answers.get(command, 0) + 1
        self._recent.setdefault(command, deque(maxlen=WINDOW)).append(seconds)

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def latency(self, command: str | None = None) -> Latency | None:
        """Counts and latency percentiles for one command, or all together (None)."""
        names = [command] if command is not None else list(self._answers)
        answers = sum(self._answers.get(name, 0) for name in names)
        samples = [s for name in names for s in self._recent.get(name, ())]
        if not samples:
            return None
        median, p95 = np.percentile(np.asarray(samples), [50, 95])
        return Latency(answers=answers, median_s=float(median), p95_s=float(p95))

    @property
    def commands(self) -> list[str]:
        return sorted(self._answers)
