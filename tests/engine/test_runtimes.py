"""The visual encoder's CPU runtime: chosen by measurement, checked against fp32 at every start (`bot.engine.runtimes`).

Real sessions on the tiny trained CLIP throughout. The CPU's flags are set by the
test where a candidate needs them (int8 and OpenVINO's bf16 hint run, slower, on
any x86-64 CPU), so these tests pass the same everywhere; OpenVINO's are skipped
where it is not installed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from bot.config import Settings
from bot.engine import ClipEngine, runtimes
from bot.engine.preprocess import ClipImageTransform
from bot.service import ClipService
from tests.support.onnx_noise import perturbed_copy
from tests.support.settings import make_settings
from tests.support.shapes import CLASSES, HELDOUT_SEED, shape_png

AMX_XEON = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
AVX2_VNNI_DESKTOP = frozenset({"avx2", "avx_vnni"})
AVX2_ONLY = frozenset({"avx2"})

needs_openvino = pytest.mark.skipif(not runtimes.openvino_available(), reason="openvino is not installed")


def names(candidates: list[runtimes.Candidate]) -> list[str]:
    return [candidate.name for candidate in candidates]


def test_candidates_are_what_the_cpu_and_settings_allow_fp32_last() -> None:
    def offered(flags: frozenset[str], runtime: str = "auto", precision: str = "auto", ov: bool = True) -> list[str]:
        return names(runtimes.candidates_for(runtime, precision, flags, have_openvino=ov))

    assert offered(AMX_XEON) == ["openvino-bf16", "onnxruntime-int8", "onnxruntime-fp32"]
    assert offered(ZEN4) == ["openvino-bf16", "onnxruntime-int8", "onnxruntime-fp32"]
    assert offered(AVX2_VNNI_DESKTOP) == ["onnxruntime-int8", "onnxruntime-fp32"]
    assert offered(AVX2_ONLY) == ["onnxruntime-fp32"]
    assert offered(frozenset()) == ["onnxruntime-fp32"], "no /proc/cpuinfo: today's path"
    assert offered(AMX_XEON, ov=False) == ["onnxruntime-int8", "onnxruntime-fp32"], "OpenVINO not installed"
    assert offered(AMX_XEON, precision="fp32") == ["onnxruntime-fp32"]
    assert offered(AMX_XEON, runtime="onnxruntime") == ["onnxruntime-int8", "onnxruntime-fp32"]
    assert offered(AMX_XEON, runtime="openvino") == ["openvino-bf16", "openvino-fp32", "onnxruntime-fp32"]
    assert offered(AMX_XEON, precision="bf16") == ["openvino-bf16", "onnxruntime-fp32"]
    assert offered(AVX2_ONLY, precision="bf16") == ["onnxruntime-fp32"], "asked for, but this CPU has no bf16"


def test_settings_refuse_a_precision_the_runtime_does_not_offer() -> None:
    with pytest.raises(ValueError, match="bf16 runs on openvino"):
        Settings(_env_file=None, clip_runtime="onnxruntime", clip_precision="bf16")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="clip_precision"):
        Settings(_env_file=None, clip_precision="fp16")  # type: ignore[call-arg]


def test_int8_needs_the_same_top1_as_well_as_the_cosine() -> None:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((6, 32)).astype(np.float32)
    labels = reference[:3] + 0.01 * rng.standard_normal((3, 32)).astype(np.float32)
    close = reference + 1e-3 * rng.standard_normal(reference.shape).astype(np.float32)
    agreement = runtimes.check_agreement(runtimes.ONNXRUNTIME_INT8, close, reference, labels)
    assert agreement.passed and agreement.min_cosine > 0.999 and agreement.same_top1 == 6
    # One probe's embedding moved to another label: high cosine elsewhere does not save it.
    moved = close.copy()
    moved[0] = labels[1] * 3
    agreement = runtimes.check_agreement(runtimes.ONNXRUNTIME_INT8, moved, reference, labels)
    assert not agreement.passed and agreement.same_top1 < 6
    bf16 = runtimes.check_agreement(runtimes.OPENVINO_BF16, close, reference, labels)
    assert bf16.passed, "bf16 is bound by the cosine alone"


# --------------------------------------------------------------------------- on the tiny model
def broken_builder(tmp_path: Path, broken: str) -> Any:
    """`build_session`, except that `broken` gets an onnxruntime session on a perturbed model."""
    real = runtimes.build_session

    def build(candidate: runtimes.Candidate, source: Path, cache_dir: Path) -> Any:
        if candidate.name != broken:
            return real(candidate, source, cache_dir)
        damaged = perturbed_copy(source, tmp_path / "broken-visual.onnx")
        return onnxruntime.InferenceSession(str(damaged), providers=["CPUExecutionProvider"])

    return build


async def settled_engine(**overrides: object) -> ClipEngine:
    engine = ClipEngine(make_settings(**overrides))
    await engine.start()
    await engine.settled()
    return engine


async def embed_probe(engine: ClipEngine) -> np.ndarray:
    return await engine.embed_image(shape_png("red circle", 7))


async def test_fp32_is_todays_path_and_never_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> object:
        raise AssertionError("CLIP_PRECISION=fp32 measured or checked a runtime")

    monkeypatch.setattr(runtimes, "choose_visual_runtime", must_not_run)
    engine = await settled_engine(clip_precision="fp32")
    try:
        assert engine.runtime == "onnxruntime-fp32"
        session = engine.backend._model.visual_onnx_session  # type: ignore[attr-defined]
        assert isinstance(session, onnxruntime.InferenceSession)
    finally:
        await engine.aclose()


#: The README's bounds: each precision's scores stay within about this cosine of fp32's.
SCORE_BOUND = {"bf16": 0.01, "int8": 0.02}


@pytest.mark.parametrize(
    "runtime, precision, flags, serves",
    [
        ("onnxruntime", "int8", frozenset({"avx512_vnni"}), "onnxruntime-int8"),
        pytest.param("openvino", "bf16", frozenset({"amx_bf16"}), "openvino-bf16", marks=needs_openvino),
    ],
)
async def test_a_reduced_precision_serves_once_it_agrees_and_keeps_heldout_top1(
    runtime: str,
    precision: str,
    flags: frozenset[str],
    serves: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    service: ClipService,
) -> None:
    """The held-out shapes through the service: only fp32's near-ties (top two within the bound) may change."""
    monkeypatch.setattr(runtimes, "cpu_flags", lambda: flags)
    with caplog.at_level(logging.INFO, logger="bot.engine"):
        engine = await settled_engine(clip_runtime=runtime, clip_precision=precision)
    try:
        assert engine.runtime == serves
        choice = engine.backend.runtime_choice  # type: ignore[attr-defined]
        assert choice.agreement.passed and choice.agreement.min_cosine >= runtimes.MIN_COSINE[precision]
        assert any(r.getMessage().startswith(f"CLIP visual encoder runs on {serves}") for r in caplog.records)
        # The text encoder follows (checked against fp32 too): the labels below go through it.
        assert engine.backend.text_mode == f"real length, {serves}"  # type: ignore[attr-defined]
        reduced = ClipService(engine, engine.settings)
        rng = np.random.default_rng(HELDOUT_SEED)
        images = [shape_png(CLASSES[i % len(CLASSES)], int(rng.integers(1 << 31))) for i in range(240)]
        exact = await asyncio.gather(*(service.classify(image, CLASSES, "a photo of a {}") for image in images))
        fast = await asyncio.gather(*(reduced.classify(image, CLASSES, "a photo of a {}") for image in images))
        bound, drift, flipped = SCORE_BOUND[precision], 0.0, 0
        for want, got in zip(exact, fast, strict=True):
            by_label = {score.label: score.cosine for score in got.scores}
            drift = max(drift, *(abs(score.cosine - by_label[score.label]) for score in want.scores))
            if got.best.label != want.best.label:
                flipped += 1
                assert want.scores[0].cosine - want.scores[1].cosine < bound, "only a near-tie may flip"
        right = sum(r.best.label == CLASSES[i % len(CLASSES)] for i, r in enumerate(fast))
        with capsys.disabled():
            print(f"\n{serves}: held-out top-1 {right}/{len(images)}, {flipped} flipped, max score drift {drift:.4f}")
        assert drift < bound
        assert right / len(images) >= 0.90
    finally:
        await engine.aclose()


async def test_a_candidate_that_disagrees_falls_back_to_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, engine: ClipEngine
) -> None:
    monkeypatch.setattr(runtimes, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    monkeypatch.setattr(runtimes, "build_session", broken_builder(tmp_path, "onnxruntime-int8"))
    with caplog.at_level(logging.INFO, logger="bot.engine"):
        fallen = await settled_engine(clip_runtime="onnxruntime", clip_precision="int8")
    try:
        assert fallen.runtime == "onnxruntime-fp32"
        messages = [r.getMessage() for r in caplog.records]
        assert any("onnxruntime-int8 disagrees with fp32, falling back" in m and "min cosine" in m for m in messages)
        assert any(m.startswith("CLIP visual encoder runs on onnxruntime-fp32") for m in messages)
        # It serves the fp32 answers: the same embedding as the fp32 engine to 1e-4.
        np.testing.assert_allclose(await embed_probe(fallen), await embed_probe(engine), atol=1e-4)
    finally:
        await fallen.aclose()


@needs_openvino
async def test_a_broken_first_candidate_falls_back_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtimes, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(runtimes, "build_session", broken_builder(tmp_path, "openvino-bf16"))
    with caplog.at_level(logging.WARNING, logger="bot.engine"):
        engine = await settled_engine(clip_runtime="openvino", clip_precision="auto")
    try:
        assert engine.runtime == "openvino-fp32", "the next candidate, not straight to the reference"
        assert any("openvino-bf16 disagrees with fp32, falling back" in r.getMessage() for r in caplog.records)
        assert engine.backend.runtime_choice.agreement.min_cosine >= 0.9999  # type: ignore[attr-defined]
    finally:
        await engine.aclose()


async def test_the_decision_is_cached_with_what_it_was_measured_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, engine: ClipEngine
) -> None:
    model = engine.backend._model  # type: ignore[attr-defined]
    transform = ClipImageTransform(model.clip_preprocess)

    def choose(flags: frozenset[str]) -> runtimes.RuntimeChoice:
        return runtimes.choose_visual_runtime(
            model,
            model.visual_onnx_session,
            runtime="onnxruntime",
            precision="int8",
            cache_root=tmp_path,
            transform=transform,
            flags=flags,
        )

    with caplog.at_level(logging.INFO, logger="bot.engine"):
        first = choose(frozenset({"avx512_vnni"}))
    assert first.measured_now and first.name == "onnxruntime-int8"
    assert any(r.getMessage().startswith("measuring CLIP's visual runtimes") for r in caplog.records)
    [decision_file] = list(tmp_path.glob("*/decision.json"))
    decision = json.loads(decision_file.read_text())
    basis = decision["measured_on"]
    assert basis["cpu_flags"] == ["avx512_vnni"]
    assert basis["libraries"]["onnxruntime"] == onnxruntime.__version__
    assert basis["model"] and basis["candidates"] == ["onnxruntime-int8", "onnxruntime-fp32"]
    assert set(decision["timings_s"]) == {"onnxruntime-int8", "onnxruntime-fp32"}
    assert (decision_file.parent / "visual-int8.onnx").is_file(), "the quantized model is kept"

    again = choose(frozenset({"avx512_vnni"}))
    assert not again.measured_now and again.timings_s == first.timings_s
    assert again.agreement is not None and again.agreement.passed, "checked again at every start"

    other_cpu = choose(frozenset({"avx_vnni"}))
    assert other_cpu.measured_now, "another CPU: measured anew"
    assert len(list(tmp_path.glob("*/decision.json"))) == 2
