"""Test-only tasks for the decode worker processes (`bot.engine.decoding.ImageWorkers.task`).

They live in the tests, not in the bot: a worker imports them by name. One of them
crashes the worker the way a broken C decoder would.
"""

from __future__ import annotations

import os
import resource
import signal
import sys

from bot.engine.decoding import Prepared, PrepareSpec, work

#: Uploads starting with these bytes kill the worker that reads them.
SEGFAULT = b"CRASH:SIGSEGV"
ABORT = b"CRASH:ABORT"
HEAVY = ("torch", "torchvision", "inference", "onnxruntime", "clip", "discord")


def crash_on_magic(data: bytes, spec: PrepareSpec) -> Prepared:
    """`work`, except that the magic uploads crash the worker (as a segfault in a decoder would)."""
    if data.startswith(SEGFAULT):
        os.kill(os.getpid(), signal.SIGSEGV)
    if data.startswith(ABORT):
        os.abort()
    return work(data, spec)


def work_with_peak(data: bytes, spec: PrepareSpec) -> tuple[Prepared | str, float, int]:
    """`work`'s answer (or its error line), the worker's peak RSS in MB, and its address-space limit."""
    try:
        answer: Prepared | str = work(data, spec)
    except Exception as exc:
        answer = str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return answer, peak, resource.getrlimit(resource.RLIMIT_AS)[0]


def heavy_modules(data: bytes, spec: PrepareSpec) -> list[str]:
    """The heavy packages a worker has imported (none, if the worker is kept light)."""
    work(data, spec)
    return sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)


def echo(data: bytes, spec: object) -> bytes:
    """The upload back, untouched: what a worker round trip costs by itself."""
    return data


#: Uploads starting with this sleep for the seconds that follow it (e.g. b"SLEEP:2.0"), as a stalling decode does.
SLEEP = b"SLEEP:"


def sleep_on_magic(data: bytes, spec: object) -> bytes:
    """The upload back, after the stall it asks for (none unless it starts with `SLEEP`)."""
    if data.startswith(SLEEP):
        import time

        time.sleep(float(data[len(SLEEP) :]))
    return data
