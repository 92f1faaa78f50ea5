"""The visual encoder on the fastest CPU runtime that agrees with fp32: chosen by measurement, checked at every start.

Today's path is onnxruntime in fp32 (inference's own session). Most x86 server
CPUs can do much better: OpenVINO in bf16 where the CPU has AMX or AVX512-BF16,
int8 matrix products where it has VNNI. Which is fastest depends on the CPU, so
it is measured, not guessed:

- At the first start on a machine (or when the model, the CPU's flags or the
  libraries change), every candidate the CPU supports is built and timed on the
  real model; the order, fastest first, is cached under
  `MODEL_CACHE_DIR/clipbot/runtime/<key>/` with what it was measured on, next to the
  converted files (the int8 model, OpenVINO's compiled blobs).
- At every start, before a reduced-precision session serves, it embeds a fixed set
  of probe images next to the fp32 session (`check_agreement`); a candidate below its
  bound is dropped with a log line, and the next one is tried. onnxruntime fp32 needs
  no check: it is the reference, and the last resort.

Every function here is blocking (seconds): the engine runs them in a thread while
inference's fp32 session serves.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.engine.runtime_probes import PROBE_PROMPTS, probe_images

log = logging.getLogger(__name__)

#: Bumped when candidates, probes or timing change: older decisions are then measured again.
DECISION_VERSION = 1
#: The CPU flags that decide which candidates can run fast (from /proc/cpuinfo).
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")
#: Lowest cosine between a candidate's probe embeddings and fp32's, per precision.
MIN_COSINE = {"fp32": 0.9999, "bf16": 0.999, "int8": 0.995}
#: Precisions that must also give fp32's top-1 label for every probe image.
SAME_TOP1_REQUIRED = frozenset({"int8"})
#: Timed runs per candidate at the first start (median of a batch of 1, after a warm-up run).
TIMED_RUNS = 5
PROBE_BATCH = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    runtime: str  # "onnxruntime" | "openvino"
    precision: str  # "fp32" | "bf16" | "int8"

    @property
    def name(self) -> str:
        return f"{self.runtime}-{self.precision}"


REFERENCE = Candidate("onnxruntime", "fp32")
OPENVINO_BF16 = Candidate("openvino", "bf16")
OPENVINO_FP32 = Candidate("openvino", "fp32")
ONNXRUNTIME_INT8 = Candidate("onnxruntime", "int8")


@dataclass(frozen=True, slots=True)
class Agreement:
    """How a candidate's probe embeddings compare with fp32's."""

    min_cosine: float
    #: Probe images whose top-1 probe label is fp32's, out of all probes.
    same_top1: int
    probes: int
    passed: bool


@dataclass(slots=True)
class RuntimeChoice:
    """What serves the visual encoder, and why (for the log, /about, `--json` and the bench)."""

    candidate: Candidate = REFERENCE
    #: The session-like object to swap in; None: keep the fp32 session.
    session: Any = None
    agreement: Agreement | None = None
    #: Median seconds per batch of 1, per candidate name (from the cache or this start).
    timings_s: dict[str, float] = field(default_factory=dict)
    measured_now: bool = False
    #: Candidates dropped at this start, with the reason.
    rejected: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.candidate.name


# --------------------------------------------------------------------------- what can run here
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: then no fast candidate)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_model_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown"


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def candidates_for(
    runtime: str, precision: str, flags: frozenset[str], *, have_openvino: bool | None = None
) -> list[Candidate]:
    """The candidates this CPU and these settings allow, reference (onnxruntime fp32) last.

    `CLIP_PRECISION=fp32` with `CLIP_RUNTIME=auto|onnxruntime` is the reference alone (today's path).
    """
    if have_openvino is None:
        have_openvino = openvino_available()
    options: list[Candidate] = []
    if have_openvino and flags & {"amx_bf16", "avx512_bf16"}:
        options.append(OPENVINO_BF16)
    if flags & {"avx512_vnni", "avx_vnni"}:
        options.append(ONNXRUNTIME_INT8)
    if have_openvino and runtime == "openvino" and precision in ("auto", "fp32"):
        options.append(OPENVINO_FP32)  # only when asked for: slower than onnxruntime's fp32 (measured)
    chosen = [
        candidate
        for candidate in options
        if runtime in ("auto", candidate.runtime) and precision in ("auto", candidate.precision)
    ]
    return [*chosen, REFERENCE]


# --------------------------------------------------------------------------- sessions
class _Input:
    def __init__(self, name: str, shape: list[Any]) -> None:
        self.name = name
        self.shape = shape


class OpenVinoSession:
    """An OpenVINO compiled model behind the slice of onnxruntime's session API that inference's `Clip` uses.

    One infer request, under a lock: calls are serialised in the CLIP thread anyway, and
    a second request would hold a second set of activations. The input is cast to the
    model's element type (token ids may be int32 or int64), as onnxruntime callers expect.
    """

    def __init__(self, compiled: Any, input_name: str, input_shape: list[Any]) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self._output = compiled.output(0)
        self._dtype = compiled.input(0).get_element_type().to_dtype()
        self._inputs = [_Input(input_name, input_shape)]

    def get_inputs(self) -> list[_Input]:
        return self._inputs

    def get_providers(self) -> list[str]:
        return ["OpenVINO"]

    def run(self, output_names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (given,) = feed.values()  # the one input, by whichever of its names (OpenVINO may know several)
        values = np.ascontiguousarray(given, dtype=self._dtype)
        with self._lock:
            result = self._request.infer([values])
            return [np.array(result[self._output], dtype=np.float32)]  # a copy: the request reuses its buffer


def build_session(candidate: Candidate, source: Path, cache_dir: Path) -> Any:
    """A session for `candidate` on `source` (visual.onnx, or the real-length text graph for
    `bot.engine.text_runtime`); converted files are kept in `cache_dir`."""
    if candidate.runtime == "openvino":
        import openvino

        core = openvino.Core()
        core.set_property({"CACHE_DIR": str(cache_dir / "openvino")})  # the compiled blob: later starts skip compiling
        hint = {"bf16": "bf16", "fp32": "f32"}[candidate.precision]
        compiled = core.compile_model(str(source), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        port = compiled.input(0)
        shape = [dim.get_length() if dim.is_static else None for dim in port.get_partial_shape()]
        return OpenVinoSession(compiled, port.get_any_name(), shape)
    if candidate == ONNXRUNTIME_INT8:
        import onnxruntime

        from bot.engine.sessions import session_options

        quantized = cache_dir / f"{source.stem}-int8.onnx"
        if not quantized.is_file():
            _quantize_dynamic(source, quantized)
        return onnxruntime.InferenceSession(
            str(quantized), sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
    raise ValueError(f"no builder for {candidate.name}")


def _quantize_dynamic(source: Path, destination: Path) -> None:
    """int8 weights for MatMul/Gemm (per channel), activations quantized at run time.

    Constants are folded first (onnxruntime's basic optimisations): exporters often feed
    a MatMul a transposed weight, which the quantizer would otherwise skip as not constant.
    Convolutions stay fp32: onnxruntime has no CPU kernel for ConvInteger.
    """
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folded = destination.with_name(f".{destination.name}.folded")
    partial = destination.with_name(f".{destination.name}.partial")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
    root = logging.getLogger()
    root.addFilter(_quiet)  # the quantizer logs a line per tensor on the root logger
    try:
        quantize_dynamic(
            folded,
            partial,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    finally:
        root.removeFilter(_quiet)
        folded.unlink(missing_ok=True)
    os.replace(partial, destination)


def _quiet(record: logging.LogRecord) -> bool:
    return record.levelno > logging.WARNING


# --------------------------------------------------------------------------- probes and agreement
def embed_all(session: Any, pixels: np.ndarray) -> np.ndarray:
    """`session`'s embeddings of `pixels` ([n, 3, s, s]), in batches as the engine sends them."""
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: pixels[i : i + PROBE_BATCH]})[0] for i in range(0, len(pixels), PROBE_BATCH)]
    return np.concatenate(parts).astype(np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def check_agreement(
    candidate: Candidate, embeddings: np.ndarray, reference: np.ndarray, label_embeddings: np.ndarray
) -> Agreement:
    """The candidate's probe embeddings against fp32's: lowest cosine, and (int8) the same top-1 probe label."""
    got, want, labels = _unit(embeddings), _unit(reference), _unit(label_embeddings)
    min_cosine = float(np.min(np.sum(got * want, axis=-1))) if got.shape == want.shape else -1.0
    same_top1 = int(np.sum(np.argmax(got @ labels.T, axis=1) == np.argmax(want @ labels.T, axis=1)))
    passed = min_cosine >= MIN_COSINE[candidate.precision] and (
        candidate.precision not in SAME_TOP1_REQUIRED or same_top1 == len(want)
    )
    return Agreement(min_cosine, same_top1, len(want), passed)


# --------------------------------------------------------------------------- the decision
def versions() -> dict[str, str]:
    found = {}
    for name in ("onnxruntime", "openvino"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def measured_on(source: Path, flags: frozenset[str], candidates: Sequence[Candidate]) -> dict[str, Any]:
    """What a decision depends on: the model file, the CPU, the libraries, the candidates tried."""
    stat = source.stat()
    model = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return {
        "version": DECISION_VERSION,
        "model": model,
        "cpu": cpu_model_name(),
        "cpu_flags": sorted(flags & set(RELEVANT_FLAGS)),
        "libraries": versions(),
        "candidates": [candidate.name for candidate in candidates],
    }


def decision_dir(cache_root: Path, basis: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root / key


def _time_session(session: Any, pixels: np.ndarray) -> float:
    name = session.get_inputs()[0].name
    feed = {name: pixels[:1]}
    session.run(None, feed)  # warm-up: first runs allocate and pick kernels
    runs = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        session.run(None, feed)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def choose_visual_runtime(
    model: Any,
    reference_session: Any,
    *,
    runtime: str,
    precision: str,
    cache_root: Path,
    transform: Callable[[Image.Image], np.ndarray],
    flags: frozenset[str] | None = None,
    builder: Callable[[Candidate, Path, Path], Any] | None = None,
) -> RuntimeChoice:
    """The fastest candidate that agrees with `reference_session` (fp32) on the probes.

    Measures the candidates when no decision is cached for this model, CPU and
    libraries; then checks them fastest first. Blocking: seconds.
    """
    flags = cpu_flags() if flags is None else flags
    builder = builder or build_session
    candidates = candidates_for(runtime, precision, flags)
    if candidates == [REFERENCE]:
        return RuntimeChoice()
    source = Path(model.cache_file("visual.onnx"))
    basis = measured_on(source, flags, candidates)
    folder = decision_dir(cache_root, basis)
    decision_file = folder / "decision.json"
    pixels = np.concatenate([transform(image) for image in probe_images()]).astype(np.float32)
    reference = embed_all(reference_session, pixels)
    labels = np.asarray(model.embed_text(list(PROBE_PROMPTS)), dtype=np.float32)

    timings: dict[str, float] = {}
    measured_now = False
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        cached = json.loads(decision_file.read_text())
        if cached["measured_on"] == basis:
            timings = {str(name): float(seconds) for name, seconds in cached["timings_s"].items()}
    if not timings:
        log.info(
            "measuring CLIP's visual runtimes on this CPU (first start for this model, CPU and libraries; "
            "takes a few seconds, more for int8: quantized once): %s",
            ", ".join(candidate.name for candidate in candidates),
        )
        folder.mkdir(parents=True, exist_ok=True)
        timings = _measure(candidates, source, folder, pixels, reference_session, builder)
        measured_now = True
        partial = folder / ".decision.json.partial"
        partial.write_text(json.dumps({"measured_on": basis, "timings_s": timings}, indent=2))
        os.replace(partial, decision_file)

    choice = RuntimeChoice(timings_s=timings, measured_now=measured_now)
    # Left to itself (auto, auto), only what beats fp32 is worth its reduced precision;
    # a runtime or precision asked for by name is used when it agrees, fast or not.
    left_to_us = (runtime, precision) == ("auto", "auto")
    reference_time = timings.get(REFERENCE.name, float("inf")) if left_to_us else float("inf")
    ranked = sorted(
        (c for c in candidates if c != REFERENCE and timings.get(c.name, float("inf")) < reference_time),
        key=lambda c: timings[c.name],
    )
    for candidate in ranked:
        try:
            session = builder(candidate, source, folder)
            agreement = check_agreement(candidate, embed_all(session, pixels), reference, labels)
        except Exception as exc:  # a runtime that fails to build or run here: the next one
            choice.rejected.append(f"{candidate.name}: {type(exc).__name__}: {str(exc)[:200]}")
            log.warning("CLIP runtime %s failed, trying the next: %s", candidate.name, choice.rejected[-1])
            continue
        if agreement.passed:
            choice.candidate, choice.session, choice.agreement = candidate, session, agreement
            break
        choice.rejected.append(
            f"{candidate.name}: min cosine {agreement.min_cosine:.5f} (needs {MIN_COSINE[candidate.precision]}), "
            f"same top-1 {agreement.same_top1}/{agreement.probes}"
        )
        log.warning("CLIP runtime %s disagrees with fp32, falling back: %s", candidate.name, choice.rejected[-1])
        del session
        gc.collect()
    log.info("%s", describe(choice))
    return choice


def _measure(
    candidates: Sequence[Candidate],
    source: Path,
    folder: Path,
    pixels: np.ndarray,
    reference_session: Any,
    builder: Callable[[Candidate, Path, Path], Any],
) -> dict[str, float]:
    """Seconds per batch of 1 for each candidate that builds and runs (one at a time: memory)."""
    timings = {REFERENCE.name: _time_session(reference_session, pixels)}
    for candidate in candidates:
        if candidate == REFERENCE:
            continue
        try:
            session = builder(candidate, source, folder)
            timings[candidate.name] = _time_session(session, pixels)
        except Exception as exc:
            log.warning("CLIP runtime %s cannot run here: %s: %s", candidate.name, type(exc).__name__, str(exc)[:200])
        session = None
        gc.collect()
    return timings


def describe(choice: RuntimeChoice) -> str:
    """One line: which runtime serves the visual encoder, and why, with the timings."""
    timings = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in sorted(choice.timings_s.items()))
    source = "measured now" if choice.measured_now else "measured earlier, cached"
    line = f"CLIP visual encoder runs on {choice.name}"
    if choice.agreement is not None:
        agreement = choice.agreement
        line += (
            f" (agrees with fp32: min cosine {agreement.min_cosine:.5f}, "
            f"same top-1 {agreement.same_top1}/{agreement.probes})"
        )
    elif choice.timings_s:
        line += " (no faster candidate agrees with fp32)"
    if timings:
        line += f"; batch of 1 ({source}): {timings}"
    if choice.rejected:
        line += f"; rejected: {'; '.join(choice.rejected)}"
    return line


def as_dict(choice: RuntimeChoice) -> dict[str, Any]:
    """The choice for `--json` and the bench."""
    return {
        "runtime": choice.name,
        "agreement": asdict(choice.agreement) if choice.agreement else None,
        "timings_s": choice.timings_s,
        "rejected": choice.rejected,
    }
