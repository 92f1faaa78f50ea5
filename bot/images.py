"""Turn untrusted image bytes into an upright RGB picture, or a one-line error.

Runs in a worker thread (decoding is CPU work). Every rejection is an
`ImageError` whose text can be shown to the user as it is.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import ImageError

#: Formats we let Pillow open; anything else (PSD, EPS, ...) is refused up front.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG covers MPO (phone cameras)
SUPPORTED_HINT = "PNG, JPEG, GIF, WebP, BMP or TIFF"

Image.init()  # register every plugin up front, so the format list above is honoured


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode `data` to an RGB image with EXIF orientation applied.

    - refuses empty files, non-images, and pictures over `max_pixels`
      (checked from the header, before any pixel is decoded, so a
      decompression bomb costs nothing);
    - animated GIF/WebP: the first frame;
    - palette, alpha, CMYK, 16-bit and greyscale modes end as plain RGB,
      transparency composited on white.
    """
    if not data:
        raise ImageError("The file is empty (0 bytes).")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"That file is not an image I can read (use {SUPPORTED_HINT}).") from None
    except Image.DecompressionBombError:
        raise ImageError(_too_large_message(None, max_pixels)) from None
    except (OSError, ValueError, SyntaxError):
        raise ImageError("The image is corrupt: its header could not be read.") from None

    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageError(_too_large_message((width, height), max_pixels))

    try:
        image.seek(0)  # first frame of an animation
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # not a copy of an already upright picture
        return _to_rgb(image)
    except Image.DecompressionBombError:
        raise ImageError(_too_large_message((width, height), max_pixels)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        if "truncated" in str(exc).lower():
            raise ImageError("The image is truncated (the upload looks incomplete).") from None
        raise ImageError("The image is corrupt and could not be decoded.") from None


def _too_large_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"at most {max_pixels / 1e6:g} megapixels"
    if size is None:
        return f"The image is too large ({limit})."
    return f"The image is too large: {size[0]} x {size[1]} pixels, {limit}."


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, as CLIP expects."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit int) samples: scale to 8 bits instead of clipping at 255.
        samples = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or samples.max() > 255 else 255.0
        grey = np.clip(samples / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        samples = np.asarray(image, dtype=np.float64)
        low, high = float(samples.min()), float(samples.max())
        span = high - low or 1.0
        grey = ((samples - low) / span * 255.0).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P" or mode in ("LA", "La", "PA") or mode == "RGBa":
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")
