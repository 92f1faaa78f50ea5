"""A corpus of broken, hostile and unusual images, generated on the fly.

Shared by the decoder tests, the CLI tests and the end-to-end tests, so each
layer is checked against the same inputs.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming a huge size, with a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def animated_gif(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
    frames = [solid(first), solid(second)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def animated_webp(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
    frames = [solid(first), solid(second)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """Stored landscape 80x40 (left half red, right half blue), EXIF orientation 6.

    Orientation 6 means "rotate 90° clockwise to display": upright it is a
    40x80 portrait whose top half is red.
    """
    stored = Image.new("RGB", (80, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit_grey_png(level: int) -> bytes:
    samples = np.full((32, 32), level, dtype=np.uint16)
    return encode(Image.fromarray(samples, "I;16"), "PNG")


def corpus() -> dict[str, bytes]:
    """Bad inputs: each must be refused with a one-line message."""
    jpeg = encode(solid((200, 30, 30), (256, 256)), "JPEG", quality=90)
    png = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)), "PNG")
    return {
        "zero-byte": b"",
        "text-renamed-png": b"this is not an image, just text saved as cat.png\n" * 4,
        "truncated-jpeg": jpeg[: len(jpeg) // 2],
        "truncated-png": png[: len(png) // 2],
        "header-only-png": png[:40],
        "png-50000x50000": png_declaring(50_000, 50_000),
        "garbage": bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    }


def unusual_but_valid() -> dict[str, tuple[bytes, tuple[int, int, int]]]:
    """Odd modes and containers that must decode; with the expected centre colour."""
    palette = solid((0, 200, 0)).convert("P")
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 0))  # fully transparent red: shows the white backdrop
    grey_alpha = Image.new("LA", (64, 48), (80, 255))
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # red in CMYK
    return {
        "animated-gif-first-frame": (animated_gif((255, 0, 0), (0, 0, 255)), (255, 0, 0)),
        "animated-webp-first-frame": (animated_webp((0, 0, 255), (255, 0, 0)), (0, 0, 255)),
        "palette-png": (encode(palette, "PNG"), (0, 200, 0)),
        "transparent-rgba-png": (encode(rgba, "PNG"), (255, 255, 255)),
        "grey-alpha-png": (encode(grey_alpha, "PNG"), (80, 80, 80)),
        "cmyk-jpeg": (encode(cmyk, "JPEG", quality=95), (255, 0, 0)),
        "16-bit-grey-png": (sixteen_bit_grey_png(65535 // 2), (128, 128, 128)),
        "greyscale-jpeg": (encode(Image.new("L", (64, 48), 100), "JPEG", quality=95), (100, 100, 100)),
        "1-bit-png": (encode(Image.new("1", (64, 48), 1), "PNG"), (255, 255, 255)),
        "bmp": (encode(solid((10, 20, 30)), "BMP"), (10, 20, 30)),
        "tiff": (encode(solid((10, 20, 30)), "TIFF"), (10, 20, 30)),
    }
