"""The fixed probes every reduced-precision runtime is checked on against fp32 (`bot.engine.runtimes`).

Synthetic pictures rather than files: nothing to ship or download, the same on every
machine, and still the kinds of picture users send (skies, landscapes, faces, text,
night shots, textures), so a runtime that is wrong on one kind shows it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

PROBE_PROMPTS = (
    "a photo of the sky",
    "a photo of a beach",
    "a photo of a forest",
    "a photo of a city at night",
    "a photo of a face",
    "a photo of a document",
    "a photo of a sunset",
    "a photo of a chessboard",
    "a photo of a cat",
    "a photo of a dog",
    "a photo of a car",
    "a photo of food",
    "a painting",
    "a diagram",
    "a screenshot",
    "a cartoon",
    "a photo of snow",
    "a photo of a flower",
    "a photo of a mountain",
    "a photo of the sea",
    "an abstract pattern",
    "a photo of a building",
    "a photo of a person",
    "a blurry photo",
)


def probe_images(size: int = 256, seed: int = 0) -> list[Image.Image]:
    """Natural-looking synthetic pictures of several kinds: skies, landscapes, clouds, faces, text, night, textures."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]

    def clouds(scale: float) -> np.ndarray:
        """Smooth 1/f noise, as in clouds, foliage or water."""
        spectrum = np.fft.fft2(rng.standard_normal((size, size)))
        freq = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
        field_ = np.real(np.fft.ifft2(spectrum / np.maximum(freq, 1 / size) ** scale))
        return ((field_ - field_.min()) / (np.ptp(field_) + 1e-9)).astype(np.float32)

    def to_image(pixels: np.ndarray) -> Image.Image:
        return Image.fromarray(np.clip(pixels * 255, 0, 255).astype(np.uint8))

    pictures: list[Image.Image] = []
    # Landscape: sky gradient over green-brown ground, a sun.
    sky = (1 - rows) * np.array([0.3, 0.5, 0.9]) + rows * np.array([0.9, 0.9, 1.0])
    ground = np.array([0.25, 0.45, 0.15]) + 0.2 * clouds(1.5)[..., None] * np.array([1, 0.6, 0.2])
    landscape = np.where(rows < 0.6, sky * np.ones_like(cols), ground)
    yy, xx = np.mgrid[0:size, 0:size]
    sun = (yy - size * 0.25) ** 2 + (xx - size * 0.7) ** 2 < (size * 0.08) ** 2
    landscape[sun] = (1.0, 0.95, 0.7)
    pictures.append(to_image(landscape))
    # Clouds, foliage and water: coloured smooth noise.
    for colour in ((0.9, 0.9, 1.0), (0.2, 0.6, 0.2), (0.1, 0.3, 0.6)):
        pictures.append(to_image(clouds(2.0)[..., None] * np.array(colour) + 0.1))
    # Sunset with a dark skyline.
    sunset = (1 - rows) * np.array([0.2, 0.1, 0.4]) + rows * np.array([1.0, 0.55, 0.2])
    sunset = sunset * np.ones_like(cols)
    skyline = rows[:, :, 0] > 0.7 - 0.15 * (np.floor(cols[:, :, 0] * 12) % 3) / 2
    sunset[skyline] = (0.05, 0.05, 0.08)
    pictures.append(to_image(sunset))
    # A face-like oval on a plain background.
    face = Image.new("RGB", (size, size), (60, 70, 90))
    draw = ImageDraw.Draw(face)
    draw.ellipse((size * 0.3, size * 0.2, size * 0.7, size * 0.8), fill=(225, 180, 150))
    for eye_x in (0.42, 0.58):
        draw.ellipse((size * (eye_x - 0.03), size * 0.42, size * (eye_x + 0.03), size * 0.47), fill=(40, 30, 30))
    draw.arc((size * 0.42, size * 0.55, size * 0.58, size * 0.68), 20, 160, fill=(150, 60, 60), width=3)
    pictures.append(face)
    # A document: lines of dark "words" on paper.
    document = Image.new("RGB", (size, size), (245, 242, 235))
    draw = ImageDraw.Draw(document)
    for line in range(12):
        x = size * 0.08
        while x < size * 0.9:
            width = float(rng.uniform(8, 30))
            draw.rectangle((x, 20 + line * 19, x + width, 28 + line * 19), fill=(30, 30, 30))
            x += width + 6
    pictures.append(document)
    # Night: dark sky, scattered lights.
    night = np.full((size, size, 3), 0.04, dtype=np.float32)
    lights = rng.integers(0, size, (60, 2))
    night[lights[:, 0], lights[:, 1]] = (1.0, 0.9, 0.6)
    pictures.append(to_image(night))
    # Man-made textures: a chessboard and coloured flat shapes.
    squares = ((np.floor(rows * 8) + np.floor(cols * 8)) % 2) * np.ones(3)
    pictures.append(to_image(0.1 + 0.8 * squares))
    shapes = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(shapes)
    for _ in range(8):
        x0, y0 = (float(v) for v in rng.uniform(0, size * 0.8, 2))
        extent = float(rng.uniform(20, 80))
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x0 + extent, y0 + extent), fill=fill)
    pictures.append(shapes)
    return pictures
