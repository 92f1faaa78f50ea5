"""What a decode process may see of the bot's environment: an allow-list, set before it starts.

The fork server that every decode worker comes from (and multiprocessing's resource tracker)
start with a few harmless variables only (`child_environment`): a process that parses untrusted
bytes never holds the Discord token, an API key or a database password. Clearing them inside a
worker would be too late: a process's initial environment stays readable in its memory and in
`/proc/<pid>/environ`.
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


_environment_lock = threading.Lock()


def start_fork_server_without_secrets() -> None:
    """Start multiprocessing's fork server and resource tracker with `child_environment` only.

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
            forkserver.ensure_running()
        finally:
            os.environ.update(saved)
