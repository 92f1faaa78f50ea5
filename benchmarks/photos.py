"""Generated photo-like JPEGs for the bench and the tests (no photo files in the repository).

- `make_photo`: gradients plus strong per-pixel noise. A hard case for the JPEG
  decoder (the noise is expensive to entropy-decode: 151 KB at 640 x 480, 5.9 MB
  at 12 MP), and the bench's default picture since the first session.
- `phone_photo`: what a phone sends. Structure at every scale (a 1/f field, as in
  natural images), hard-edged shapes, mild sensor noise, 4:2:0 chroma and an
  optional EXIF orientation: 12 MP at quality 90 is ~3 MB, as a phone's is.
"""

from __future__ import annotations

import io

import numpy as np

#: Octaves of the 1/f field: the coarsest is 2**OCTAVES times smaller than the picture.
OCTAVES = 7


def make_photo(width: int = 640, height: int = 480, seed: int = 0) -> bytes:
    """A photo-sized JPEG with smooth gradients and noise (decodes like a real photo)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def phone_photo(
    width: int = 4032,
    height: int = 3024,
    *,
    seed: int = 0,
    quality: int = 90,
    subsampling: str = "4:2:0",
    orientation: int = 1,
    progressive: bool = False,
    mode: str = "RGB",
) -> bytes:
    """A phone-camera-like JPEG of `width` x `height` as stored (EXIF `orientation` 1-8).

    `mode`: "RGB", "L" (greyscale) or "CMYK" (as print workflows save). The picture
    is the same for a given seed and size whatever the encoding options.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    # The 1/f field is summed at a quarter of the size (cheap), then enlarged once; the finest
    # octave and the sensor noise are added at full size.
    low = (max(2, width // 4), max(2, height // 4))
    field = np.zeros((low[1], low[0], 3), dtype=np.float32)
    for octave in range(OCTAVES, 2, -1):
        step = 2 ** (octave - 2)
        small = rng.normal(0, 1, (max(2, low[1] // step), max(2, low[0] // step), 3)).astype(np.float32)
        layers = [Image.fromarray(small[..., c], mode="F").resize(low, Image.Resampling.BICUBIC) for c in range(3)]
        field += np.stack([np.asarray(layer) for layer in layers], axis=-1) * (2.0**octave) ** 0.9
    field -= field.mean(axis=(0, 1))
    field *= 45 / max(float(field.std()), 1e-6)
    base = np.clip(field + rng.uniform(70, 180, 3), 0, 255).astype(np.uint8)
    picture = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
    fine = rng.normal(128, 12, (max(2, height // 2), max(2, width // 2), 3)).clip(0, 255).astype(np.uint8)
    texture = np.asarray(Image.fromarray(fine).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16) - 128
    base = np.clip(np.asarray(picture, dtype=np.int16) + texture, 0, 255).astype(np.uint8)
    picture = Image.fromarray(base)
    draw = ImageDraw.Draw(picture)
    for _ in range(24):  # hard edges: objects, windows, text-like strokes
        x0, x1 = sorted(rng.integers(0, width, 2))
        y0, y1 = sorted(rng.integers(0, height, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=int(rng.integers(1, 12)))
    noise = rng.normal(0, 2.5, (height, width, 3)).astype(np.float32)
    picture = Image.fromarray(np.clip(np.asarray(picture, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
    if mode != "RGB":
        picture = picture.convert(mode)
    options: dict[str, object] = {"quality": quality, "progressive": progressive}
    if mode != "L":
        options["subsampling"] = subsampling
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", **options)
    return buffer.getvalue()
