"""What a decode worker makes of an upload: CLIP's crop and a thumbnail, as plain numbers and bytes.

Runs in a worker process (`bot.engine.decoding`); no torch, inference or onnxruntime here.
A clip or an animation gives a few frames spread over its length (`bot.engine.frames`),
each cropped exactly as a still picture is.

Phone photos: a JPEG with a short side of 896 px or more (for ViT-B/16) is
decoded at 1/2, 1/4 or 1/8 scale in the DCT domain, leaving at least twice the
model's input (`draft_sides`), then resized exactly: a 12 MP photo is prepared
three to five times faster, and the embedding stays within cosine 0.999 of the
exact path (tested). The reply's thumbnail comes from the same decode.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bot.engine.frames import FrameLimits, decode_frames, is_moving
from bot.engine.images import decode_upright
from bot.engine.preprocess import resize_centre_crop

#: Longest side of the reply's thumbnail, and its JPEG quality (~10-25 KB for a photo).
THUMBNAIL_SIDE = 256
THUMBNAIL_QUALITY = 80
#: A large JPEG is decoded at a reduced DCT scale that leaves at least this many times the
#: model's input on its short side (`draft_sides`); measured deviation in BENCHMARKS.md.
DRAFT_MARGIN = 2
#: ... and never fewer pixels than this on its short side, whatever the model: pictures
#: under twice this (896 px) keep the exact path, as with ViT-B/16, for smaller models too.
DRAFT_MIN_SIDE = 448

DEFAULT_FRAME_LIMITS = FrameLimits()


@dataclass(frozen=True, slots=True)
class PrepareSpec:
    """What a worker makes of an upload, in plain numbers (no torch in the worker)."""

    #: Side of CLIP's Resize(n, bicubic) + CenterCrop(n); None: the whole upright picture.
    crop: int | None
    max_pixels: int
    #: Longest side of the JPEG thumbnail; 0: none.
    thumbnail: int = 0
    #: Decode a large JPEG at a reduced DCT scale first (`draft_sides`); False: every pixel.
    draft: bool = True
    #: A clip or an animation: its frames used, and its bounds (`bot.engine.frames`).
    frames: FrameLimits = DEFAULT_FRAME_LIMITS


@dataclass(frozen=True, slots=True)
class Prepared:
    """A worker's answer: uint8 RGB pixels (the crop), an optional thumbnail, and what the decoder said."""

    pixels: bytes
    #: One frame's (height, width, 3); `pixels` holds `frames` of them, in order.
    shape: tuple[int, int, int]
    thumbnail: bytes | None = None
    #: Warnings and log lines from Pillow/numpy, captured instead of printed.
    notes: tuple[str, ...] = ()
    #: Frames of a clip or an animation (1: a still picture).
    frames: int = 1

    def array(self) -> np.ndarray:
        """The (first) frame as a read-only (height, width, 3) uint8 array (no copy)."""
        return self.arrays()[0]

    def arrays(self) -> np.ndarray:
        """Every frame, a read-only (frames, height, width, 3) uint8 array (no copy)."""
        return np.frombuffer(self.pixels, dtype=np.uint8).reshape((self.frames, *self.shape))


def prepare(data: bytes, spec: PrepareSpec, helper: ThreadPoolExecutor | None = None) -> Prepared:
    """Decode `data` and make the crop (and thumbnail) `spec` asks for; `ImageError` otherwise.

    Runs in a worker process in the bot; callable in-process too (tests, the bench).
    `helper` may resize half of a large picture (`bot.engine.preprocess.BANDED_MIN_PIXELS`).
    A clip or an animation gives a few of its frames (`bot.engine.frames`), each made like a still.
    """
    if is_moving(data):
        moving = _prepare_frames(data, spec, helper)
        if moving is not None:
            return moving
    decoded = decode_upright(data, max_pixels=spec.max_pixels, min_sides=draft_sides(spec))
    image = decoded.image
    thumbnail = thumbnail_jpeg(image, spec.thumbnail) if spec.thumbnail else None
    picked = image if spec.crop is None else resize_centre_crop(image, spec.crop, helper, area=decoded.area)
    pixels = np.ascontiguousarray(picked)
    return Prepared(
        pixels=pixels.tobytes(),
        shape=(pixels.shape[0], pixels.shape[1], 3),
        thumbnail=thumbnail,
    )


def _prepare_frames(data: bytes, spec: PrepareSpec, helper: ThreadPoolExecutor | None) -> Prepared | None:
    """A clip's or an animation's chosen frames, each cropped as a still (the first one's
    thumbnail); None for a still picture."""
    thumbnails: list[bytes] = []
    first_size: list[tuple[int, int]] = []

    def take(image: Image.Image) -> np.ndarray:
        if spec.thumbnail and not thumbnails:
            thumbnails.append(thumbnail_jpeg(image, spec.thumbnail))
        if spec.crop is not None:
            return np.ascontiguousarray(resize_centre_crop(image, spec.crop, helper))
        first_size[:] = first_size or [image.size]  # whole frames: all at the first one's size
        return np.asarray(image if image.size == first_size[0] else image.resize(first_size[0]))

    frames = decode_frames(data, spec.frames, take)
    if frames is None:
        return None
    pixels = np.ascontiguousarray(np.stack(frames))
    return Prepared(
        pixels=pixels.tobytes(),
        shape=(pixels.shape[1], pixels.shape[2], 3),
        thumbnail=thumbnails[0] if thumbnails else None,
        frames=len(frames),
    )


def draft_sides(spec: PrepareSpec) -> tuple[int, int] | None:
    """The least (short, long) sides a JPEG may be decoded down to for `spec`; None: in full.

    Short side: `DRAFT_MARGIN` times the crop, so the exact bicubic resize that follows
    still reduces by at least 2 and sees several source pixels per output pixel (ViT-B/16:
    448 px; a 12 MP phone photo decodes at 1/4, 1008 x 756), and at least `DRAFT_MIN_SIDE`.
    Long side: the thumbnail's, so the reply's preview is never upscaled. Neither depends
    on whether this request wants a thumbnail: the embedding must not.
    """
    if spec.crop is None or not spec.draft:
        return None
    return (max(DRAFT_MARGIN * spec.crop, DRAFT_MIN_SIDE), THUMBNAIL_SIDE)


def thumbnail_jpeg(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG of `image` (RGB, transparency already on white) with its longest side at most `side`."""
    width, height = image.size
    scale = side / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # reducing_gap=1: a box reduction by the whole factor first, then bicubic (4x faster than
        # bicubic alone on a 640 x 480 photo; plenty for a 256 px preview)
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=1.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()
