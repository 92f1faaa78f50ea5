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


# ------------------------------------------------------------------------- phone clips
#: How phones mark a clip recorded sideways: the track header's (`tkhd`) display matrix, whose
#: rotation part (a, b, c, d) maps a stored pixel (x, y) (y down) to (a x + c y, b x + d y) on
#: screen (ISO/IEC 14496-12 "matrix"; FFmpeg's display matrix is the same nine numbers). Each
#: turn: its matrix, and the stored frame made from the upright picture (the turn undone).
PHONE_TURNS: dict[str, tuple[tuple[int, int, int, int], Image.Transpose]] = {
    # An iPhone held upright: shown turned 90° clockwise (ffprobe: "rotation of -90.00 degrees").
    "clockwise": ((0, 1, -1, 0), Image.Transpose.ROTATE_90),  # PIL's ROTATE_90: counter-clockwise
    "counter-clockwise": ((0, -1, 1, 0), Image.Transpose.ROTATE_270),
    "half-turn": ((-1, 0, 0, -1), Image.Transpose.ROTATE_180),
    # Mirrored (some front cameras): shown flipped left to right; shown transposed (x, y) -> (y, x).
    "mirrored": ((-1, 0, 0, 1), Image.Transpose.FLIP_LEFT_RIGHT),
    "transposed": ((0, 1, 1, 0), Image.Transpose.TRANSPOSE),
}


def phone_clip(
    upright: Image.Image, turn: str, container: str = "mp4", count: int = 4, codec: str = "libx264"
) -> bytes:
    """A short H.264 (or `codec`: libx265 for HEVC, an iPhone's default; both in PyAV's wheel)
    clip whose frames are `upright` stored as a phone's sensor records it, with the `tkhd`
    display matrix for `turn` (`PHONE_TURNS`) a phone writes: a player shows `upright`.
    `upright`'s sides must be even (4:2:0 chroma)."""
    rotation, undo = PHONE_TURNS[turn]
    stored = upright.transpose(undo)
    return with_display_matrix(encode_clip([stored] * count, container, codec=codec), rotation)


def with_display_matrix(data: bytes, rotation: tuple[int, int, int, int]) -> bytes:
    """`data` (an MP4 or MOV of one track) with the `tkhd` matrix set to `rotation` as a phone writes it:
    the offset that keeps the picture in view, and the track's width and height as shown."""
    patched = bytearray(data)
    (moov,) = [(s, e) for kind, s, e in _boxes(data, 0, len(data)) if kind == b"moov"]
    (trak,) = [(s, e) for kind, s, e in _boxes(data, moov[0] + 8, moov[1]) if kind == b"trak"]
    (tkhd,) = [s for kind, s, _ in _boxes(data, trak[0] + 8, trak[1]) if kind == b"tkhd"]
    version = data[tkhd + 8]
    assert version == 0, f"PyAV's muxer writes a version 0 tkhd (32-bit times) for a short clip, not {version}"
    # size, type, version+flags, creation, modification, track id, reserved, duration, then
    # reserved (8), layer, alternate group, volume, reserved (2 each), matrix (9 x 32 bits), width, height
    matrix_at = tkhd + 8 + 4 + 4 * 5 + 16
    width, height = (value >> 16 for value in struct.unpack_from(">II", data, matrix_at + 36))
    a, b, c, d = rotation
    corners = [(a * x + c * y, b * x + d * y) for x in (0, width) for y in (0, height)]
    offset_x, offset_y = (-min(point[axis] for point in corners) for axis in (0, 1))
    one, w = 1 << 16, 1 << 30  # 16.16 fixed point; the last column (u, v, w) is 2.30
    matrix = (a * one, b * one, 0, c * one, d * one, 0, offset_x * one, offset_y * one, w)
    struct.pack_into(">9i", patched, matrix_at, *matrix)
    shown = (abs(a * width + c * height), abs(b * width + d * height))
    struct.pack_into(">II", patched, matrix_at + 36, shown[0] << 16, shown[1] << 16)
    return bytes(patched)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each box in data[start:end] (a 64-bit size read too)."""
    boxes = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, start + 8)
        boxes.append((kind, start, start + (size or end - start)))
        start += size or end - start
    return boxes
