"""The model downloader against the Roboflow stand-in: resume, verification, one-line failures, progress.

These run `ModelDownload` in this process with URLs from the stand-in's metadata
endpoint; `tests/engine/test_model_download_e2e.py` runs the whole path (inference's own
metadata request, the cache, loading, answering) in subprocesses.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from bot.engine.download_progress import DownloadProgress, Reporter, describe_eta, describe_progress
from bot.engine.model_download import CLIP_FILES
from bot.engine.transfer import ModelDownload
from bot.errors import StartupError
from tests.fakeroboflow import FakeRoboflow
from tests.support.paths import TINY_MODEL_DIR

MODEL = "clip/tiny"
SIZES = {name: (TINY_MODEL_DIR / name).stat().st_size for name in CLIP_FILES}
TOTAL = sum(SIZES.values())


@pytest.fixture
def server() -> Iterator[FakeRoboflow]:
    with FakeRoboflow({MODEL: TINY_MODEL_DIR}) as fake:
        yield fake


def stand_in_urls(server: FakeRoboflow, model_id: str = MODEL) -> Callable[[bool], dict[str, str]]:
    """What `_inference_urls` returns, but asked with plain requests (inference here is offline)."""

    def get_urls(fresh: bool) -> dict[str, str]:
        response = requests.get(
            f"{server.base_url}/core_model/{model_id}",
            params={"nocache": "true", "device": "test", "dynamic": "true"},
            timeout=10,
        )
        response.raise_for_status()
        return {url.split("?")[0].rsplit("/", 1)[-1]: url for url in response.json()["weights"].values()}

    return get_urls


def make_download(server: FakeRoboflow, folder: Path, **options: object) -> ModelDownload:
    values: dict[str, object] = {
        "label": MODEL,
        "folder": folder,
        "get_urls": stand_in_urls(server),
        "progress": DownloadProgress(MODEL),
        "tries": 3,
        "timeout_s": 10.0,
        "retry_wait_s": 0.01,
        "required": CLIP_FILES,
    }
    values.update(options)
    return ModelDownload(**values)  # type: ignore[arg-type]


def assert_model_files(folder: Path) -> None:
    """Both files in place, byte for byte the served ones, and nothing partial left."""
    for name in CLIP_FILES:
        assert (folder / name).read_bytes() == (TINY_MODEL_DIR / name).read_bytes(), name
    assert sorted(p.name for p in folder.iterdir()) == sorted(CLIP_FILES)


def test_clip_files_are_what_inference_requires() -> None:
    from inference.models import Clip

    assert sorted(CLIP_FILES) == sorted(Clip.get_infer_bucket_file_list(None))  # type: ignore[arg-type]


def test_download_from_empty_folder(server: FakeRoboflow, tmp_path: Path) -> None:
    download = make_download(server, tmp_path / "m")
    download.run()
    assert_model_files(tmp_path / "m")
    snap = download.progress.snapshot()
    assert (snap.state, snap.done, snap.total, snap.resumed) == ("done", TOTAL, TOTAL, 0)


def test_dropped_connection_resumes_with_a_range_request(server: FakeRoboflow, tmp_path: Path) -> None:
    server.faults.drop_after = 2_000_000
    server.faults.drop_file = "textual.onnx"
    make_download(server, tmp_path).run()
    assert_model_files(tmp_path)
    textual = [r for r in server.requests("file") if r.path.endswith("/textual.onnx") and r.range != "bytes=0-0"]
    assert [r.status for r in textual] == [200, 206]
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", textual[1].range or "")[1])  # type: ignore[index]
    assert 0 < resumed_at <= 2_000_000, "resumed from what was written, not from the start"
    assert textual[1].if_range is not None, "the resume is guarded by the ETag"


def test_always_dropping_fails_in_one_line_then_a_later_run_resumes(server: FakeRoboflow, tmp_path: Path) -> None:
    server.faults.drop_after = 1_000_000
    server.faults.drop_times = None  # every response
    server.faults.drop_file = "textual.onnx"
    with pytest.raises(StartupError) as failed:
        make_download(server, tmp_path, tries=3).run()
    message = str(failed.value)
    assert "\n" not in message
    assert re.fullmatch(
        r"Downloading CLIP clip/tiny failed after 3 tries \(connection dropped at [\d.]+ of 7\.0 MB\); "
        r"run again to resume\.",
        message,
    ), message
    partial = tmp_path / "textual.onnx.partial"
    kept = partial.stat().st_size
    assert 0 < kept < SIZES["textual.onnx"]
    assert not (tmp_path / "textual.onnx").exists(), "a partial file never takes the real name"

    server.faults.drop_after = None
    server.seen.clear()
    download = make_download(server, tmp_path)
    download.run()
    assert_model_files(tmp_path)
    ranges = [r.range for r in server.requests("file") if r.path.endswith("/textual.onnx")]
    assert f"bytes={kept}-" in ranges
    assert download.progress.snapshot().resumed >= kept


def test_server_ignoring_range_restarts_the_file_cleanly(server: FakeRoboflow, tmp_path: Path) -> None:
    (tmp_path / "textual.onnx.partial").write_bytes(b"\0" * 500_000)  # not even the right bytes
    server.faults.ignore_range = True
    download = make_download(server, tmp_path)
    download.run()
    assert_model_files(tmp_path)
    assert download.progress.snapshot().done == TOTAL


def test_a_body_that_fails_its_md5_is_never_put_in_place(server: FakeRoboflow, tmp_path: Path) -> None:
    server.faults.corrupt_files = {"visual.onnx"}
    with pytest.raises(StartupError, match=r"failed after 2 tries \(visual\.onnx failed its MD5 check"):
        make_download(server, tmp_path, tries=2).run()
    assert not (tmp_path / "visual.onnx").exists()
    assert not (tmp_path / "visual.onnx.partial").exists()


def test_a_refused_link_is_fetched_anew_once(server: FakeRoboflow, tmp_path: Path) -> None:
    server.faults.file_status = {"visual.onnx": 403}  # e.g. the signed link expired
    server.faults.file_status_times = 1
    make_download(server, tmp_path).run()
    assert_model_files(tmp_path)
    assert len(server.requests("metadata")) == 2


@pytest.mark.parametrize(("status", "expected"), [(404, "has no visual.onnx"), (403, "refused visual.onnx")])
def test_file_refused_is_one_line_without_the_signed_url(
    server: FakeRoboflow, tmp_path: Path, status: int, expected: str
) -> None:
    server.faults.file_status = {"visual.onnx": status}
    with pytest.raises(StartupError) as failed:
        make_download(server, tmp_path).run()
    message = str(failed.value)
    assert expected in message and f"HTTP {status}" in message and "clip/tiny" in message
    assert "\n" not in message and "X-Goog" not in message and "?" not in message


def test_exiting_stops_the_download_and_keeps_the_partial_file(
    server: FakeRoboflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopping = threading.Event()  # what the backend sets on shutdown
    server.faults.bytes_per_s = 2e6

    def stop_once_under_way(name: str, length: int) -> None:
        if length > 1:
            threading.Timer(0.3, stopping.set).start()

    server.faults.on_body_start = stop_once_under_way
    with pytest.raises(StartupError) as failed:
        make_download(server, tmp_path, stop=stopping).run()
    assert re.fullmatch(
        r"Stopped downloading CLIP clip/tiny at [\d.]+ of 7\.0 MB \(the process is exiting\); run again to resume\.",
        str(failed.value),
    ), failed.value
    assert (tmp_path / "textual.onnx.partial").stat().st_size > 0
    assert not (tmp_path / "textual.onnx").exists()


# ---------------------------------------------------------------- full disk
@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real, small file system (root only): writes past its size fail with ENOSPC."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_too_little_space_is_refused_before_downloading(server: FakeRoboflow, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "4m") as disk, pytest.raises(StartupError) as failed:
        make_download(server, disk / "clip" / "tiny").run()
    message = str(failed.value)
    assert message.startswith(f"Not enough space in {disk}/clip/tiny for CLIP clip/tiny: ")
    assert "MB needed" in message and "MODEL_CACHE_DIR" in message
    assert not [r for r in server.requests("file") if r.range != "bytes=0-0"], "nothing was downloaded"


def test_disk_filling_up_during_the_download_is_one_line(server: FakeRoboflow, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "24m") as disk:
        folder = disk / "clip" / "tiny"

        def fill_disk(name: str, length: int) -> None:  # someone fills the disk once the download is under way
            if length <= 1:
                return  # the one-byte size probe
            server.faults.on_body_start = None
            with (disk / "filler").open("wb") as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 1_000_000)

        server.faults.on_body_start = fill_disk
        with pytest.raises(StartupError) as failed:
            make_download(server, folder).run()
        message = str(failed.value)
        assert message.startswith(f"The disk holding {folder} is full (")
        assert "MB of CLIP clip/tiny still to download" in message and "run again to resume" in message
        assert not (folder / "textual.onnx").exists() and not (folder / "visual.onnx").exists()


def test_disk_full_error_is_recognised() -> None:
    from bot.engine.transfer import _is_disk_full

    assert _is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not _is_disk_full(OSError(errno.EACCES, "Permission denied"))


# ------------------------------------------------------------------ progress
def test_without_a_terminal_progress_is_logged_every_few_seconds(
    server: FakeRoboflow, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults.bytes_per_s = 20e6  # ~0.35 s for the 7 MB
    progress = DownloadProgress(MODEL)
    reporter = Reporter(MODEL, progress, stream=io.StringIO(), every_s=0.05)
    assert not reporter.on_terminal
    with caplog.at_level(logging.INFO, logger="bot.engine"):
        make_download(server, tmp_path, progress=progress, reporter=reporter).run()
    lines = [r.getMessage() for r in caplog.records]
    periodic = [line for line in lines if re.fullmatch(r"Downloading CLIP clip/tiny: \d+/7 MB \(\d+%\).*", line)]
    assert periodic, lines
    assert any(line.startswith("Downloaded CLIP clip/tiny (7.0 MB) in ") for line in lines)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_bar(
    server: FakeRoboflow, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = FakeTerminal()
    progress = DownloadProgress(MODEL)
    reporter = Reporter(MODEL, progress, stream=stream, every_s=0.01)
    assert reporter.on_terminal
    with caplog.at_level(logging.INFO, logger="bot.engine"):
        make_download(server, tmp_path, progress=progress, reporter=reporter).run()
    shown = stream.getvalue()
    assert "CLIP clip/tiny" in shown and "100%" in shown and "6.98MB/6.98MB" in shown and "B/s" in shown, shown
    assert not [r for r in caplog.records if r.getMessage().startswith("Downloading CLIP clip/tiny:")]


def test_progress_snapshot_rate_and_eta() -> None:
    progress = DownloadProgress(MODEL)
    assert progress.snapshot().state == "idle"
    progress.begin(total=10_000_000, done=2_000_000)
    first = progress.snapshot()
    assert (first.done, first.total, first.resumed, first.rate, first.eta_s) == (
        2_000_000,
        10_000_000,
        2_000_000,
        None,
        None,
    )
    time.sleep(0.25)
    progress.advance(1_000_000)
    snap = progress.snapshot()
    assert snap.rate is not None and 0 < snap.rate <= 1_000_000 / 0.25
    assert snap.eta_s == pytest.approx(7_000_000 / snap.rate)
    assert snap.fraction == pytest.approx(0.3)


def test_describe() -> None:
    assert describe_eta(None) == ""
    assert describe_eta(0.2) == "about 1 s left"
    assert describe_eta(42) == "about 42 s left"
    assert describe_eta(150) == "about 2 min left"
    assert describe_eta(3 * 3600 + 120) == "about 3 h 2 min left"
    progress = DownloadProgress("clip/ViT-B-16")
    progress.begin(total=598_000_000, done=120_000_000)
    assert describe_progress("clip/ViT-B-16", progress.snapshot()) == "Downloading CLIP clip/ViT-B-16: 120/598 MB (20%)"
