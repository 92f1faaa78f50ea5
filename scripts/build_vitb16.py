"""Build a full-size, random-weight CLIP ViT-B/16 in Roboflow's ONNX layout.

Benchmarks and load tests need the real model's graph, size and cost, but this machine
cannot download the real weights.  Random weights give the same compute per call (answers
are meaningless), so timings and memory use measured with it transfer to production.

Usage: python -m scripts.build_vitb16 [--out models/vit-b-16-random] [--seed 0] [--bench 5]
(``models/`` is git-ignored: the fp32 files are ~600 MB.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from clip.clip import tokenize
from clip.model import CLIP

if __package__ in (None, ""):  # allow `python scripts/build_vitb16.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.onnx_export import export_roboflow_layout

# OpenAI's ViT-B/16 hyper-parameters (clip.model.build_model on the released checkpoint).
VIT_B_16: dict[str, int] = {
    "embed_dim": 512,
    "image_resolution": 224,
    "vision_layers": 12,
    "vision_width": 768,
    "vision_patch_size": 16,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 512,
    "transformer_heads": 8,
    "transformer_layers": 12,
}


def build(out_dir: Path, seed: int) -> float:
    """Create the random model and export it as fp32; returns the seconds taken."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = CLIP(**VIT_B_16).eval()
    export_roboflow_layout(model, out_dir, fp16_weights=False)
    return time.perf_counter() - t0


def bench(out_dir: Path, runs: int) -> dict[str, float]:
    """Median seconds of batch-1 visual and textual runs on the CPU (after one warm-up)."""
    providers = ["CPUExecutionProvider"]
    result: dict[str, float] = {}
    resolution = VIT_B_16["image_resolution"]
    inputs = {
        "visual.onnx": np.random.default_rng(0).standard_normal((1, 3, resolution, resolution)).astype(np.float32),
        "textual.onnx": tokenize(["a photo of a red circle"]).numpy().astype(np.int32),
    }
    for name, array in inputs.items():
        t0 = time.perf_counter()
        session = ort.InferenceSession(str(out_dir / name), providers=providers)
        result[f"{name}_load_s"] = round(time.perf_counter() - t0, 3)
        feed = {session.get_inputs()[0].name: array}
        session.run(None, feed)  # warm-up: first run allocates and picks kernels
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
        result[f"{name}_batch1_median_s"] = round(statistics.median(times), 4)
    return result


def main(argv: list[str] | None = None) -> None:
    """Build (unless --bench-only), then print build time, file sizes and CPU timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/vit-b-16-random"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench", type=int, default=5, help="timed runs per file (0: skip)")
    parser.add_argument("--bench-only", action="store_true", help="reuse existing files")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    report: dict[str, object] = {"out": str(args.out)}
    if not args.bench_only:
        report["build_seconds"] = round(build(args.out, args.seed), 1)
    report["sizes_mb"] = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(args.out.glob("*.onnx"))}
    if args.bench > 0:
        report["cpu_timings"] = bench(args.out, args.bench)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
