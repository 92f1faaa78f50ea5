"""A first run with no model cached, as a user starts it: `python -m bot similar` in a subprocess.

Inference reads `API_BASE_URL`, `MODEL_CACHE_DIR` and `OFFLINE_MODE` once per process,
and this test process imported it offline (tests/conftest.py), so each run is a
subprocess pointed at the Roboflow stand-in (`tests/fakeroboflow`), online, with an
empty cache: inference's own metadata request, our download, inference's cache
check and loading, and the answer, end to end.

The failing runs (always dropped, 403, 404, full disk, no network) are independent, so they run
side by side in one fixture; each must end in exit code 1 and one `error:` line.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.engine import ClipEngine
from bot.service import ClipService
from tests.fakeroboflow import FakeRoboflow
from tests.support.paths import REPO, TINY_MODEL_DIR
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow  # whole CLI runs that download the model

MODEL = "clip/tiny"
PHRASE = "a photo of a red circle"
OTHERS = ["red circle", "blue square", "a photo of a green triangle", "yellow circle"]
API_KEY = "rf-secret-key-0123456789"
#: Once this process has imported inference offline (tests/conftest.py), inference_models
#: latches that into the environment for child processes (`_ROBOFLOW_INFERENCE_OFFLINE_MODE_AT_PROCESS_START`)
#: and publishes Hugging Face/Ultralytics offline switches: a user's first run has none of them.
LATCH_PREFIX = "_ROBOFLOW_INFERENCE_"
NOT_INHERITED = (
    "OFFLINE_MODE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "YOLO_OFFLINE",
    "CLIP_MODEL_DIR",
    "DISCORD_TOKEN",
    "ROBOFLOW_API_KEY",
)


def run_similar(server: FakeRoboflow, cache: Path, *extra: str, env: dict[str, str] | None = None):
    """`python -m bot similar ... --json` online against `server`, with `cache` as MODEL_CACHE_DIR."""
    environment = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith(LATCH_PREFIX)}
    environment.update(
        {
            "PYTHONPATH": str(REPO),  # this checkout's bot, whatever the venv's editable install points at
            "API_BASE_URL": server.base_url,
            "MODEL_CACHE_DIR": str(cache),
            "CLIP_MODEL_ID": MODEL,
            "CLIP_EXECUTION_PROVIDERS": "CPUExecutionProvider",
            "MODEL_DOWNLOAD_RETRY_WAIT_S": "0.01",
            "MODEL_DOWNLOAD_LOG_EVERY_S": "0.05",
        }
    )
    environment.update(env or {})
    cache.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "bot", "similar", PHRASE, "--others", ", ".join(OTHERS), "--json", *extra],
        cwd=cache.parent,  # no .env there
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """1: a retry may succeed; 78 (EX_CONFIG): a setting is wrong, a restart cannot fix it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert result.stderr.strip() == lines[0], f"nothing but the error line by default: {result.stderr!r}"
    return lines[0]


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Five failing first runs, side by side; the dropped one's server and cache stay for the resume test."""
    root = tmp_path_factory.mktemp("download-failures")
    dropping = FakeRoboflow({MODEL: TINY_MODEL_DIR})
    dropping.faults.drop_after = 1_500_000
    dropping.faults.drop_times = None  # every time
    dropping.faults.drop_file = "textual.onnx"
    keyed = FakeRoboflow({MODEL: TINY_MODEL_DIR}, valid_keys=("another-key",))
    healthy = FakeRoboflow({MODEL: TINY_MODEL_DIR})
    servers = [dropping, keyed, healthy]
    for server in servers:
        server.start()
    disk = root / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    runs = {
        "dropped": (dropping, root / "dropped" / "cache", ["--model-id", MODEL], {"MODEL_DOWNLOAD_TRIES": "2"}),
        "403": (keyed, root / "403" / "cache", [], {"ROBOFLOW_API_KEY": API_KEY}),
        "404": (healthy, root / "404" / "cache", ["--model-id", "clip/no-such-model"], {}),
    }
    if mounted.returncode == 0:
        runs["full"] = (healthy, disk / "cache", [], {})
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    runs["unreachable"] = (
        healthy,
        root / "unreachable" / "cache",
        [],
        {"API_BASE_URL": f"http://127.0.0.1:{closed_port}", "MODEL_DOWNLOAD_TRIES": "2"},
    )
    try:
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {
                name: pool.submit(run_similar, server, cache, *extra, env=env)
                for name, (server, cache, extra, env) in runs.items()
            }
            results: dict[str, object] = {name: future.result() for name, future in futures.items()}
        results["dropping_server"] = dropping
        results["dropped_cache"] = runs["dropped"][1]
        results["disk"] = disk if mounted.returncode == 0 else None
        yield results
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        for server in servers:
            server.stop()


def offline_answer() -> dict[str, float]:
    """The same query through the offline `CLIP_MODEL_DIR` path on the same tiny model (as the CLI runs it)."""

    async def ask() -> dict[str, float]:
        settings = make_settings()
        engine = ClipEngine(settings, tune_sessions=False)
        try:
            await engine.start()
            ranking = await ClipService(engine, settings).similar(PHRASE, OTHERS)
        finally:
            await engine.aclose()
        return {score.label: score.cosine for score in ranking.scores}

    return asyncio.run(ask())


def test_always_dropped_download_fails_in_one_line_and_keeps_the_partial_file(failures: dict[str, object]) -> None:
    line = assert_one_error_line(failures["dropped"])  # type: ignore[arg-type]
    assert re.fullmatch(
        r"error: Downloading CLIP clip/tiny failed after 2 tries \(connection dropped at [\d.]+ of 7\.0 MB\); "
        r"run again to resume\.",
        line,
    ), line
    folder = failures["dropped_cache"] / "clip" / "tiny"  # type: ignore[operator]
    assert (folder / "textual.onnx.partial").stat().st_size > 0
    assert not (folder / "textual.onnx").exists()


def test_next_run_resumes_downloads_loads_and_answers_like_the_offline_path(failures: dict[str, object]) -> None:
    server: FakeRoboflow = failures["dropping_server"]  # type: ignore[assignment]
    cache: Path = failures["dropped_cache"]  # type: ignore[assignment]
    folder = cache / "clip" / "tiny"
    kept = (folder / "textual.onnx.partial").stat().st_size
    server.seen.clear()
    # Healthy again, except that visual.onnx drops once: resumed within this run too.
    server.faults.drop_times = 1
    server.faults.drop_file = "visual.onnx"
    server.faults.drop_after = 300_000  # past the first 256 KiB chunk, so some of it is kept
    server.faults.bytes_per_s = 20e6  # long enough for a progress line or two
    result = run_similar(server, cache, "-v")
    assert result.returncode == 0, result.stderr

    ranges = {(r.path.rsplit("/", 1)[-1], r.range) for r in server.requests("file")}
    assert ("textual.onnx", f"bytes={kept}-") in ranges, "resumed from the previous run's partial file"
    assert ("visual.onnx", "bytes=262144-") in ranges, "dropped once in this run, resumed after its first chunk"
    metadata = server.requests("metadata")
    assert metadata and {"nocache", "device", "dynamic"} <= set(metadata[0].query), "inference's own request"
    for name in ("visual.onnx", "textual.onnx"):
        assert (folder / name).read_bytes() == (TINY_MODEL_DIR / name).read_bytes()
    assert not list(folder.glob("*.partial*"))

    # No terminal here: progress is logged (shown with -v).
    assert re.search(r"Downloading CLIP clip/tiny: \d+/7 MB \(\d+%\)", result.stderr), result.stderr
    assert "Resuming the download of CLIP clip/tiny" in result.stderr

    online = {row["label"]: row["cosine"] for row in json.loads(result.stdout)["results"]}
    offline = offline_answer()
    assert online.keys() == offline.keys() == set(OTHERS)
    for label in OTHERS:
        assert online[label] == pytest.approx(offline[label], abs=1e-6)


def test_a_refused_api_key_is_one_line_without_the_key(failures: dict[str, object]) -> None:
    line = assert_one_error_line(failures["403"], 78)  # type: ignore[arg-type]
    assert line.startswith("error: Roboflow refused CLIP model clip/tiny (HTTP 403); check ROBOFLOW_API_KEY")
    assert API_KEY not in failures["403"].stderr  # type: ignore[attr-defined]


def test_an_unknown_model_is_one_line(failures: dict[str, object]) -> None:
    line = assert_one_error_line(failures["404"], 78)  # type: ignore[arg-type]
    assert line.startswith("error: Roboflow has no CLIP model clip/no-such-model (HTTP 404); check CLIP_MODEL_ID")


def test_a_full_disk_is_one_line_naming_the_folder_and_the_space_needed(failures: dict[str, object]) -> None:
    if failures["disk"] is None:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    line = assert_one_error_line(failures["full"])  # type: ignore[arg-type]
    folder = failures["disk"] / "cache" / "clip" / "tiny"  # type: ignore[operator]
    assert re.fullmatch(
        rf"error: Not enough space in {re.escape(str(folder))} for CLIP clip/tiny: \d+ MB needed, [\d.]+ MB free\. "
        r"Free some space or point MODEL_CACHE_DIR at a larger disk\.",
        line,
    ), line


def test_no_network_is_one_line_after_the_tries(failures: dict[str, object]) -> None:
    line = assert_one_error_line(failures["unreachable"])  # type: ignore[arg-type]
    assert re.fullmatch(
        r"error: Could not reach Roboflow \(127\.0\.0\.1:\d+\) to download CLIP clip/tiny after 2 tries; "
        r"check the network, or set CLIP_MODEL_DIR to a folder with visual\.onnx and textual\.onnx\.",
        line,
    ), line
