"""The committed tiny CLIP model has Roboflow's ONNX layout and still knows its classes.

Other tests load tests/assets/tiny-clip through inference's real ``Clip`` loader; these
checks fail fast (and explain why) if the files are missing, too big, or shaped in a way
that loader would reject or misread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from clip.clip import _transform, tokenize

from tests.support.shapes import CLASSES, caption, render

MODEL_DIR = Path(__file__).parent / "assets" / "tiny-clip"
FILES = ("visual.onnx", "textual.onnx", "model.json")
MAX_TOTAL_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def meta() -> dict[str, Any]:
    """model.json, written by scripts/train_tiny_clip.py."""
    return json.loads((MODEL_DIR / "model.json").read_text())


def _session(name: str) -> ort.InferenceSession:
    """A CPU session, as inference creates when no GPU provider is available."""
    return ort.InferenceSession(str(MODEL_DIR / name), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def visual() -> ort.InferenceSession:
    """The image tower."""
    return _session("visual.onnx")


@pytest.fixture(scope="module")
def textual() -> ort.InferenceSession:
    """The text tower."""
    return _session("textual.onnx")


def test_files_exist_and_fit_budget() -> None:
    missing = [f for f in FILES if not (MODEL_DIR / f).is_file()]
    assert not missing, f"missing {missing}; run python -m scripts.train_tiny_clip"
    total = sum((MODEL_DIR / f).stat().st_size for f in FILES)
    assert total <= MAX_TOTAL_BYTES, f"{total} bytes > 10 MB"


def test_metadata(meta: dict[str, Any]) -> None:
    assert meta["classes"] == CLASSES
    assert meta["template"] == "a photo of a {}"
    assert meta["heldout_top1"] >= 0.95


def test_visual_signature(visual: ort.InferenceSession, meta: dict[str, Any]) -> None:
    (inp,) = visual.get_inputs()
    (out,) = visual.get_outputs()
    resolution = meta["resolution"]
    assert inp.type == "tensor(float)"
    # inference reads the resolution from shape[2]; batch must be symbolic (dynamic).
    assert isinstance(inp.shape[0], str)
    assert inp.shape[1:] == [3, resolution, resolution]
    assert out.type == "tensor(float)"
    assert isinstance(out.shape[0], str) and out.shape[1] == meta["embed_dim"]


def test_textual_signature(textual: ort.InferenceSession, meta: dict[str, Any]) -> None:
    (inp,) = textual.get_inputs()
    (out,) = textual.get_outputs()
    assert inp.type == "tensor(int32)"  # inference feeds tokenize(...).astype(np.int32)
    assert isinstance(inp.shape[0], str) and inp.shape[1] == 77
    assert out.type == "tensor(float)"
    assert isinstance(out.shape[0], str) and out.shape[1] == meta["embed_dim"]


def test_batch_of_three(visual: ort.InferenceSession, textual: ort.InferenceSession, meta: dict[str, Any]) -> None:
    resolution, dim = meta["resolution"], meta["embed_dim"]
    images = np.random.default_rng(0).standard_normal((3, 3, resolution, resolution))
    img = visual.run(None, {visual.get_inputs()[0].name: images.astype(np.float32)})[0]
    tokens = tokenize([caption(c) for c in CLASSES[:3]]).numpy().astype(np.int32)
    txt = textual.run(None, {textual.get_inputs()[0].name: tokens})[0]
    for out in (img, txt):
        assert out.shape == (3, dim) and out.dtype == np.float32
        assert np.isfinite(out).all()


def test_recognises_shapes(visual: ort.InferenceSession, textual: ort.InferenceSession, meta: dict[str, Any]) -> None:
    """A real model, not noise: fresh images are matched to their own caption."""
    preprocess = _transform(meta["resolution"])
    n = 2 * len(CLASSES)
    images = np.stack(
        [preprocess(render(CLASSES[i % len(CLASSES)], np.random.default_rng([12345, i]))) for i in range(n)]
    ).astype(np.float32)
    img = visual.run(None, {visual.get_inputs()[0].name: images})[0]
    tokens = tokenize([caption(c, meta["template"]) for c in CLASSES]).numpy().astype(np.int32)
    txt = textual.run(None, {textual.get_inputs()[0].name: tokens})[0]
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    correct = ((img @ txt.T).argmax(axis=1) == np.arange(n) % len(CLASSES)).sum()
    assert correct >= n - 2, f"only {correct}/{n} correct"
