"""What a decode process may see of the bot's environment (an allow-list, set before it starts),
and where its output goes (nowhere).

The fork server that every decode worker comes from (and multiprocessing's resource tracker)
start with a few harmless variables only (`child_environment`): a process that parses untrusted
bytes never holds the Discord token, an API key or a database password. Clearing them inside a
worker would be too late: a process's initial environment stays readable in its memory and in
`/proc/<pid>/environ`.

Every process the fork server forks starts with stdout and stderr on /dev/null
(`quiet_forked_children`): answers and errors travel in results, and the bot's stderr is its
log, or, for a command-line query, one line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

#: The only environment variables the fork server, and so every worker, starts with (an allow-list:
#: a new secret setting cannot slip through). `LC_*` too.
CHILD_ENVIRONMENT = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHASHSEED"}
)


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What a decode process may see of `environ`: `CHILD_ENVIRONMENT` and the locale."""
    return {name: value for name, value in environ.items() if name in CHILD_ENVIRONMENT or name.startswith("LC_")}


#: Set in the fork server's environment only: there, `quiet_forked_children` takes effect.
FORK_SERVER_MARK = "CLIPBOT_DECODE_FORK_SERVER"

_environment_lock = threading.Lock()


def quiet_stdio() -> None:
    """Point this process's stdout and stderr (the file descriptors, so C libraries too) at /dev/null."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def quiet_forked_children() -> None:
    """In the fork server (its preload calls this), every child starts quiet, from the fork on.

    A worker's own set-up (`decoding.init_worker`) comes too late for what goes wrong while
    it starts. pebble's `stop` unlinks its pool's semaphores before it stops the workers, so
    a worker still starting then fails to open them, and multiprocessing printed that
    traceback on the bot's stderr (after a command-line query's one `error:` line). The
    worker was being stopped anyway; pebble notices any worker that dies while starting and
    starts another. Anywhere but the fork server, this does nothing.
    """
    if os.environ.get(FORK_SERVER_MARK) == "1":
        os.register_at_fork(after_in_child=quiet_stdio)


def start_fork_server_without_secrets() -> None:
    """Start multiprocessing's fork server and resource tracker with `child_environment` only
    (and `FORK_SERVER_MARK`).

    Both are started by `exec`, inheriting this process's environment at that moment, and
    multiprocessing offers no other way to give them one; so the environment is narrowed for
    the instant of their start and restored at once. Only the first call starts them.
    """
    from multiprocessing import forkserver

    with _environment_lock:
        saved = dict(os.environ)
        try:
            for name in set(saved) - set(child_environment(saved)):
                del os.environ[name]
            os.environ[FORK_SERVER_MARK] = "1"
            forkserver.ensure_running()
        finally:
            os.environ.pop(FORK_SERVER_MARK, None)
            os.environ.update(saved)
