"""What a phone photo costs a decode worker, by format: JPEG, AVIF and HEIC at 12, 24 and 48 MP.

    .venv/bin/python -m benchmarks.formats [--repeats 5] [--sizes 12,24,48]

The same picture (`benchmarks.photos.phone_photo`, stored sideways with EXIF orientation 6 as a
phone saves a portrait) is encoded as a JPEG (quality 90), an AVIF (Pillow's libavif, quality
80) and a HEIC (pillow-heif's libheif and x265, quality 80), then prepared as a request is:

- `worker`: the round trip through the decode workers (`ImageWorkers`, the bot's defaults:
  `DECODE_TIMEOUT_S` and `DECODE_MEMORY_MB`), crop 224 and thumbnail, median and best;
- `peak MB`: the highest resident memory of a process forked to prepare it once, above what
  it held at its start (the decoder's and the pictures' share of a worker's memory cap).

A JPEG this large is decoded at a reduced DCT scale (`bot.engine.images`); AVIF and HEIC have
no such shortcut, so every pixel is decoded. Encoding a 48 MP HEIC takes x265 about half a
minute here: the run takes a few minutes.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

from PIL import Image

from benchmarks.photos import phone_photo
from bot.config import Settings
from bot.engine.decoding import ImageWorkers
from bot.engine.preparation import THUMBNAIL_SIDE, PrepareSpec, prepare

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


def peak_mb(data: bytes, spec: PrepareSpec) -> float:
    """Highest resident memory of a forked child while it prepares `data`, above what it held at its start."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: prepare once, report, and leave without the parent's clean-up
        try:
            before = _status_kb("VmRSS")
            prepare(data, spec)
            os.write(write, str((_status_kb("VmHWM") - before) / 1024).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        reported = answer.read()
    os.waitpid(pid, 0)
    return float(reported or "nan")


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
    print("| photo | format | file | worker, median (best) | peak MB |")
    print("|---|---|---|---|---|")
    try:
        for megapixels in (int(size) for size in args.sizes.split(",")):
            width, height = SIZES[megapixels]
            for fmt, data in encodings(width, height).items():
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    workers.submit(data, spec).result()
                    times.append(time.perf_counter() - started)
                median, best = statistics.median(times), min(times)
                name = "HEIC" if fmt == "HEIF" else fmt
                print(
                    f"| {megapixels} MP ({width} x {height}) | {name} | {len(data) / 1e6:.1f} MB "
                    f"| {median:.2f} s ({best:.2f} s) | {peak_mb(data, spec):.0f} |",
                    flush=True,
                )
    finally:
        workers.close()


if __name__ == "__main__":
    main()
