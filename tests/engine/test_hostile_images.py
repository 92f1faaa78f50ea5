"""Hostile uploads end with an answer or one clear line, within the decode budget and memory cap.

Every file is generated here (`tests.support.badimages`). Decoding runs in the engine's worker
processes (`bot.engine.decoding`), as in the bot; the model is the tiny trained CLIP.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.photos import make_photo
from bot.engine import ClipEngine
from bot.engine.decoding import ImageWorkers, work
from bot.engine.images import decode_image
from bot.engine.preparation import THUMBNAIL_SIDE, Prepared, PrepareSpec
from bot.errors import ImageError
from bot.service import ClipService
from tests.support import decode_hooks
from tests.support.badimages import (
    COLOUR_KEY_RIGHT,
    big_progressive_jpeg,
    colour_key_pngs,
    deep_png,
    deep_tiff,
    gif_comment_bomb,
    jpeg_scan_bomb,
    malformed_exif_jpegs,
    negative_width_bmp,
    tiff_strip_bomb,
)
from tests.support.paths import REPO, TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR, make_settings
from tests.support.shapes import CLASSES, shape_png

#: The decode budget in these tests (the bot's default is 5 s).
BUDGET_S = 1.0
#: What a kill costs on top: pebble checks budgets every 0.1 s, then kills and replaces the worker.
KILL_SLACK_S = 1.0
MAX_PIXELS = 50_000_000

BOMBS = {
    "gif-600k-comment-blocks": gif_comment_bomb,
    "jpeg-2500-scans": jpeg_scan_bomb,
    "tiff-1m-strips": tiff_strip_bomb,
}


@pytest.fixture(scope="module")
async def hostile_engine() -> AsyncIterator[ClipEngine]:
    """An engine whose workers may crash on demand (`tests.support.decode_hooks`), with a 1 s budget."""
    engine = ClipEngine(make_settings(decode_timeout_s=BUDGET_S), tune_sessions=False)
    engine.workers.task = decode_hooks.crash_on_magic
    await engine.start()
    yield engine
    await engine.aclose()


@pytest.fixture(scope="module")
def hostile(hostile_engine: ClipEngine) -> ClipService:
    return ClipService(hostile_engine, hostile_engine.settings)


@pytest.fixture(scope="module")
def roomy_workers() -> Iterator[ImageWorkers]:
    """One worker with the default memory cap and time for a 49 MP picture, reporting its peak."""
    workers = ImageWorkers(1, timeout_s=60, memory_mb=1024, task=decode_hooks.work_with_peak)  # type: ignore[arg-type]
    workers.start()
    yield workers
    workers.close()


# ---------------------------------------------------------------------------- time budget
@pytest.mark.parametrize("name", sorted(BOMBS))
async def test_a_decompression_bomb_is_stopped_at_the_budget_with_one_line(
    hostile: ClipService, hostile_engine: ClipEngine, name: str
) -> None:
    data = BOMBS[name]()
    assert len(data) < 10_000_000, "within Discord's upload size"
    replaced = hostile_engine.workers.replaced
    started = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        await hostile.classify(data, CLASSES, None)
    elapsed = time.perf_counter() - started
    assert str(caught.value) == (
        f"That image takes too long to decode (over {BUDGET_S:g} s); try a PNG or JPEG export of it."
    )
    assert BUDGET_S <= elapsed < BUDGET_S + KILL_SLACK_S, f"answered after {elapsed:.2f} s"
    assert hostile_engine.workers.replaced == replaced + 1, "the worker was killed and replaced"
    ranking = await hostile.classify(shape_png("red circle", 1), CLASSES, None)
    assert ranking.best.label == "red circle", "the next request is served"


async def test_other_requests_are_not_held_by_a_bomb(hostile: ClipService) -> None:
    """While one upload decodes for its whole budget, other users' images are answered at once."""
    bomb = asyncio.create_task(hostile.classify(gif_comment_bomb(), CLASSES, None))
    await asyncio.sleep(0.1)  # the bomb is in a worker (and left its batch after IN_BATCH_WAIT_S)
    started = time.perf_counter()
    labels = [CLASSES[i] for i in range(5)]
    rankings = await asyncio.gather(
        *(hostile.classify(shape_png(label, 10 + i), CLASSES, None) for i, label in enumerate(labels))
    )
    elapsed = time.perf_counter() - started
    assert [r.best.label for r in rankings] == labels
    assert not bomb.done(), f"the others finished ({elapsed:.2f} s) while the bomb was still decoding"
    with pytest.raises(ImageError, match="too long to decode"):
        await bomb


# ---------------------------------------------------------------------------- crashes
@pytest.mark.parametrize("magic", [decode_hooks.SEGFAULT, decode_hooks.ABORT], ids=["segfault", "abort"])
async def test_a_crashing_decoder_fails_that_request_only(
    hostile: ClipService, hostile_engine: ClipEngine, magic: bytes
) -> None:
    replaced = hostile_engine.workers.replaced
    crash = hostile.classify(magic + b" pretend to be an image", CLASSES, None)
    others = [hostile.classify(shape_png(CLASSES[i], 40 + i), CLASSES, None) for i in range(3)]
    results = await asyncio.gather(crash, *others, return_exceptions=True)
    assert isinstance(results[0], ImageError)
    assert str(results[0]) == "That image crashed the image decoder; try a PNG or JPEG export of it."
    assert [r.best.label for r in results[1:]] == [CLASSES[i] for i in range(3)]  # type: ignore[union-attr]
    assert hostile_engine.workers.replaced == replaced + 1
    for attempt in range(3):  # the replaced pool keeps serving
        ranking = await hostile.classify(shape_png("blue square", 50 + attempt), CLASSES, None)
        assert ranking.best.label == "blue square"


async def test_workers_do_not_import_the_model_stack() -> None:
    """Workers fork from a light server: no torch, inference or onnxruntime in them."""
    workers = ImageWorkers(1, timeout_s=30, memory_mb=1024, task=decode_hooks.heavy_modules)  # type: ignore[arg-type]
    try:
        future = workers.submit(shape_png("red square", 2), PrepareSpec(crop=224, max_pixels=MAX_PIXELS))
        assert await asyncio.wrap_future(future) == []
    finally:
        workers.close()


# ---------------------------------------------------------------------------- memory
@pytest.mark.parametrize("name", ["16-bit-png", "float-tiff", "int32-tiff"])
async def test_a_49_megapixel_deep_picture_decodes_under_the_memory_cap(roomy_workers: ImageWorkers, name: str) -> None:
    """~60 KB files of 49 MP 16-bit, float and 32-bit samples: as float64 copies they took 2.4 GB."""
    data = {"16-bit-png": deep_png, "float-tiff": lambda: deep_tiff("float"), "int32-tiff": lambda: deep_tiff("int32")}[
        name
    ]()
    spec = PrepareSpec(crop=224, max_pixels=MAX_PIXELS, thumbnail=THUMBNAIL_SIDE)
    answer, peak_mb, limit = await asyncio.wrap_future(roomy_workers.submit(data, spec))  # type: ignore[misc]
    assert limit == 1024 << 20, "the worker ran under the cap"
    assert isinstance(answer, Prepared), answer
    print(f"\n{name}: {len(data) / 1e3:.0f} KB file, worker peak RSS {peak_mb:.0f} MB (cap 1024 MB)")
    crop = answer.array()
    assert crop.shape == (224, 224, 3)
    np.testing.assert_allclose(crop[112, 112], (128, 128, 128), atol=3)  # the ramp's middle
    assert crop[112, 2, 0] < crop[112, 221, 0], "dark left, light right"
    assert peak_mb < 900


async def test_a_picture_over_the_memory_cap_is_refused_as_too_complex() -> None:
    """Whether Python's allocation fails (float samples) or libjpeg's (it says "broken data stream")."""
    workers = ImageWorkers(1, timeout_s=60, memory_mb=256)
    try:
        for data in (deep_tiff("float"), big_progressive_jpeg()):
            future = workers.submit(data, PrepareSpec(crop=224, max_pixels=MAX_PIXELS))
            with pytest.raises(ImageError, match="too complex to decode within my memory limit"):
                await asyncio.wrap_future(future)
        ok = await asyncio.wrap_future(workers.submit(shape_png("red circle", 3), PrepareSpec(224, MAX_PIXELS)))
        assert ok.array().shape == (224, 224, 3), "the worker goes on serving"
    finally:
        workers.close()


# ---------------------------------------------------------------------------- metadata, modes, reasons
@pytest.mark.parametrize("name", sorted(malformed_exif_jpegs()))
async def test_malformed_exif_is_ignored(hostile: ClipService, name: str) -> None:
    """Orientation applied when it reads as 2..8, the picture as stored otherwise; never an error."""
    data = malformed_exif_jpegs()[name]
    upright = name in ("rational-minus-one-over-zero", "orientation-as-rational", "exif-ifd-loop", "gps-ifd-garbage")
    image = decode_image(data, max_pixels=MAX_PIXELS)
    assert image.size == ((40, 80) if upright else (80, 40))
    top_left = np.asarray(image)[5, 5]
    assert top_left[0] > 200 and top_left[2] < 60, "red is top-left either way"
    ranking = await hostile.classify(data, CLASSES, None)
    assert len(ranking.scores) == len(CLASSES)


@pytest.mark.parametrize("name", sorted(colour_key_pngs()))
async def test_every_kind_of_transparency_is_shown_on_white(hostile: ClipService, name: str) -> None:
    data = colour_key_pngs()[name]
    pixels = np.asarray(decode_image(data, max_pixels=MAX_PIXELS))
    np.testing.assert_array_equal(pixels[24, 10], (255, 255, 255))
    np.testing.assert_allclose(pixels[24, 50], COLOUR_KEY_RIGHT[name], atol=1)
    ranking = await hostile.classify(data, CLASSES, None)
    assert ranking.thumbnail is not None
    thumbnail = np.asarray(Image.open(io.BytesIO(ranking.thumbnail)))
    assert thumbnail[24, 6].min() > 245, "white in the thumbnail too"


async def test_a_negative_width_bmp_is_corrupt_not_too_large(hostile: ClipService) -> None:
    with pytest.raises(ImageError) as caught:
        await hostile.classify(negative_width_bmp(), CLASSES, None)
    assert "corrupt" in str(caught.value) and "too large" not in str(caught.value)


def test_decoder_warnings_are_captured_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    """Pillow warns about corrupt EXIF; in a worker that becomes a note, logged at debug."""
    data = malformed_exif_jpegs()["ifd-pointer-past-the-end"]
    prepared = work(data, PrepareSpec(crop=224, max_pixels=MAX_PIXELS))
    assert any("EXIF" in note for note in prepared.notes), prepared.notes
    out, err = capfd.readouterr()
    assert out == "" and err == ""


async def test_decoder_notes_reach_the_debug_log_once(
    hostile: ClipService, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="bot.engine"):
        await hostile.classify(malformed_exif_jpegs()["ifd-pointer-past-the-end"], CLASSES, None)
    said = [r for r in caplog.records if r.getMessage().startswith("image decoder said:")]
    assert len(said) == 1 and said[0].levelno == logging.DEBUG and "EXIF" in said[0].getMessage()
    assert "Warning" not in capfd.readouterr().err


# ---------------------------------------------------------------------------- thumbnail
async def test_classify_returns_a_small_jpeg_thumbnail_of_the_picture(hostile: ClipService) -> None:
    photo = make_photo(1280, 960, seed=4)
    ranking = await hostile.classify(photo, CLASSES, None)
    assert ranking.thumbnail is not None and ranking.thumbnail[:3] == b"\xff\xd8\xff"
    thumbnail = Image.open(io.BytesIO(ranking.thumbnail))
    assert thumbnail.format == "JPEG" and thumbnail.mode == "RGB" and thumbnail.size == (256, 192)
    assert len(ranking.thumbnail) < 30_000
    expected = Image.open(io.BytesIO(photo)).convert("RGB").resize((256, 192), Image.Resampling.BICUBIC)
    difference = np.abs(np.asarray(thumbnail, dtype=int) - np.asarray(expected, dtype=int)).mean()
    assert difference < 8, "the thumbnail is the picture"
    without = await hostile.classify(photo, CLASSES, None, thumbnail=False)
    assert without.thumbnail is None
    assert [s.cosine for s in without.scores] == [s.cosine for s in ranking.scores]


# ---------------------------------------------------------------------------- the CLI
@pytest.mark.slow  # a whole CLI run that loads the model
def test_cli_answers_a_decompression_bomb_with_one_error_line(tmp_path: Path) -> None:
    """One family only: each CLI run loads the model in a fresh process (~5-15 s on 2 shared
    cores); the others take the same path through the engine, tested above."""
    name, reason, data = "gif-bomb.gif", "too long to decode (over 1 s)", gif_comment_bomb()
    (tmp_path / name).write_bytes(data)
    environment = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "CLIP_MODEL_DIR")}
    environment.update(
        MODEL_CACHE_DIR=str(TEST_CACHE_DIR), CLIP_EXECUTION_PROVIDERS="CPUExecutionProvider", DECODE_TIMEOUT_S="1"
    )
    # This checkout's `bot`, not the one the shared virtualenv's editable install points at.
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bot", "classify", name, "--labels", "a, b", "--model-dir", str(TINY_MODEL_DIR)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and reason in last, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert elapsed < 60


async def test_a_pool_whose_workers_all_died_is_replaced() -> None:
    """Killed from outside while idle (say, by the kernel's OOM killer), every worker at once:
    pebble gives the pool up, and the next upload gets a new one."""
    import multiprocessing
    import signal

    others = {child.pid for child in multiprocessing.active_children()}  # other tests' workers live on
    workers = ImageWorkers(2, timeout_s=30, memory_mb=1024)
    try:
        spec = PrepareSpec(crop=224, max_pixels=MAX_PIXELS)
        await asyncio.wrap_future(workers.submit(shape_png("red circle", 5), spec))
        pool = workers._pool
        ours = [child.pid for child in multiprocessing.active_children() if child.pid not in others]
        assert len(ours) == 2
        for pid in ours:
            os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
        for _ in range(100):  # pebble looks at its workers every 0.1 s
            if not pool.active:
                break
            await asyncio.sleep(0.05)
        assert not pool.active, "pebble noticed"
        prepared = await asyncio.wrap_future(workers.submit(shape_png("red circle", 6), spec))
        assert prepared.array().shape == (224, 224, 3)
        assert workers._pool is not pool
    finally:
        workers.close()
