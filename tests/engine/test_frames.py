"""Clips and animations: which frames are used, how they are averaged, and the bounds on them.

Frame choice is read back from numbered clips (frame i painted grey level 10 i); averaging and
ranking use the tiny trained CLIP through the real engine and decode workers.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from bot.engine import ClipEngine, frames
from bot.engine.decoding import ImageWorkers
from bot.engine.filetypes import clip_format, image_format
from bot.engine.frames import FrameLimits, decode_frames, mean_of_frames, sample_indices, sample_times
from bot.engine.preparation import PrepareSpec, prepare
from bot.errors import ImageError
from bot.service import ClipService
from tests.support import clips
from tests.support.shapes import CLASSES, shape_png


def levels(data: bytes, limits: FrameLimits | None = None) -> list[int] | None:
    """The numbered frames `decode_frames` chose (a lossy codec's grey read back to its number)."""
    chosen = decode_frames(data, limits or FrameLimits(), lambda image: int(np.asarray(image)[4, 4, 0]))
    return None if chosen is None else [round(level / clips.LEVEL_STEP) for level in chosen]


# ------------------------------------------------------------------------------ choosing
def test_frames_are_the_middles_of_equal_parts() -> None:
    assert sample_indices(24, 8) == [1, 4, 7, 10, 13, 16, 19, 22]
    assert sample_indices(3, 8) == [0, 1, 2], "a short animation: every frame"
    assert sample_times(0.0, 4.0, 4) == [0.5, 1.5, 2.5, 3.5]


@pytest.mark.parametrize("container", ["mp4", "mov", "webm"])
def test_a_clip_gives_eight_frames_spread_by_timestamp(container: str) -> None:
    data = clips.encode_clip(clips.numbered_frames(24), container)  # 3 s at 8 frames a second
    assert clip_format(data) is not None and image_format(data) is None, "sniffed as a clip, not a picture"
    # targets at 3 s x (i + 0.5) / 8: 0.19 s, 0.56 s, ...; the frames on screen then
    assert levels(data) == [1, 4, 7, 10, 13, 16, 19, 22]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animation_gives_eight_frames_spread_by_index(fmt: str) -> None:
    assert levels(clips.animation(clips.numbered_frames(24), fmt)) == [1, 4, 7, 10, 13, 16, 19, 22]


def test_a_long_clips_key_frames_are_used_when_there_are_enough() -> None:
    """Key frames every 3 frames: the key frame on screen at each target, nothing else decoded."""
    data = clips.encode_clip(clips.numbered_frames(24), "webm", gop=3)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        keys = [round(float(p.pts * p.time_base) * 8) for p in container.demux(stream) if p.is_keyframe and p.size]
    assert keys == list(range(0, 24, 3))
    assert levels(data) == [0, 3, 6, 9, 12, 15, 18, 21]


def test_sparse_key_frames_fall_back_to_every_frame() -> None:
    """One key frame in 24 (fewer than half the frames wanted): every frame decoded up to each target."""
    assert levels(clips.encode_clip(clips.numbered_frames(24), "webm", gop=100)) == [1, 4, 7, 10, 13, 16, 19, 22]


def test_a_clip_too_large_to_decode_whole_keeps_its_few_key_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key frames every 10 frames give 3 of the 8 wanted; decoding every frame would pass the bound."""
    data = clips.encode_clip(clips.numbered_frames(24), "webm", gop=10)
    assert levels(data) == [1, 4, 7, 10, 13, 16, 19, 22], "small enough: every frame decoded"
    monkeypatch.setattr(frames, "FULL_DECODE_PIXELS", 24 * 32 * 32 - 1)
    assert levels(data) == [0, 10, 20]


def test_a_clip_that_declares_no_length_is_sampled_over_all_of_it() -> None:
    data = clips.encode_clip(clips.numbered_frames(24), "webm", live="1")  # a live stream: no duration
    chosen = levels(data)
    assert chosen is not None and len(chosen) == 8 and chosen == sorted(set(chosen))
    assert chosen[0] <= 2 and chosen[-1] >= 20, f"spread over the whole clip: {chosen}"


def test_a_short_clip_gives_each_of_its_frames_once() -> None:
    assert levels(clips.encode_clip(clips.numbered_frames(3))) == [0, 1, 2]


def test_the_frame_count_is_a_setting() -> None:
    assert levels(clips.encode_clip(clips.numbered_frames(24)), FrameLimits(frames=3)) == [4, 12, 20]
    assert levels(clips.encode_clip(clips.numbered_frames(8)), FrameLimits(frames=8)) == list(range(8))


def test_still_pictures_and_one_frame_gifs_are_not_clips() -> None:
    still_gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(still_gif, format="GIF")
    assert decode_frames(still_gif.getvalue(), FrameLimits(), lambda image: image) is None
    assert decode_frames(shape_png("red circle", 1), FrameLimits(), lambda image: image) is None


def test_each_frame_is_cropped_like_a_still() -> None:
    frames = clips.shape_frames(["red circle", "blue square"])
    prepared = prepare(clips.animation(frames, "PNG"), PrepareSpec(crop=32, max_pixels=10**8, thumbnail=64))
    assert prepared.frames == 2 and prepared.arrays().shape == (2, 32, 32, 3)
    for frame, crop in zip(frames, prepared.arrays(), strict=True):
        still = prepare(_png(frame), PrepareSpec(crop=32, max_pixels=10**8))
        assert np.array_equal(still.array(), crop)
    assert prepared.thumbnail is not None and Image.open(io.BytesIO(prepared.thumbnail)).format == "JPEG"


# ------------------------------------------------------------------------------ averaging
def test_frames_are_normalised_before_they_are_averaged() -> None:
    rows = np.array([[10.0, 0.0], [0.0, 0.1]], dtype=np.float32)  # very different lengths
    mean = mean_of_frames(rows)
    assert np.allclose(mean, [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6), "each frame counts the same"
    assert np.allclose(mean_of_frames(rows[:1]), rows[0]), "one frame: as it is"


async def test_a_clips_embedding_is_its_frames_normalised_mean(engine: ClipEngine) -> None:
    frames = clips.shape_frames(["red circle", "blue square", "green triangle"])
    clip = await engine.embed_upload(clips.animation(frames, "WEBP"), thumbnail=False)  # lossless frames
    stills = await asyncio.gather(*(engine.embed_image(_png(frame)) for frame in frames))
    assert clip.frames == 3
    assert np.allclose(clip.vector, mean_of_frames(np.stack(stills)), atol=1e-4)


async def test_an_accelerators_path_gives_a_clip_the_same_vector(engine: ClipEngine) -> None:
    """With a GPU, uploads are prepared alongside the running batch (the switch flipped on a CPU)."""
    data = clips.encode_clip(clips.shape_frames(["red circle", "blue square"], per_label=2))
    backend: Any = engine.backend
    before = backend._prepare_in_batch
    backend._prepare_in_batch = True
    try:
        in_batch = await engine.embed_upload(data, thumbnail=False)
        backend._prepare_in_batch = False
        alongside = await engine.embed_upload(data, thumbnail=False)
    finally:
        backend._prepare_in_batch = before
    assert in_batch.frames == alongside.frames == 4
    np.testing.assert_allclose(in_batch.vector, alongside.vector, atol=1e-4)


async def test_a_clip_of_red_circles_ranks_red_circle_first_from_eight_frames(service: ClipService) -> None:
    data = clips.encode_clip(clips.shape_frames(["red circle"], per_label=16))
    ranking = await service.classify(data, CLASSES, None)
    assert ranking.best.label == "red circle"
    assert ranking.frames == (8,)
    assert ranking.thumbnail is not None


@pytest.mark.parametrize("fmt", ["mp4", "GIF"])
async def test_a_clip_alternating_two_shapes_ranks_both_high(service: ClipService, fmt: str) -> None:
    frames = clips.shape_frames(["red circle", "red square"] * 4, per_label=1)
    data = clips.encode_clip(frames) if fmt == "mp4" else clips.animation(frames, fmt)
    ranking = await service.classify(data, CLASSES, None)
    assert {score.label for score in ranking.scores[:2]} == {"red circle", "red square"}
    assert ranking.frames == (8,)


async def test_compare_says_each_clips_frames(service: ClipService) -> None:
    clip = clips.encode_clip(clips.shape_frames(["red circle"], per_label=4))
    ranking = await service.compare_images(
        [clip, shape_png("red circle", 3), shape_png("blue square", 4)], ["clip.mp4", "a.png", "b.png"]
    )
    assert ranking.best.label == "a.png"
    assert ranking.frames == (4, 1, 1)


# ------------------------------------------------------------------------------ bounds
HOSTILE = {
    "truncated-mp4": (lambda: clips.encode_clip(clips.numbered_frames(24))[:800], "no frames I can read"),
    "header-only-mp4": (lambda: clips.encode_clip(clips.numbered_frames(24))[:40], "no frames I can read"),
    "empty-track": (clips.empty_clip, "no frames I can read"),
    "audio-only": (clips.audio_only_clip, "no video in it"),
    "huge-dimensions": (clips.huge_clip, "The clip's frame is too large: 8000 x 7000 pixels"),
    "gif-3000-huge-frames": (clips.gif_frame_bomb, "The animation is too large to sample: 3,000 frames"),
    "garbage-behind-ebml": (lambda: b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8, "corrupt"),
    "mjpeg-in-mov": (
        lambda: clips.encode_clip(clips.numbered_frames(4), "mov", codec="mjpeg"),
        "The clip's video is mjpeg; I decode H.264, HEVC, VP8, VP9, AV1 and MPEG-4 clips.",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_clip_gets_one_line(name: str) -> None:
    make, reason = HOSTILE[name]
    with pytest.raises(ImageError) as caught:
        decode_frames(make(), FrameLimits(), lambda image: image)
    message = str(caught.value)
    assert reason in message and "\n" not in message, message


def test_a_clip_over_the_longest_duration_is_refused_from_its_header() -> None:
    with pytest.raises(ImageError, match=r"The clip is too long: 3 s \(at most 2 s\)"):
        levels(clips.encode_clip(clips.numbered_frames(24)), FrameLimits(max_duration_s=2.0))


def test_an_endless_stream_is_refused_once_it_runs_past_the_longest_duration() -> None:
    data = clips.encode_clip(clips.numbered_frames(24), "webm", live="1")
    with pytest.raises(ImageError, match="The clip runs past 1 s"):
        levels(data, FrameLimits(max_duration_s=1.0))


def test_frames_examined_are_bounded() -> None:
    with pytest.raises(ImageError, match="too many frames to sample"):
        levels(clips.encode_clip(clips.numbered_frames(24), "webm", live="1"), FrameLimits(max_frames_examined=10))
    with pytest.raises(ImageError, match="too many frames"):
        levels(clips.animation(clips.numbered_frames(24), "GIF"), FrameLimits(max_frames_examined=10))


def test_a_frame_over_the_pixel_limit_is_refused() -> None:
    with pytest.raises(ImageError, match="The clip's frame is too large: 32 x 32 pixels"):
        levels(clips.encode_clip(clips.numbered_frames(4)), FrameLimits(max_pixels=1000))


async def test_hostile_clips_in_the_workers_never_stall_one(service: ClipService) -> None:
    """Each hostile cousin, through the real decode workers: one line each, and the next upload served."""
    workers = ImageWorkers(1, timeout_s=5.0, memory_mb=1024)
    workers.start()
    try:
        spec = PrepareSpec(crop=224, max_pixels=50_000_000)
        for make, reason in HOSTILE.values():
            with pytest.raises(ImageError, match=reason.replace("(", r"\(")):
                await asyncio.wrap_future(workers.submit(make(), spec))
        served = await asyncio.wrap_future(workers.submit(clips.encode_clip(clips.numbered_frames(24)), spec))
        assert served.frames == 8
        assert workers.replaced == 0, "refused in time, not killed"
    finally:
        workers.close()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_clip_over_the_time_budget_is_stopped_and_the_next_is_served() -> None:
    """Same per-file budget as a still: past it the worker is killed and replaced, one line."""
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(240)]
    slow = clips.encode_clip(noise, "webm", fps=24, gop=250)  # one key frame: all 240 decoded, ~0.4 s here
    workers = ImageWorkers(1, timeout_s=0.1, memory_mb=1024)
    workers.start()
    try:
        spec = PrepareSpec(crop=224, max_pixels=50_000_000)
        with pytest.raises(ImageError, match=r"takes too long to decode \(over 0.1 s\)"):
            await asyncio.wrap_future(workers.submit(slow, spec))
        assert workers.replaced == 1
        served = await asyncio.wrap_future(workers.submit(shape_png("red circle", 1), spec))
        assert served.frames == 1, "the replaced worker serves the next upload"
    finally:
        workers.close()
