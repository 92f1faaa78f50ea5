"""Nothing a decode worker does reaches the bot's stderr, not even failing while it starts.

Under load in CI, a command-line query printed its one `error:` line and then the start of a
traceback: pebble's `stop` unlinks its pool's semaphores before it stops the workers, and a
worker replaced a moment earlier (after a decode ran out of time) was still starting and
failed to open them. Here a worker is made slow to start so that the race is certain; a
control run without the fork server's quieting shows the traceback it produced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Start the bot's decode fork server, then a pebble pool on it whose worker is slow to start,
#: and stop that pool while the worker is still starting.
SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys, time
    import bot.engine.worker_env
    from bot.engine.decoding import ImageWorkers
    from pebble import ProcessPool
    from tests.support.slow_start import SlowToUnpickle, initializer, ping

    if sys.argv[1] == "unquieted":  # the control: the fork server does not recognise itself
        bot.engine.worker_env.FORK_SERVER_MARK = "CLIPBOT_TEST_NOT_THE_MARK"
    workers = ImageWorkers(1, timeout_s=10, memory_mb=0)
    workers.start()
    pool = ProcessPool(
        max_workers=1,
        initializer=initializer,
        initargs=(SlowToUnpickle(0.5),),
        context=multiprocessing.get_context("forkserver"),
    )
    pool.schedule(ping)  # the worker starts, and takes 0.5 s to
    time.sleep(0.1)
    pool.stop()
    pool.join()
    workers.close()
    print("stopped")
    """
)


def run(mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The pipes stay open while any process holds them: output from a worker that outlives
    # the script is still caught.
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("mode", ["quieted", "unquieted"])
def test_a_worker_failing_as_it_starts_prints_nothing(mode: str) -> None:
    result = run(mode)
    assert result.returncode == 0 and result.stdout.strip() == "stopped", result.stderr[-2000:]
    if mode == "quieted":  # as the bot runs
        assert result.stderr == ""
    else:  # the race really happened, and this is what reached stderr
        assert "FileNotFoundError" in result.stderr and "forkserver.py" in result.stderr
