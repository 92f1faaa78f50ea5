"""A throw-away Milvus server for tests: `milvus-lite server`, the same engine as the embedded
file behind Milvus's gRPC API, in its own process on a free local port.

It is what `VECTOR_DB_URL` mode talks to in tests: the bot's store then goes through
pymilvus's network client, as with Milvus standalone or a cluster (which cannot run
here), and makes its collections the server way (`guild_id` as partition key).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.inference_server import free_port
from tests.support.postgres import wait_for_port

START_TIMEOUT_S = 60.0


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[str]:
    """Start a server on `data_dir`; yield its `http://` URL; stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir)]
    # A file, not a pipe: a chatty server must never block on a full pipe.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            try:
                wait_for_port(port, START_TIMEOUT_S, "milvus-lite server", process)
            except RuntimeError as exc:
                log.seek(0)
                raise RuntimeError(f"{exc}: {log.read().decode(errors='replace').strip()[-500:]}") from None
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
