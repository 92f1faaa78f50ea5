"""The text encoder on a reduced precision (`bot.engine.text_runtime`): used only once it agrees with fp32.

On the tiny trained CLIP's real-length text graph; OpenVINO's are skipped where it is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from clip.clip import tokenize

from bot.engine import runtimes
from bot.engine.text_graph import build_dynamic_text_model, trim_tokens
from bot.engine.text_runtime import text_session
from tests.support.onnx_noise import perturbed_copy
from tests.support.paths import TINY_MODEL_DIR

needs_openvino = pytest.mark.skipif(not runtimes.openvino_available(), reason="openvino is not installed")


@pytest.fixture(scope="module")
def real_length_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    graph = tmp_path_factory.mktemp("text") / "textual-real-length.onnx"
    build_dynamic_text_model(TINY_MODEL_DIR / "textual.onnx", graph)
    return graph


@pytest.mark.parametrize(
    "candidate",
    [
        runtimes.ONNXRUNTIME_INT8,
        pytest.param(runtimes.OPENVINO_BF16, marks=needs_openvino),
    ],
    ids=lambda candidate: candidate.name,
)
def test_a_text_session_agrees_with_fp32_and_runs_any_length(
    candidate: runtimes.Candidate, real_length_graph: Path, tmp_path: Path
) -> None:
    reference = onnxruntime.InferenceSession(str(real_length_graph), providers=["CPUExecutionProvider"])
    session, lowest = text_session(candidate, real_length_graph, reference, tokenize, tmp_path / "not-yet-made")
    bound = runtimes.MIN_COSINE[candidate.precision]
    assert bound <= lowest <= 1.0
    name = reference.get_inputs()[0].name
    for prompts in (["a photo of a red circle"], ["dog", "a photo of a big blue triangle on a table"]):
        tokens = trim_tokens(tokenize(prompts).numpy().astype(np.int32))
        got, want = session.run(None, {name: tokens})[0], reference.run(None, {name: tokens})[0]
        cosine = np.sum(got * want, axis=-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1))
        assert got.shape == want.shape and cosine.min() >= bound


@needs_openvino
def test_a_text_session_that_disagrees_is_refused(real_length_graph: Path, tmp_path: Path) -> None:
    """Against a reference with other weights, the check must fail: the caller then keeps fp32."""
    other = perturbed_copy(real_length_graph, tmp_path / "other.onnx")
    reference = onnxruntime.InferenceSession(str(other), providers=["CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match="disagrees with fp32: min cosine"):
        text_session(runtimes.OPENVINO_BF16, real_length_graph, reference, tokenize, tmp_path)
