"""What a phone photo costs a decode worker, by format: JPEG, AVIF and HEIC at 12, 24 and 48 MP.

    .venv/bin/python -m benchmarks.formats [--repeats 5] [--sizes 12,24,48]

The same picture (`benchmarks.photos.phone_photo`, stored sideways with EXIF orientation 6 as a
phone saves a portrait) is encoded as a JPEG (quality 90), an AVIF (Pillow's libavif, quality
80) and a HEIC (pillow-heif's libheif and x265, quality 80), then prepared as a request is:

- `worker`: the round trip through the decode workers (`ImageWorkers`, the bot's defaults:
  `DECODE_TIMEOUT_S` and `DECODE_MEMORY_MB`), crop 224 and thumbnail, median and best;
- `peak MB`: the highest resident memory of a fresh decode worker preparing it, above what
  the worker held before (the decoder's and the pictures' share of the worker's memory cap);
- `crop vs the JPEG's`: the mean difference (0-255) between the 224 x 224 crop CLIP gets and
  the JPEG's: a few levels of lossy coding, tens if a format were turned the wrong way.

A JPEG this large is decoded at a reduced DCT scale (`bot.engine.images`); AVIF and HEIC have
no such shortcut, so every pixel is decoded. Encoding a 48 MP HEIC takes x265 about half a
minute here: the run takes a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import time

import numpy as np
from PIL import Image

from benchmarks.photos import phone_photo
from bot.config import Settings
from bot.engine.decoding import ImageWorkers, work
from bot.engine.preparation import THUMBNAIL_SIDE, Prepared, PrepareSpec

#: Megapixels -> (width, height) as stored: the 4:3 sensors of phones (12, 24 and 48 MP modes).
SIZES = {12: (4032, 3024), 24: (5712, 4284), 48: (8064, 6048)}


def encodings(width: int, height: int) -> dict[str, bytes]:
    """One picture, stored sideways with EXIF orientation 6, as a JPEG, an AVIF and a HEIC."""
    import pillow_heif

    pillow_heif.register_heif_opener()  # the encoder; the bot loads the decoder on the first HEIF
    jpeg = phone_photo(width, height, orientation=6)  # stored landscape, shown as a portrait
    stored = Image.open(io.BytesIO(jpeg))
    exif = stored.getexif().tobytes()
    files = {"JPEG": jpeg}
    for fmt in ("AVIF", "HEIF"):
        buffer = io.BytesIO()
        stored.save(buffer, format=fmt, quality=80, exif=exif)
        files[fmt] = buffer.getvalue()
    return files


def peak_task(data: bytes, spec: PrepareSpec) -> Prepared:
    """A decode worker's task (`bot.engine.decoding.work`) that also notes its peak resident
    memory above what the worker held before it, as a `peak_mb=` note."""
    before = _status_kb("VmRSS")
    prepared = work(data, spec)
    peak = max(0, _status_kb("VmHWM") - before) / 1024
    return dataclasses.replace(prepared, notes=(*prepared.notes, f"peak_mb={peak:.0f}"))


def peak_mb(data: bytes, spec: PrepareSpec, settings: Settings) -> float:
    """Peak memory of preparing `data` as the first task of a fresh decode worker."""
    workers = ImageWorkers(1, timeout_s=settings.decode_timeout_s, memory_mb=settings.decode_memory_mb, task=peak_task)
    try:
        notes = workers.submit(data, spec).result().notes
    finally:
        workers.close()
    return float(next(note for note in notes if note.startswith("peak_mb=")).split("=")[1])


def _status_kb(field: str) -> int:
    """A `/proc/self/status` memory figure (VmRSS, VmHWM) in KB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="12,24,48", help="megapixels, of 12, 24 and 48")
    args = parser.parse_args()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    spec = PrepareSpec(crop=224, max_pixels=settings.max_image_pixels, thumbnail=THUMBNAIL_SIDE)
    workers = ImageWorkers(1, timeout_s=settings.decode_timeout_s, memory_mb=settings.decode_memory_mb)
    workers.start()
    workers.warm_up(spec)
    print(f"decode budget {settings.decode_timeout_s:g} s and {settings.decode_memory_mb} MB per worker")
    print("| photo | format | file | worker, median (best) | peak MB | crop vs the JPEG's |")
    print("|---|---|---|---|---|---|")
    try:
        for megapixels in (int(size) for size in args.sizes.split(",")):
            width, height = SIZES[megapixels]
            reference = None
            for fmt, data in encodings(width, height).items():
                times, crops = [], []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    crops.append(workers.submit(data, spec).result().array().astype(np.int16))
                    times.append(time.perf_counter() - started)
                reference = crops[0] if reference is None else reference
                median, best = statistics.median(times), min(times)
                name = "HEIC" if fmt == "HEIF" else fmt
                print(
                    f"| {megapixels} MP ({width} x {height}) | {name} | {len(data) / 1e6:.1f} MB "
                    f"| {median:.2f} s ({best:.2f} s) | {peak_mb(data, spec, settings):.0f} "
                    f"| {np.abs(crops[0] - reference).mean():.1f} |",
                    flush=True,
                )
    finally:
        workers.close()


if __name__ == "__main__":
    main()
