"""A throw-away PostgreSQL server for tests: Debian's `postgresql` binaries, a temporary
data folder, a free local port, stopped at the end of the session.

`scripts/test.sh` installs the package where it is missing; where the server still cannot
run (no binaries, not root and no way to install), tests that need it are skipped with
the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.inference_server import free_port


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def wait_for_port(port: int, timeout_s: float, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts connections on local `port`; `RuntimeError` after `timeout_s`
    or when `process` (the server being waited for) has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not accept connections") from None
            time.sleep(0.1)


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a server; yield its `postgresql://` URL; stop and delete it afterwards.

    Raises `RuntimeError` with the reason when it cannot start.
    """
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="clipbot-pg-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: use the package's own user
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[:300]}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "clipbot", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        wait_for_port(port, 30, "PostgreSQL")
        yield f"postgresql://clipbot@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
