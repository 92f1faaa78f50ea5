"""Each CPU runtime on the real model (issue 22): visual batches, threads, and the text encoder at real length.

    .venv/bin/python -m benchmarks.runtimes --model-dir models/vit-b-16-random [--runs 10]
        [--parts visual threads text] [--only openvino-bf16 ...]

The candidates the engine chooses from (`bot.engine.runtimes`), built the way it builds
them, one after another in this process: onnxruntime fp32 (the bot's tuned session, the
reference), onnxruntime int8 (dynamic, MatMul/Gemm), OpenVINO bf16 and OpenVINO f32.

- `visual`: median ms for a batch of 1 and of 4, the lowest cosine to fp32 on the
  engine's probe images, and the largest change of an image-prompt score (cosine) from
  fp32's over those images and the engine's probe prompts.
- `threads`: each candidate on 1 thread and on every core (its default, what the
  engine uses), and per-image ms for batches of 1, 2, 4 and 8 (the CPU batch limit is 4),
  timed in turn round after round.
- `text`: the text graph rewritten for real-length prompts (as the bot runs it), eight
  labels of a few tokens, in each precision, timed in turn: does a reduced precision pay there too?

To see what a CPU without AMX or without bf16 gets, run it again with oneDNN's ISA cap,
which OpenVINO's CPU plugin honours (onnxruntime's kernels have no such switch):
`ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16` (Zen 4: bf16 and VNNI, no AMX) or
`ONEDNN_MAX_CPU_ISA=AVX2` (AVX2 only: bf16 is then emulated or falls back to f32).
Prints one JSON object per part. Generated files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bot.engine import runtimes
from bot.engine.runtime_probes import PROBE_PROMPTS, probe_images
from bot.engine.sessions import session_options

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)[:, None, None]
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)[:, None, None]
LABELS = ("cat", "dog", "red car", "bloody mary", "man", "beach at sunset", "globe", "pizza")


def median_ms(run: Callable[[], Any], runs: int) -> float:
    run()  # warm-up: first runs allocate and pick kernels
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def probe_pixels(resolution: int) -> np.ndarray:
    """The engine's probe images, resized and normalised as CLIP expects (no centre crop: square already)."""
    arrays = []
    for image in probe_images():
        resized = np.asarray(image.convert("RGB").resize((resolution, resolution)), dtype=np.float32) / 255
        arrays.append((resized.transpose(2, 0, 1) - MEAN) / STD)
    return np.stack(arrays).astype(np.float32)


def min_cosine(got: np.ndarray, want: np.ndarray) -> float:
    return round(float(np.min(np.sum(unit(got) * unit(want), axis=-1))), 5)


def openvino_session(source: Path, precision: str, threads: int = 0) -> Any:
    import openvino

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": {"bf16": "bf16", "fp32": "f32"}[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(str(source), "CPU", config)
    port = compiled.input(0)
    return runtimes.OpenVinoSession(compiled, port.get_any_name(), [None] * len(port.get_partial_shape()))


def onnxruntime_session(source: Path, threads: int = 0) -> Any:
    import onnxruntime

    options = session_options()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])


ONLY: set[str] = set()


def builders(source: Path, work: Path) -> dict[str, Callable[[int], Any]]:
    """name -> (threads -> session); 0 threads is the runtime's default (every core here)."""
    int8 = work / f"{source.stem}-int8.onnx"

    def quantized(threads: int) -> Any:
        if not int8.is_file():
            runtimes._quantize_dynamic(source, int8)
        return onnxruntime_session(int8, threads)

    found: dict[str, Callable[[int], Any]] = {
        "onnxruntime-fp32": lambda threads: onnxruntime_session(source, threads),
        "onnxruntime-int8": quantized,
    }
    if runtimes.openvino_available():  # x86-64 Linux only (pyproject.toml)
        found["openvino-bf16"] = lambda threads: openvino_session(source, "bf16", threads)
        found["openvino-fp32"] = lambda threads: openvino_session(source, "fp32", threads)
    return {name: build for name, build in found.items() if not ONLY or name in ONLY | {"onnxruntime-fp32"}}


def run(session: Any, batch: np.ndarray) -> np.ndarray:
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0], dtype=np.float32)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def prompt_embeddings(model_dir: Path) -> np.ndarray:
    """The probe prompts through the original fp32 text graph (77 tokens), as unit vectors."""
    from clip.clip import tokenize

    session = onnxruntime_session(model_dir / "textual.onnx")
    return unit(run(session, tokenize(list(PROBE_PROMPTS)).numpy().astype(np.int32)))


def visual_pixels(model_dir: Path) -> np.ndarray:
    """The probe images at the model's input resolution."""
    return probe_pixels(int(onnxruntime_session(model_dir / "visual.onnx").get_inputs()[0].shape[-1]))


def visual(model_dir: Path, work: Path, runs: int) -> dict[str, Any]:
    pixels = visual_pixels(model_dir)
    prompts = prompt_embeddings(model_dir)
    figures: dict[str, Any] = {}
    reference: np.ndarray | None = None
    for name, build in builders(model_dir / "visual.onnx", work).items():
        started = time.perf_counter()
        session = build(0)
        build_s = time.perf_counter() - started
        embeddings = np.concatenate([run(session, pixels[i : i + 4]) for i in range(0, len(pixels), 4)])
        reference = embeddings if reference is None else reference
        figures[name] = {
            "build_s": round(build_s, 1),
            "batch1_ms": median_ms(lambda s=session: run(s, pixels[:1]), runs),
            "batch4_ms": median_ms(lambda s=session: run(s, pixels[:4]), max(3, runs // 2)),
            "min_cosine_to_fp32": min_cosine(embeddings, reference),
            "max_score_change": round(float(np.abs((unit(embeddings) - unit(reference)) @ prompts.T).max()), 5),
        }
        del session
    return {"part": "visual", **figures}


def interleaved_ms(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median ms of each call, timed in turn round after round: a shared machine's drift hits all alike."""
    for call in calls.values():
        call()  # warm-up
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            started = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - started)
    return {key: round(statistics.median(values) * 1000, 1) for key, values in times.items()}


def threads(model_dir: Path, work: Path, runs: int) -> dict[str, Any]:
    """Per candidate: a batch of 1 on 1 and on every core, and per-image ms for batches of 1 to 8."""
    pixels = visual_pixels(model_dir)
    figures: dict[str, Any] = {}
    for name, build in builders(model_dir / "visual.onnx", work).items():
        if name == "openvino-fp32":
            continue
        one, every = build(1), build(0)
        calls: dict[str, Callable[[], Any]] = {"1 thread batch1": lambda s=one: run(s, pixels[:1])}
        for size in (1, 2, 4, 8):
            calls[f"batch{size}"] = lambda s=every, n=size: run(s, pixels[:n])
        timed = interleaved_ms(calls, max(3, runs // 2))
        figures[name] = {
            "1_thread_batch1_ms": timed["1 thread batch1"],
            **{f"batch{size}_ms_per_image": round(timed[f"batch{size}"] / size, 1) for size in (1, 2, 4, 8)},
        }
        del one, every
    return {"part": "threads", **figures}


def text(model_dir: Path, work: Path, runs: int) -> dict[str, Any]:
    from clip.clip import tokenize

    from bot.engine.text_graph import build_dynamic_text_model, trim_tokens

    real_length = work / "textual-real-length.onnx"
    build_dynamic_text_model(model_dir / "textual.onnx", real_length, verify=False)
    tokens = trim_tokens(tokenize([f"a photo of a {label}" for label in LABELS]).numpy().astype(np.int32))
    figures: dict[str, Any] = {"labels": len(LABELS), "tokens": int(tokens.shape[1])}
    sessions: dict[str, Any] = {}
    for name, build in builders(real_length, work).items():
        try:
            sessions[name] = build(0)
            run(sessions[name], tokens)
        except Exception as exc:  # a runtime that cannot take this graph: say so
            figures[name] = f"{type(exc).__name__}: {str(exc)[:160]}"
            sessions.pop(name, None)
    reference = run(sessions["onnxruntime-fp32"], tokens)
    timed = interleaved_ms({name: lambda s=session: run(s, tokens) for name, session in sessions.items()}, runs)
    for name, session in sessions.items():
        figures[name] = {"batch_ms": timed[name], "min_cosine_to_fp32": min_cosine(run(session, tokens), reference)}
    return {"part": "text", **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="a folder with visual.onnx and textual.onnx")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per figure (median)")
    parser.add_argument("--parts", nargs="+", choices=("visual", "threads", "text"), default=["visual"])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these candidates (onnxruntime-fp32 is always run)")
    args = parser.parse_args()
    ONLY.update(args.only or ())
    flags = sorted(runtimes.cpu_flags() & set(runtimes.RELEVANT_FLAGS))
    header = {"cpu": runtimes.cpu_model_name(), "flags": flags, "cores": os.cpu_count()}
    header["onednn_max_cpu_isa"] = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    print(json.dumps({"part": "machine", **header, **runtimes.versions()}), flush=True)
    parts = {"visual": visual, "threads": threads, "text": text}
    with tempfile.TemporaryDirectory(prefix="runtimes-bench-") as work:
        for part in args.parts:
            print(json.dumps(parts[part](args.model_dir, Path(work), args.runs)), flush=True)


if __name__ == "__main__":
    main()
