"""A throw-away Milvus server for tests: `milvus-lite server`, the same engine as the embedded
file behind Milvus's gRPC API, in its own process on a free local port.

It is what `VECTOR_DB_URL` mode talks to in tests: the bot's store then goes through
pymilvus's network client, as with Milvus standalone or a cluster (which cannot run
here), and makes its collections the server way (`guild_id` as partition key).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.postgres import _free_port

START_TIMEOUT_S = 60.0


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[str]:
    """Start a server on `data_dir`; yield its `http://` URL; stop it afterwards."""
    port = _free_port()
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"milvus-lite server exited: {error.strip()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("milvus-lite server did not listen in time") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
