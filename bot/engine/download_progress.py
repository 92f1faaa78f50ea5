"""Progress of the model download: a thread-safe model anyone may read, and how it is shown.

`DownloadProgress` (one per model, `progress_for(model_id)`) holds bytes done/total, the
rate and the ETA (e.g. for "ready in about N s" while users wait); `Reporter` shows it,
as a tqdm bar on a terminal, otherwise (Docker, logs) as one line every
`MODEL_DOWNLOAD_LOG_EVERY_S` seconds.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, TextIO

log = logging.getLogger(__name__)

MB = 1_000_000
#: The rate is measured over this many recent seconds.
RATE_WINDOW_S = 10.0
#: tqdm's default bar, with "B" after the sizes ("120MB/598MB").
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}]"


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """One consistent reading of a download's progress."""

    model_id: str
    #: "idle", "downloading", "verifying", "done" or "failed".
    state: str
    done: int
    #: Bytes in all files; None until the server has said.
    total: int | None
    #: Bytes/s over the last `RATE_WINDOW_S` seconds; None until measurable.
    rate: float | None
    #: Seconds left at that rate; None when unknown.
    eta_s: float | None
    #: Bytes already on disk when this run started (resumed, not downloaded now).
    resumed: int

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


class DownloadProgress:
    """Bytes done and total, rate and ETA of one model's download; safe to read from any thread."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self._lock = threading.Lock()
        self._state = "idle"
        self._done = 0
        self._total: int | None = None
        self._resumed = 0
        self._samples: deque[tuple[float, int]] = deque()

    def begin(self, *, total: int, done: int) -> None:
        """Start counting: `done` bytes are already on disk."""
        with self._lock:
            self._state = "downloading"
            self._total, self._done, self._resumed = total, done, done
            self._samples.clear()
            self._samples.append((time.monotonic(), done))

    def advance(self, count: int) -> None:
        """`count` more bytes written (negative: bytes thrown away for a restart)."""
        with self._lock:
            self._done += count
            now = time.monotonic()
            if count < 0:
                self._samples.clear()
            self._samples.append((now, self._done))
            while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW_S:
                self._samples.popleft()

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            rate = None
            if len(self._samples) >= 2:
                (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
                if t1 - t0 >= 0.2:
                    rate = max(0.0, (d1 - d0) / (t1 - t0))
            eta = None
            if self._total is not None and rate:
                eta = max(0.0, self._total - self._done) / rate
            return ProgressSnapshot(self.model_id, self._state, self._done, self._total, rate, eta, self._resumed)


_progress: dict[str, DownloadProgress] = {}
_progress_lock = threading.Lock()


def progress_for(model_id: str) -> DownloadProgress:
    """The process-wide progress of `model_id`'s download (state "idle" if none ran)."""
    with _progress_lock:
        if model_id not in _progress:
            _progress[model_id] = DownloadProgress(model_id)
        return _progress[model_id]


def describe_eta(seconds: float | None) -> str:
    """ "about 40 s left", "about 3 min left"; "" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"about {hours} h {rest} min left"


def describe_progress(label: str, snap: ProgressSnapshot) -> str:
    """The log line: "Downloading CLIP clip/ViT-B-16: 120/598 MB (20%), 8.1 MB/s, about 1 min left"."""
    total = snap.total or 0
    parts = [f"Downloading CLIP {label}: {snap.done / MB:.0f}/{total / MB:.0f} MB ({(snap.fraction or 0) * 100:.0f}%)"]
    if snap.rate is not None:
        parts.append(f"{snap.rate / MB:.1f} MB/s")
    eta = describe_eta(snap.eta_s)
    if eta and snap.done < total:
        parts.append(eta)
    return ", ".join(parts)


class Reporter:
    """Shows a download's progress: a tqdm bar on a terminal, else a log line every few seconds."""

    def __init__(self, label: str, progress: DownloadProgress, *, stream: TextIO | None, every_s: float) -> None:
        self.label = label
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self._bar: Any = None
        self._last_log = 0.0
        self._shown = 0
        isatty = getattr(self.stream, "isatty", None)
        self.on_terminal = bool(isatty and isatty())

    def start(self) -> None:
        snap = self.progress.snapshot()
        self._shown = snap.done
        self._last_log = time.monotonic()
        if self.on_terminal:
            from tqdm import tqdm

            self._bar = tqdm(
                total=snap.total,
                initial=snap.done,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                desc=f"CLIP {self.label}",
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
                leave=True,
                bar_format=BAR_FORMAT,
            )

    def update(self) -> None:
        snap = self.progress.snapshot()
        if self._bar is not None:
            if snap.done < self._shown:  # a restart threw bytes away
                self._bar.reset(total=snap.total)
                self._shown = 0
            self._bar.update(snap.done - self._shown)
            self._shown = snap.done
            return
        now = time.monotonic()
        if now - self._last_log >= self.every_s:
            self._last_log = now
            log.info("%s", describe_progress(self.label, snap))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
