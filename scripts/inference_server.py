"""Serve one real Roboflow Inference Server by hand, for trying `CLIP_BACKEND=remote`.

    python -m scripts.inference_server [PORT] [MODEL_DIR]

serves one (port 9001, the tiny model) until ^C:
`INFERENCE_SERVER_URL=http://127.0.0.1:9001 CLIP_MODEL_ID=clip/tiny-test CLIP_REMOTE_RESOLUTION=48`.
The launcher itself is the tests' (`tests/support/inference_server.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # allow `python scripts/inference_server.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.inference_server import TINY_REMOTE_MODEL_ID, InferenceServer, prepare_home
from tests.support.paths import TINY_MODEL_DIR


async def serve_forever(port: int, model_dir: Path) -> None:
    root = prepare_home(Path(tempfile.mkdtemp(prefix="inference-server-")), model_dir=model_dir)
    server = InferenceServer(root, port=port)
    server.start()
    try:
        await server.wait_ready()
        print(f"Roboflow Inference Server with {model_dir} as {TINY_REMOTE_MODEL_ID} at {server.url}")
        assert server.process is not None
        await asyncio.to_thread(server.process.wait)
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
        asyncio.run(serve_forever(port, Path(sys.argv[2]) if len(sys.argv) > 2 else TINY_MODEL_DIR))
