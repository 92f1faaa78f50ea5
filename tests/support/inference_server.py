"""Real Roboflow Inference Servers on this machine, each in its own process (tests, benchmarks).

This is Roboflow's own HTTP server (`inference[http]`, a test dependency), the one its
Docker images run, started with uvicorn on a free port, offline, with a CLIP model folder
(`visual.onnx`, `textual.onnx`; the tiny trained one by default) placed in its model cache
at the path of the model id the bot asks for (`TINY_REMOTE_MODEL_ID`). Each server is a
subprocess, so a test can kill one mid-run (`InferenceServer.kill`) the way a crashed or
unplugged machine goes away. `python -m scripts.inference_server` serves one by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.engine.loading import OFFLINE_LATCH_ENV
from tests.support.paths import TINY_MODEL_DIR

#: The id the tests' bot asks the servers for (`CLIP_MODEL_ID`); `clip/` + the `clip_version_id` it sends.
TINY_REMOTE_MODEL_ID = "clip/tiny-test"
#: The tiny model's input side (its `model.json`); the remote backend is told it (`CLIP_REMOTE_RESOLUTION`).
TINY_RESOLUTION = 48
START_TIMEOUT_S = 120.0
#: The server's switches for its other built-in models (`inference.core.env`), all off here.
OTHER_MODELS = (
    *(f"CORE_MODEL_{name}_ENABLED" for name in ("PE", "SAM", "SAM2", "SAM3", "OWLV2", "GAZE", "DOCTR", "EASYOCR")),
    *(f"CORE_MODEL_{name}_ENABLED" for name in ("TROCR", "PPOCR", "GROUNDINGDINO", "YOLO_WORLD")),
    *(f"{name}_ENABLED" for name in ("LMM", "COSMOS3", "VJEPA2_1", "QWEN_2_5", "QWEN_3", "QWEN_3_5", "QWEN_3_8")),
    *(f"{name}_ENABLED" for name in ("DEPTH_ESTIMATION", "ACTION_RECOGNITION", "SMOLVLM2", "MOONDREAM2")),
    *(f"{name}_ENABLED" for name in ("PALIGEMMA", "FLORENCE2", "GLM_OCR")),
)

#: What uvicorn imports in the server process: exactly what Roboflow's Docker images build
#: (`docker/config/cpu_http.py` in roboflow/inference), minus the optional extras.
APP_SOURCE = """\
from inference.core.interfaces.http.http_api import HttpInterface
from inference.core.managers.base import ModelManager
from inference.core.registries.roboflow import RoboflowModelRegistry
from inference.models.utils import ROBOFLOW_MODEL_TYPES

app = HttpInterface(ModelManager(model_registry=RoboflowModelRegistry(ROBOFLOW_MODEL_TYPES))).app
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_home(root: Path, model_id: str = TINY_REMOTE_MODEL_ID, model_dir: Path = TINY_MODEL_DIR) -> Path:
    """A working folder for servers: the app file, the empty landing-page folders it mounts, and
    a model cache holding `model_dir`'s model at `model_id`'s cache path (`get_cache_dir` is
    `MODEL_CACHE_DIR/<model id>`)."""
    (root / "inference" / "landing" / "out" / "static").mkdir(parents=True, exist_ok=True)
    (root / "inference" / "landing" / "out" / "_next" / "static").mkdir(parents=True, exist_ok=True)
    (root / "clipbot_inference_app.py").write_text(APP_SOURCE)
    target = root / "cache" / model_id
    target.mkdir(parents=True, exist_ok=True)
    for name in ("visual.onnx", "textual.onnx"):
        if not (target / name).exists():  # copied, never linked: a test may spoil the server's copy
            shutil.copyfile(model_dir / name, target / name)
    return root


@dataclass
class InferenceServer:
    """One server process; `url` is what goes into `INFERENCE_SERVER_URL`."""

    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "OFFLINE_MODE": "True",
            "USE_INFERENCE_MODELS": "False",
            "MODEL_CACHE_DIR": str(self.home / "cache"),
            "CORE_MODEL_CLIP_ENABLED": "True",
            "METRICS_ENABLED": "False",
            "DISABLE_VERSION_CHECK": "True",
            "TELEMETRY_USE_PERSISTENT_QUEUE": "False",
            "ENABLE_BUILDER": "False",
            "ENABLE_STREAM_API": "False",
            "OTEL_METRICS_ENABLED": "False",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(self.home),
            # Only CLIP: the server then skips importing the other models' code (a faster start).
            **dict.fromkeys(OTHER_MODELS, "False"),
        }
        env.pop("ROBOFLOW_API_KEY", None)
        # inference's offline latch, inherited from this test process once it imported inference,
        # would beat OFFLINE_MODE above: the server must decide from its own environment.
        env.pop(OFFLINE_LATCH_ENV, None)
        command = [sys.executable, "-m", "uvicorn", "clipbot_inference_app:app", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command,
            cwd=self.home,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.home / f"server-{self.port}.log", "wb"),  # noqa: SIM115  # the child owns it
            start_new_session=True,  # its own process group: killed with its children
        )

    async def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:  # noqa: ASYNC109
        """Until `/readiness` answers 200 (the process dying meanwhile fails at once, with its log)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"inference server on {self.port} exited:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/readiness", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.25)
        raise RuntimeError(f"inference server on {self.port} not ready in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        path = self.home / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server's process group: gone at once, mid-request, like a crashed machine."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


async def revive(servers: list[InferenceServer]) -> None:
    """Start again, on their own ports, those of `servers` a test killed (in parallel)."""
    dead = [server for server in servers if not server.alive]
    for server in dead:
        server.start()
    await asyncio.gather(*(server.wait_ready() for server in dead))


@contextlib.asynccontextmanager
async def inference_servers(
    count: int, model_dir: Path = TINY_MODEL_DIR, model_id: str = TINY_REMOTE_MODEL_ID
) -> AsyncIterator[list[InferenceServer]]:
    """`count` servers started in parallel, ready, and killed on the way out."""
    root = prepare_home(Path(tempfile.mkdtemp(prefix="inference-server-")), model_id, model_dir)
    servers = [InferenceServer(root) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        await asyncio.gather(*(server.wait_ready() for server in servers))
        yield servers
    finally:
        for server in servers:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)
