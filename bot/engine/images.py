"""Turn untrusted image bytes into an upright RGB picture, or a one-line error.

Total: whatever the bytes are, `decode_image` returns a picture or raises an
`ImageError` whose text can be shown to the user as it is (a `MemoryError`
included). In the bot it runs inside a decode worker process (`bot.engine.decoding`),
which adds the time and memory budget that a Python function cannot enforce
on itself. AVIF comes through Pillow's own plugin (libavif), HEIC/HEIF through
pillow-heif's (libheif). `decode_upright` can decode a large JPEG at a reduced DCT scale
(libjpeg's scaled inverse DCT, Pillow's `draft`) for callers that only need so
many pixels.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import AvifImagePlugin, Image, UnidentifiedImageError

from bot.engine.filetypes import SUPPORTED_HINT, IsobmffHeader, image_format, isobmff_header
from bot.errors import ImageError

#: Formats we let Pillow open; anything else (PSD, EPS, ...) is refused up front.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF")  # JPEG covers MPO (phone cameras)
#: Formats in an ISO base media file (`ftyp`, `meta`, `mdat` boxes), checked by `_check_container`.
CONTAINER_FORMATS = ("AVIF", "HEIF")
#: Items one AVIF/HEIF file may hold: libheif's own default limit, applied to AVIF as well.
MAX_ITEMS = 1000
#: A side this long is a corrupt header (a negative 32-bit width read as unsigned), not a big picture.
IMPOSSIBLE_SIDE = 1 << 31
#: Rows converted at a time when a 16-bit, 32-bit or float picture becomes 8-bit: bounds the
#: temporaries (a 49 MP float picture as float64 in one piece took 2.4 GB).
BAND_ROWS = 256
#: DCT scales libjpeg can decode a JPEG at (1/8, 1/4, 1/2), largest reduction first.
DCT_SCALES = (8, 4, 2)
#: EXIF orientation -> the transpose that shows the picture upright.
ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Each transpose as steps on a box: "T" swaps the axes, "LR" and "TB" mirror (`_moved_box`).
TRANSPOSE_STEPS = {
    Image.Transpose.FLIP_LEFT_RIGHT: ("LR",),
    Image.Transpose.FLIP_TOP_BOTTOM: ("TB",),
    Image.Transpose.ROTATE_180: ("LR", "TB"),
    Image.Transpose.TRANSPOSE: ("T",),
    Image.Transpose.ROTATE_90: ("T", "TB"),
    Image.Transpose.ROTATE_270: ("T", "LR"),
    Image.Transpose.TRANSVERSE: ("T", "LR", "TB"),
}

Box = tuple[float, float, float, float]

Image.init()  # register every plugin up front, so the format list above is honoured
#: Decoder threads for one AVIF or HEIF: two where the process may use two cores. A lone upload,
#: the usual case, decodes sooner (dav1d splits a picture's work, libheif a phone's grid of
#: tiles); when every decode worker is busy the threads only share the cores. No more than two:
#: the pool is the parallelism, and each thread's stack counts against the worker's memory cap.
DECODER_THREADS = min(2, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 1
AvifImagePlugin.DEFAULT_MAX_THREADS = DECODER_THREADS


@functools.cache
def _register_heif() -> None:
    """pillow-heif (libheif) is loaded on the first HEIF only: loaded up front, its libraries
    count against every decode worker's memory cap, even for PNGs."""
    import pillow_heif

    # Only the primary picture is used: thumbnails, depth maps and auxiliary images are not even listed.
    pillow_heif.register_heif_opener(
        thumbnails=False, depth_images=False, aux_images=False, decode_threads=DECODER_THREADS
    )


def _openable() -> tuple[str, ...]:
    """The allowed formats whose plugin is loaded (HEIF only once `_register_heif` ran)."""
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)
# The size limit is ours (`max_pixels`, checked from the header): Pillow's own guard raises
# for anything over twice its limit without saying the size, so a corrupt header (a BMP
# with a negative width) would be called "too large". Set here, for every caller alike.
Image.MAX_IMAGE_PIXELS = None

TOO_COMPLEX = "The image is too complex to decode within my memory limit; try a smaller PNG or JPEG export of it."
CORRUPT = "The image is corrupt and could not be decoded."
CORRUPT_HEADER = "The image is corrupt: its header could not be read."
TRUNCATED = "The image is truncated (the upload looks incomplete)."
#: What the decoders say when data ends early (libavif: "Truncated data"; libheif: "Unexpected end of file").
TRUNCATION_WORDS = ("truncated", "end of file", "file size too small", "cannot read full")


@dataclass(frozen=True, slots=True)
class Decoded:
    """An upright RGB picture, and where the whole picture lies in its pixels."""

    image: Image.Image
    #: Where the whole picture lies in `image`'s pixels (left, top, right, bottom): all of
    #: it, unless a JPEG was decoded at a reduced DCT scale and a stored side is not a
    #: multiple of the scale. libjpeg then rounds the reduced size up, and the last row or
    #: column stands for less than a whole pixel (at the top or left once the picture is
    #: turned upright). Resizing with this box keeps every output pixel centred where it
    #: is at full scale.
    area: Box
    #: The DCT scale it was decoded at: 1 (full), 2, 4 or 8.
    scale: int = 1


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """`decode_upright` at full scale: the picture's every pixel."""
    return decode_upright(data, max_pixels=max_pixels).image


def decode_upright(data: bytes, *, max_pixels: int, min_sides: tuple[int, int] | None = None) -> Decoded:
    """Decode `data` to an RGB image with EXIF orientation applied.

    With `min_sides` (short, long), a JPEG larger than that is decoded at the smallest
    DCT scale (1/2, 1/4 or 1/8) that leaves at least that many pixels on its short and
    long sides: libjpeg then skips most of the inverse DCT and upsampling work and the
    picture is that much smaller (a 12 MP photo at 1/4 is 0.75 MP). Orientation does not
    change a picture's short side, so the bound holds upright too. Other formats, and
    JPEGs too small to reduce, decode in full, pixel for pixel as without `min_sides`.

    - refuses empty files, non-images, corrupt headers and pictures over
      `max_pixels` (checked from the header, before any pixel is decoded,
      so a decompression bomb costs nothing);
    - animated GIF/WebP/AVIF: the first frame; HEIF: the primary picture;
    - palette, alpha, colour-key (tRNS), CMYK, 16-bit, 32-bit, float and
      greyscale modes end as plain RGB, transparency composited on white;
    - malformed metadata (EXIF) is ignored: the picture is used as stored.
    """
    try:
        return _decode(data, max_pixels, min_sides)
    except MemoryError:
        raise ImageError(TOO_COMPLEX) from None


def _decode(data: bytes, max_pixels: int, min_sides: tuple[int, int] | None) -> Decoded:
    if not data:
        raise ImageError("The file is empty (0 bytes).")
    container = image_format(data) if data[4:8] == b"ftyp" else None
    header = _check_container(data, max_pixels) if container is not None else None
    try:
        if container == "HEIF":
            _register_heif()
        image = Image.open(io.BytesIO(data), formats=_openable())
    except UnidentifiedImageError:
        if container is not None and header is not None:
            raise ImageError(TRUNCATED if header.truncated else _container_refusal(data, container)) from None
        raise ImageError(f"That file is not an image I can read (use {SUPPORTED_HINT}).") from None
    except MemoryError:
        raise
    except Exception:  # any parser error in a header (struct.error, KeyError, ...) is corruption
        raise ImageError(CORRUPT_HEADER) from None
    _check_size(image.size, max_pixels)
    stored = image.size
    try:
        if image.format != "HEIF":  # HEIF opens at its primary picture, the one a viewer shows
            image.seek(0)  # first frame of an animation
        _check_size(image.size, max_pixels)
        stored = image.size
        area: Box = (0, 0, *stored)
        scale = _dct_scale(image, min_sides)
        if scale > 1:
            width, height = image.size
            # Pillow picks the largest scale s with size // s >= the size asked for (this one);
            # its box is the stored size / s, exact as s is a power of two.
            drafted = image.draft(image.mode, (width // scale, height // scale))
            if drafted is None:
                scale = 1
            else:
                area = drafted[1]
                scale = round(width / area[2])
        image.load()
    except ImageError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        reason = str(exc).lower()
        if any(words in reason for words in TRUNCATION_WORDS) or (header is not None and header.truncated):
            raise ImageError(TRUNCATED) from None
        if "memory" in reason or _short_of_memory(stored, len(image.getbands())):
            raise ImageError(TOO_COMPLEX) from None
        raise ImageError(CORRUPT) from None
    try:
        method = _orientation(image)
        oriented: Image.Image = image
        if method is not None:
            area = _moved_box(area, image.size, method)
            oriented = image.transpose(method)
        return Decoded(_to_rgb(oriented), area, scale)
    except MemoryError:
        raise
    except Exception:
        raise ImageError(CORRUPT) from None


def _check_container(data: bytes, max_pixels: int) -> IsobmffHeader:
    """Refuse an AVIF/HEIF with too many items, or declaring too large a picture, before its decoder
    walks it (libavif takes a while over many items; libheif's own refusals are in its words)."""
    header = isobmff_header(data)
    if header.items > MAX_ITEMS:
        raise ImageError(
            f"The image has too many parts ({header.items:,} items, at most {MAX_ITEMS:,}); "
            "try a PNG or JPEG export of it."
        )
    if header.largest != (0, 0):
        _check_size(header.largest, max_pixels)
    return header


def _container_refusal(data: bytes, fmt: str) -> str:
    """Why libavif or libheif refused an AVIF/HEIF header, in one line of ours.

    `Image.open` only says it cannot identify the file; the plugin, called directly, says why.
    """
    try:
        Image.OPEN[fmt][0](io.BytesIO(data), "").close()  # as `Image.open` calls it
    except MemoryError:
        raise
    except Exception as exc:
        reason = str(exc).lower()
    else:
        reason = ""
    if "security limit" in reason:
        return "The image is too complex: its header exceeds the decoder's safety limits."
    if any(words in reason for words in TRUNCATION_WORDS):
        return TRUNCATED
    return CORRUPT_HEADER


def _moved_box(box: Box, size: tuple[int, int], method: Image.Transpose) -> Box:
    """Where `box` of a `size` picture lands when the picture is transposed by `method`."""
    width, height = size
    left, top, right, bottom = box
    for step in TRANSPOSE_STEPS[method]:
        if step == "T":
            left, top, right, bottom = top, left, bottom, right
            width, height = height, width
        elif step == "LR":
            left, right = width - right, width - left
        else:
            top, bottom = height - bottom, height - top
    return (left, top, right, bottom)


def _dct_scale(image: Image.Image, min_sides: tuple[int, int] | None) -> int:
    """The largest DCT reduction of a JPEG that keeps `min_sides` (short, long); 1: none."""
    if min_sides is None or image.format not in ("JPEG", "MPO"):
        return 1
    short, long = sorted(image.size)
    for scale in DCT_SCALES:
        if short // scale >= min_sides[0] and long // scale >= min_sides[1]:
            return scale
    return 1


def _short_of_memory(size: tuple[int, int], bands: int) -> bool:
    """Whether a decoder error is likelier a failed allocation than corruption.

    libjpeg and zlib report a failed allocation as a broken stream; under a decode
    worker's address-space cap (`bot.engine.decoding`), a picture whose samples (4 bytes
    each, with the decoder's buffers) do not fit in what is left failed for memory.
    `size` is the stored one: a progressive JPEG decoded at a reduced DCT scale still
    holds every coefficient of the full picture.
    """
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return False
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * resource.getpagesize()
    except (ImportError, OSError, ValueError):
        return False
    return used + size[0] * size[1] * bands * 4 > limit


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width >= IMPOSSIBLE_SIDE or height >= IMPOSSIBLE_SIDE or width < 0 or height < 0:
        raise ImageError("The image is corrupt: its header declares an impossible size.")
    if width == 0 or height == 0:
        raise ImageError("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageError(_too_large_message((width, height), max_pixels))


def _too_large_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"at most {max_pixels / 1e6:g} megapixels"
    if size is None:
        return f"The image is too large ({limit})."
    return f"The image is too large: {size[0]} x {size[1]} pixels, {limit}."


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The transpose that shows the picture as displayed, per its EXIF orientation; None for
    none, and for unreadable or odd EXIF (the picture is used as stored).

    Not `ImageOps.exif_transpose`: it also rewrites the EXIF block, and malformed
    values (a rational of -1/0, wrong types) make it raise `struct.error`,
    `TypeError` or `AttributeError`. Only the pixels matter here.
    """
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF: use the picture as stored
        return None
    try:  # an int, or a number equal to one (a rational 6/1); not text, not a tuple
        return ORIENTATION.get(int(orientation)) if orientation == int(orientation) else None
    except (TypeError, ValueError, ArithmeticError):
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, as CLIP expects; every kind of transparency on white."""
    mode = image.mode
    transparency = image.info.get("transparency")
    if mode.startswith("I;16") or mode == "I":
        return _deep_grey_to_rgb(image, transparency)
    if mode == "F":
        return _float_to_rgb(image)
    if mode == "RGB" and transparency is None:
        return image
    if transparency is not None or mode in ("P", "PA", "LA", "La", "RGBa", "1"):
        image = image.convert("RGBA")  # applies palette transparency and tRNS colour keys
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _bands(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, samples) for each band of `BAND_ROWS` rows, without a full-size copy."""
    width, height = image.size
    for top in range(0, height, BAND_ROWS):
        yield top, np.asarray(image.crop((0, top, width, min(height, top + BAND_ROWS))))


def _deep_grey_to_rgb(image: Image.Image, transparency: object) -> Image.Image:
    """16-bit (or 32-bit int) grey: scale to 8 bits instead of clipping at 255, in integer math.

    `(v * 255 + 32767) // 65535` equals `round(v / 65535 * 255)` for every 16-bit
    value (a tie would need an odd number to equal an even one), without float64
    copies of the whole picture. 32-bit samples: 16-bit scale when any exceeds 255.
    """
    top = 65535
    if image.mode == "I":
        _, high = cast("tuple[float, float]", image.getextrema())  # mode "I" has one band
        top = 65535 if high > 255 else 255
    key = transparency if type(transparency) is int else None
    grey = np.empty((image.height, image.width), dtype=np.uint8)
    for first, samples in _bands(image):
        wide = np.clip(samples.astype(np.int64), 0, top)
        band = (wide * 255 + top // 2) // top
        if key is not None:
            band[samples == key] = 255  # tRNS colour key: transparent, so white
        grey[first : first + samples.shape[0]] = band
    return Image.fromarray(grey).convert("RGB")


def _float_to_rgb(image: Image.Image) -> Image.Image:
    """Float samples: stretch the finite range to 0..255, a band at a time (NaN at the low end)."""
    low, high = np.inf, -np.inf
    for _, samples in _bands(image):
        finite = samples[np.isfinite(samples)]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if low > high:  # nothing finite at all
        low = high = 0.0
    span = high - low or 1.0
    grey = np.empty((image.height, image.width), dtype=np.uint8)
    for first, samples in _bands(image):
        clean = np.nan_to_num(samples.astype(np.float64), nan=low, posinf=high, neginf=low)
        scaled = np.clip((clean - low) / span * 255.0, 0, 255)
        grey[first : first + samples.shape[0]] = np.rint(scaled).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
