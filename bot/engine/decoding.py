"""Untrusted uploads are decoded in worker processes, each with a time and memory budget.

A Python function cannot stop a decoder that runs in C, nor bound what it
allocates: a GIF of millions of comment blocks, a JPEG of 20,000 scans or a
TIFF of millions of strips decodes for minutes, and a crash in a C decoder
would take the whole bot down. So the engine hands each upload to a pebble
`ProcessPool`:

- **time**: each task has `DECODE_TIMEOUT_S`; past it pebble kills the worker
  and starts a new one, and the user gets one line saying so;
- **memory**: each worker's address space is capped (`RLIMIT_AS`,
  `DECODE_MEMORY_MB`), so a picture too complex to decode ends in a
  `MemoryError`, a one-line refusal, not in the machine swapping;
- **crashes**: a worker that dies (a segfault in a decoder) fails its task
  only; pebble replaces it and the next request is served;
- **fairness**: one requester (a plain key, a user id for the Discord layer) has
  at most `DECODES_PER_USER` uploads in the pool at once; the rest wait outside
  it, so a flood of crafted files from one person holds that many workers, and
  anyone else's upload waits at worst one budget.

Workers are forked from a `forkserver` that imported this module (and so Pillow
and numpy) once: never from the bot's process, which holds onnxruntime's
threads and the model, and a killed worker is replaced in milliseconds. The fork
server start with an environment of a few harmless variables only
(`bot.engine.worker_env`): a process that parses untrusted bytes never holds a
secret. This module must not import torch, inference or onnxruntime (a test checks it):
the transform arrives as plain numbers (`PrepareSpec`) and the worker returns
the small result, the uint8 crop (150 KB for 224 x 224) and a JPEG thumbnail;
the engine turns the crop into the model's input with CLIP's exact lookup
table (`ClipImageTransform.from_crop`).

What a worker makes of an upload (the crop, a thumbnail; a clip's few frames) is
`bot.engine.preparation`.

Both sides of one protocol, the worker's task and the bot's pool, stay in one place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import resource
import signal
import threading
import warnings
from collections import Counter, deque
from collections.abc import Hashable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, Protocol

from PIL import Image

from bot.engine.images import CORRUPT, TOO_COMPLEX
from bot.engine.preparation import Prepared, PrepareSpec, prepare
from bot.engine.worker_env import quiet_forked_children, quiet_stdio, start_fork_server_without_secrets
from bot.errors import EngineError, ImageError, StartupError

log = logging.getLogger(__name__)

# The fork server imports this module first (its preload): from there on, every worker it
# forks starts with its output on /dev/null. In any other process this does nothing.
quiet_forked_children()

#: How long start-up waits for the workers' first (warm-up) answers.
WARM_UP_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------- in the worker
class _Notes(logging.Handler):
    """Pillow's log records in a worker, kept for the task's answer instead of printed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}"[:300])


_notes = _Notes()
_helper: ThreadPoolExecutor | None = None


def init_worker(memory_mb: int) -> None:
    """Set a fresh worker up: budget, quiet output, Pillow's logger captured."""
    # pebble's SIGTERM handler waits for the interpreter, which a decoder running in C
    # does not return to (pebble then waits 3 s, holding its channel, before SIGKILL).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # C libraries (libtiff, libjpeg) write warnings straight to fd 2; answers travel in results.
    # (Workers from the fork server start quiet already; this keeps any other worker quiet too.)
    quiet_stdio()
    pil = logging.getLogger("PIL")
    pil.handlers[:] = [_notes]
    pil.setLevel(logging.WARNING)
    pil.propagate = False
    if memory_mb > 0:
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def work(data: bytes, spec: PrepareSpec) -> Prepared:
    """A worker's task: `prepare`, total (every failure an `ImageError`), warnings captured."""
    global _helper
    if _helper is None and spec.crop is not None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix="band")
    _notes.lines.clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prepared = prepare(data, spec, _helper)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(TOO_COMPLEX) from None
    except Exception as exc:  # a decoder bug is still that image's problem, in one line
        raise ImageError(f"{CORRUPT[:-1]} ({type(exc).__name__}).") from None
    notes = tuple(dict.fromkeys([*(f"{w.category.__name__}: {w.message}"[:300] for w in caught), *_notes.lines]))
    if not notes:
        return prepared
    return Prepared(prepared.pixels, prepared.shape, prepared.thumbnail, notes, prepared.frames)


# ------------------------------------------------------------------------ in the bot
class Task(Protocol):
    """What runs in a worker (tests swap in one that crashes)."""

    def __call__(self, data: bytes, spec: PrepareSpec) -> Prepared: ...


class ImageWorkers:
    """A pebble process pool for untrusted uploads: per-task timeout, capped memory, crash-proof."""

    def __init__(
        self, workers: int, *, timeout_s: float, memory_mb: int, per_requester: int = 1, task: Task = work
    ) -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        #: Most uploads of one requester in the pool at once (`submit`'s `requester`).
        self.per_requester = per_requester
        #: Per requester: uploads in the pool, and those waiting for one of them to finish.
        self._running: Counter[Hashable] = Counter()
        self._held: dict[Hashable, deque[tuple[bytes, PrepareSpec, Future[Prepared]]]] = {}
        self._held_answers: set[Future[Prepared]] = set()
        self._fair_lock = threading.Lock()
        #: The function a worker runs per upload (importable by name: it is pickled).
        self.task = task
        self._pool: Any = None
        self._lock = threading.Lock()  # the clip thread and the event loop both submit
        #: Workers killed for overrunning the budget, or that died (for tests and logs).
        self.replaced = 0

    def start(self) -> None:
        """Start the workers (returns at once; `warm_up` waits for them)."""
        self._live_pool()

    def _live_pool(self) -> Any:
        """The pool, replaced when pebble gave up on it (e.g. every worker died at once)."""
        with self._lock:
            if self._pool is None or not self._pool.active:
                if self._pool is not None:
                    log.warning("image decode workers: pool broken, starting a new one")
                    _retire(self._pool)
                from pebble import ProcessPool

                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])  # workers fork with Pillow and numpy imported
                start_fork_server_without_secrets()  # before the pool makes locks (the resource tracker)
                self._pool = ProcessPool(
                    max_workers=self.workers, initializer=init_worker, initargs=(self.memory_mb,), context=context
                )
            return self._pool

    def warm_up(self, spec: PrepareSpec) -> None:
        """Block until the workers answer (so the first request pays no start-up)."""
        buffer = io.BytesIO()
        Image.new("RGB", (320, 240), (128, 64, 32)).save(buffer, format="PNG")
        futures = [self.submit(buffer.getvalue(), spec) for _ in range(self.workers)]
        done, _ = wait_futures(futures, timeout=WARM_UP_TIMEOUT_S)
        for future in futures:
            if future not in done:
                raise StartupError(f"The image decode workers did not start within {WARM_UP_TIMEOUT_S:g} s.")
            problem = future.exception()
            if problem is not None:
                raise StartupError(
                    f"The image decode workers cannot decode a small PNG (DECODE_MEMORY_MB={self.memory_mb} "
                    f"too low?): {problem}"
                )

    def submit(self, data: bytes, spec: PrepareSpec, requester: Hashable | None = None) -> Future[Prepared]:
        """Prepare `data` in a worker. The future's error is an `ImageError` (the user's line)
        or an `EngineError`; cancelling it stops the worker's task.

        Fairness: at most `per_requester` uploads of one `requester` (a plain key the caller
        chooses, e.g. a user id) are in the pool at once; the others wait here, outside the
        pool's first-come queue, and go in one by one as that requester's finish. So however
        many crafted files one person sends, they hold at most that many workers, and anyone
        else's upload waits for at most one decode budget. None: not held back (warm-up).
        """
        if requester is None:
            return self._schedule(data, spec)
        answer: Future[Prepared] = Future()
        with self._fair_lock:
            if self._running[requester] >= self.per_requester:
                self._held.setdefault(requester, deque()).append((data, spec, answer))
                self._held_answers.add(answer)
                return answer
            self._running[requester] += 1
        self._start_fair(requester, data, spec, answer)
        return answer

    def waiting_turn(self, answer: Future[Prepared]) -> bool:
        """The upload is held back for its requester's turn (not in the pool yet): nobody should
        wait for it to finish soon."""
        with self._fair_lock:
            return answer in self._held_answers

    def _start_fair(self, requester: Hashable, data: bytes, spec: PrepareSpec, answer: Future[Prepared]) -> None:
        """Run one of `requester`'s uploads, into `answer`; when it ends, start their next."""
        try:
            job = self._schedule(data, spec)
        except BaseException as exc:
            self._next_of(requester)
            with contextlib.suppress(InvalidStateError):
                answer.set_exception(exc)
            return

        def finished(job: Future[Prepared]) -> None:
            self._next_of(requester)  # first: whoever waits on this answer finds the next one in the pool
            try:
                if job.cancelled():
                    answer.cancel()
                elif (problem := job.exception()) is not None:
                    answer.set_exception(problem)
                else:
                    answer.set_result(job.result())
            except InvalidStateError:  # the caller gave up meanwhile
                pass

        job.add_done_callback(finished)
        answer.add_done_callback(lambda answer: job.cancel() if answer.cancelled() else None)

    def _next_of(self, requester: Hashable) -> None:
        """One of `requester`'s uploads left the pool: start their next one still wanted."""
        with self._fair_lock:
            waiting = self._held.get(requester)
            while waiting:
                data, spec, answer = waiting.popleft()
                self._held_answers.discard(answer)
                if not answer.cancelled():
                    break
            else:
                self._held.pop(requester, None)
                self._running[requester] -= 1
                if self._running[requester] <= 0:
                    del self._running[requester]
                return
            if not waiting:
                self._held.pop(requester, None)
        self._start_fair(requester, data, spec, answer)

    def _schedule(self, data: bytes, spec: PrepareSpec) -> Future[Prepared]:
        """Into the pool now (first come, first served)."""
        pool = self._live_pool()
        try:
            job = pool.schedule(self.task, args=(data, spec), timeout=self.timeout_s)
        except RuntimeError:  # the pool broke just now: once more, on a new one
            with self._lock:
                if self._pool is pool:
                    _retire(pool)
                    self._pool = None
            job = self._live_pool().schedule(self.task, args=(data, spec), timeout=self.timeout_s)
        answer: Future[Prepared] = Future()

        def finished(job: Future[Prepared]) -> None:
            if job.cancelled():
                answer.cancel()
                return
            problem = job.exception()
            try:
                if problem is None:
                    answer.set_result(job.result())
                else:
                    answer.set_exception(self._explain(problem))
            except InvalidStateError:  # the caller gave up meanwhile
                pass

        job.add_done_callback(finished)
        answer.add_done_callback(lambda answer: job.cancel() if answer.cancelled() else None)
        return answer

    def _explain(self, problem: BaseException) -> Exception:
        """A worker's failure as the one line the user sees."""
        from pebble import ProcessExpired

        if isinstance(problem, ImageError):
            return ImageError(str(problem))  # without the worker's traceback chained on
        if isinstance(problem, TimeoutError):
            self.replaced += 1
            log.info("image decode: over %.3g s; worker replaced", self.timeout_s)
            return ImageError(
                f"That image takes too long to decode (over {self.timeout_s:g} s); try a PNG or JPEG export of it."
            )
        if isinstance(problem, ProcessExpired):
            self.replaced += 1
            code = problem.exitcode
            how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else code
            log.warning("image decode: the worker died (%s) on an upload; worker replaced", how)
            if code == -signal.SIGKILL:  # the kernel's OOM killer, most likely
                return ImageError(TOO_COMPLEX)
            return ImageError("That image crashed the image decoder; try a PNG or JPEG export of it.")
        if isinstance(problem, MemoryError):
            return ImageError(TOO_COMPLEX)
        return EngineError(f"image decoding failed: {type(problem).__name__}: {problem}")

    def close(self) -> None:
        """Stop the workers (tasks in progress are dropped)."""
        with self._lock:
            pool, self._pool = self._pool, None
        with self._fair_lock:
            held = [answer for waiting in self._held.values() for _, _, answer in waiting]
            self._held.clear()
            self._held_answers.clear()
        for answer in held:
            answer.cancel()
        if pool is not None:
            pool.stop()
            pool.join(timeout=10)


def _retire(pool: Any) -> None:
    """Stop a broken pool and reap its workers in the background (its join may take a while)."""
    pool.stop()
    threading.Thread(target=lambda: pool.join(timeout=10), name="decode-pool-retire", daemon=True).start()
