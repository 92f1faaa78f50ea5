"""What a clip costs a decode worker: choosing and cropping its frames (`bot.engine.preparation.prepare`).

    .venv/bin/python -m benchmarks.clips [--repeats 5]

Generates H.264 clips in memory (libx264, ultrafast; moving noise, so every frame differs), then
times `prepare` in this process (as a worker runs it: crop 224, thumbnail) for each. Key frames
every 250 frames is x264's default (phones and screen recorders usually put one every 1-2 s).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from fractions import Fraction

import av
import numpy as np

from bot.engine.preparation import THUMBNAIL_SIDE, PrepareSpec, prepare

#: (label, width, height, seconds, key frame interval in frames) at 30 frames a second.
CASES = [
    ("720p, 6 s, one key frame", 1280, 720, 6, 250),
    ("720p, 30 s, key frames every 8.3 s", 1280, 720, 30, 250),
    ("720p, 30 s, key frames every 1 s", 1280, 720, 30, 30),
    ("1080p, 20 s, key frames every 8.3 s", 1920, 1080, 20, 250),
    ("1080p, 9 s, one key frame (every frame decoded: the worst case)", 1920, 1080, 9, 300),
]


def make_clip(width: int, height: int, seconds: int, gop: int, fps: int = 30) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(gop)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        tile = np.random.default_rng(0).integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        picture = np.kron(tile, np.ones((8, 8, 1), dtype=np.uint8))
        for index in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.roll(picture, index * 4, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = PrepareSpec(crop=224, max_pixels=50_000_000, thumbnail=THUMBNAIL_SIDE)
    print("| clip | size | frames used | prepare, median (min) |")
    print("|---|---|---|---|")
    for label, width, height, seconds, gop in CASES:
        data = make_clip(width, height, seconds, gop)
        times, frames = [], 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            frames = prepare(data, spec).frames
            times.append(time.perf_counter() - started)
        median, best = statistics.median(times), min(times)
        print(f"| {label} | {len(data) / 1e6:.1f} MB | {frames} | {median:.2f} s ({best:.2f} s) |")


if __name__ == "__main__":
    main()
