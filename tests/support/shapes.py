"""Deterministic coloured-shape images: the labelled data behind the tiny test CLIP model.

Twelve classes (4 colours x 3 shapes) are easy enough for a model small enough to commit,
yet varied (size, aspect, position, background, jitter, noise) so that tests exercise real
preprocessing rather than one memorised picture.  Everything is drawn from the caller's
``numpy.random.Generator``, so a seed fully determines every image.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

COLOURS: list[str] = ["red", "green", "blue", "yellow"]
SHAPES: list[str] = ["circle", "square", "triangle"]
CLASSES: list[str] = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]
#: A seed for images the tiny model never saw (not the training seed).
HELDOUT_SEED = 20261125

# Saturated base colours; jitter stays small enough that each remains unmistakable.
_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 45),
    "blue": (35, 65, 215),
    "yellow": (240, 210, 25),
}
_MIN_SIZE = 48
_MAX_SIZE = 256
_SUPERSAMPLE = 2  # draw at 2x then downsample: anti-aliased edges like a real photo


def caption(label: str, template: str = "a photo of a {}") -> str:
    """Fill a prompt template with a class label (the text side of a training pair)."""
    return template.format(label)


def _parse(label: str) -> tuple[str, str]:
    """Split "red circle" into its colour and shape, rejecting unknown labels early."""
    if label not in CLASSES:
        raise ValueError(f"unknown label {label!r}; expected one of {CLASSES}")
    colour, shape = label.split(" ")
    return colour, shape


def _canvas_size(rng: np.random.Generator, size: int | None) -> tuple[int, int]:
    """Pick (width, height); about a third are non-square to exercise the centre crop."""
    if size is not None:
        return size, size
    side = int(rng.integers(_MIN_SIZE, _MAX_SIZE + 1))
    if rng.random() < 1 / 3:
        aspect = float(rng.uniform(0.7, 1.45))
        other = int(np.clip(round(side * aspect), _MIN_SIZE // 2, _MAX_SIZE))
        return (side, other) if rng.random() < 0.5 else (other, side)
    return side, side


def _background(rng: np.random.Generator) -> np.ndarray:
    """A light, greyish background with a faint tint (never close to a class colour)."""
    grey = rng.uniform(175, 245)
    tint = rng.uniform(-12, 12, size=3)
    return np.clip(grey + tint, 0, 255)


def _foreground(rng: np.random.Generator, colour: str) -> tuple[int, int, int]:
    """The class colour with mild per-image jitter."""
    base = np.array(_RGB[colour], dtype=np.float64)
    jittered = np.clip(base + rng.uniform(-22, 22, size=3), 0, 255)
    r, g, b = (int(v) for v in jittered)
    return r, g, b


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a square or triangle of circumradius ``radius``, rotated by ``angle``."""
    n, offset = (4, math.pi / 4) if shape == "square" else (3, -math.pi / 2)
    return [
        (
            cx + radius * math.cos(offset + angle + 2 * math.pi * k / n),
            cy + radius * math.sin(offset + angle + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def render(label: str, rng: np.random.Generator, size: int | None = None) -> Image.Image:
    """Draw one RGB image of ``label`` ("red circle", ...) using only ``rng`` for randomness.

    The shape is kept inside the centred square of side ``min(width, height)``, because
    CLIP's preprocessing (resize shortest side, centre crop) discards the rest.
    """
    colour, shape = _parse(label)
    width, height = _canvas_size(rng, size)
    s = _SUPERSAMPLE
    big_w, big_h = width * s, height * s

    bg = _background(rng)
    img = Image.new("RGB", (big_w, big_h), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(img)

    side = min(big_w, big_h)
    # Circumradius as a fraction of the visible square; triangles get a bit more so their
    # area is comparable to the other shapes.
    frac = rng.uniform(0.22, 0.40) * (1.15 if shape == "triangle" else 1.0)
    radius = frac * side
    # The drawn extent: circles and rotated polygons both fit in a circle of this radius.
    margin = radius + 0.04 * side
    x0 = (big_w - side) / 2
    y0 = (big_h - side) / 2
    cx = x0 + rng.uniform(margin, max(margin, side - margin))
    cy = y0 + rng.uniform(margin, max(margin, side - margin))
    fill = _foreground(rng, colour)
    angle = math.radians(rng.uniform(-20, 20))

    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    else:
        draw.polygon(_polygon(shape, cx, cy, radius, angle), fill=fill)

    img = img.resize((width, height), Image.Resampling.BOX)
    pixels = np.asarray(img, dtype=np.float32)
    pixels += rng.normal(0.0, rng.uniform(2.0, 8.0), size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def shape_png(label: str, seed: int, size: int | None = None) -> bytes:
    """``render`` with a fresh generator seeded by ``seed``, encoded as PNG: an upload's bytes."""
    buffer = io.BytesIO()
    render(label, np.random.default_rng(seed), size).save(buffer, format="PNG")
    return buffer.getvalue()
