"""Clips and animations built in the tests (PyAV, Pillow), and their hostile cousins; nothing committed.

Shape clips show the tiny CLIP's classes (`tests.support.shapes`), so a test can tell from
the ranking which frames were used. Numbered clips paint frame i in grey level `LEVEL_STEP * i`,
so a test can read back which frames were chosen.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from tests.support.shapes import HELDOUT_SEED, render

#: Each container and the codec its clips are written with (all in PyAV's wheel).
CODECS = {"mp4": "mpeg4", "mov": "mpeg4", "webm": "libvpx"}
#: Grey step between consecutive frames of a numbered clip (`numbered_frames`).
LEVEL_STEP = 10
#: The frame side of the test clips (a multiple of 16 for every codec).
SIDE = 128


def shape_frames(labels: Sequence[str], per_label: int = 1, size: int = SIDE) -> list[Image.Image]:
    """`per_label` frames of each label in turn, each drawn afresh (held-out seeds)."""
    rng = np.random.default_rng(HELDOUT_SEED)
    return [render(label, rng, size) for label in labels for _ in range(per_label)]


def numbered_frames(count: int, size: int = 32) -> list[Image.Image]:
    """Frame i is a flat grey of level `LEVEL_STEP * i` (count <= 25)."""
    return [Image.new("RGB", (size, size), (LEVEL_STEP * i,) * 3) for i in range(count)]


def encode_clip(
    frames: Sequence[Image.Image],
    container: str = "mp4",
    fps: int = 8,
    gop: int = 1,
    codec: str | None = None,
    **options: str,
) -> bytes:
    """`frames` as a clip in `container` (mp4, mov, webm) at `fps`, a key frame every `gop` frames
    (default: every frame, exact colours for numbered clips); `options` go to the muxer (e.g. live=1)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container, options=options) as output:
        # key frames exactly `gop` apart (libvpx adds its own at scene changes otherwise)
        keys = {"g": str(gop), "keyint_min": str(gop)}
        stream = output.add_stream(codec or CODECS[container], rate=fps, options=keys)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = gop
        stream.codec_context.bit_rate = 2_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def animation(frames: Sequence[Image.Image], fmt: str) -> bytes:
    """`frames` as an animated GIF, WebP (lossless) or APNG."""
    buffer = io.BytesIO()
    params: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(buffer, format=fmt, save_all=True, append_images=list(frames[1:]), duration=100, loop=0, **params)
    return buffer.getvalue()


# ------------------------------------------------------------------------- hostile cousins
def empty_clip() -> bytes:
    """An MP4 with a video track and no frames in it."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        output.start_encoding()  # the track, and nothing in it
    return buffer.getvalue()


def audio_only_clip() -> bytes:
    """An MP4 holding a second of silence and no video."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("aac", rate=8000)
        stream.layout = "mono"
        samples = np.zeros((1, 1024), dtype=np.float32)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def huge_clip(width: int = 8000, height: int = 7000) -> bytes:
    """One flat frame of `width` x `height` (56 MP, over the bot's 50 MP), in a small file."""
    return encode_clip([Image.new("RGB", (width, height), (40, 40, 40))], fps=1)


def gif_frame_bomb(frames: int = 3000, side: int = 4000) -> bytes:
    """A GIF of `frames` frames, each declaring the whole `side` x `side` canvas (16 MP, under the
    bot's 50 MP) with a few bytes of data: decoding every frame would make 48 billion pixels."""
    screen = struct.pack("<6sHHBBB", b"GIF89a", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    # One frame: a 2-bit LZW stream of clear, one pixel of colour 0, end (3 codes of 3 bits).
    control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"
    image = control + struct.pack("<BHHHHB", 0x2C, 0, 0, side, side, 0) + b"\x02\x02\x44\x01\x00"
    return screen + loop + image * frames + b"\x3b"
