"""The length-dynamic text graph gives the original embeddings from trimmed token ids.

The rewrite must be generic (the real Roboflow file is never seen here), so besides the
committed tiny model it is checked on text towers exported here in several ways: opsets
14 and 17, with and without constant folding, fp16-stored weights, int64 ids, and a file
saved after onnxruntime's own graph optimisations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from clip.clip import tokenize
from clip.model import CLIP
from onnx import TensorProto, helper, numpy_helper

from bot.engine.text_graph import (
    METADATA_KEY,
    SEQUENCE_DIM,
    UnsupportedTextGraph,
    build_dynamic_text_model,
    make_length_dynamic,
    max_difference,
    probe_tokens,
    trim_tokens,
    verify_rewrite,
)
from tests.support.onnx_export import TextEncoder, export_onnx, weights_to_fp16

TINY = Path(__file__).parents[1] / "assets" / "tiny-clip"
TOLERANCE = 1e-5
PROVIDERS = ["CPUExecutionProvider"]


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    """A CPU session from a file or an in-memory proto."""
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, providers=PROVIDERS)


class _Int64Textual(torch.nn.Module):
    """``encode_text`` on int64 ids, as a plain ``torch.onnx.export(model.encode_text...)`` gives."""

    def __init__(self, model: CLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(text)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight OpenAI CLIP text towers exported in the ways a real file may have been."""
    out = tmp_path_factory.mktemp("text-graphs")
    torch.manual_seed(0)
    model = CLIP(
        embed_dim=32,
        image_resolution=32,
        vision_layers=1,
        vision_width=64,
        vision_patch_size=16,
        context_length=77,
        vocab_size=49408,
        transformer_width=32,
        transformer_heads=2,
        transformer_layers=2,
    ).eval()
    ids = tokenize(["a photo of a dog", "x"])
    paths: dict[str, Path] = {}
    for opset in (14, 17):
        for fold in (True, False):
            path = paths[f"opset{opset}-fold{fold}"] = out / f"opset{opset}-fold{fold}.onnx"
            export_onnx(TextEncoder(model), ids.int(), "text", path, opset=opset, constant_folding=fold)
    paths["int64-ids"] = out / "int64-ids.onnx"
    export_onnx(_Int64Textual(model), ids, "text", paths["int64-ids"], opset=17)

    proto = onnx.load(str(paths["opset17-foldTrue"]))
    assert weights_to_fp16(proto) > 0
    paths["fp16-weights"] = out / "fp16-weights.onnx"
    onnx.save(proto, str(paths["fp16-weights"]))

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    paths["ort-optimized"] = out / "ort-optimized.onnx"
    options.optimized_model_filepath = str(paths["ort-optimized"])
    ort.InferenceSession(str(paths["opset17-foldTrue"]), options, providers=PROVIDERS)
    return paths


@pytest.fixture(scope="module")
def tiny_rewritten() -> onnx.ModelProto:
    """The committed tiny model (opset 17, fp16 weights + Cast), rewritten."""
    rewritten = make_length_dynamic(onnx.load(str(TINY / "textual.onnx")))
    onnx.checker.check_model(rewritten)
    return rewritten


def test_trim_tokens_cuts_after_the_last_end_of_text() -> None:
    ids = tokenize(["a photo of a dog", "", "dog"]).numpy().astype(np.int32)
    trimmed = trim_tokens(ids)
    assert trimmed.shape == (3, 7)  # <sot> a photo of a dog <eot>
    assert trimmed.dtype == np.int32 and trimmed.flags.c_contiguous
    np.testing.assert_array_equal(trimmed, ids[:, :7])
    assert trim_tokens(np.zeros((2, 77), np.int32)).shape == (2, 1)


def test_probe_tokens_cover_short_long_and_empty_texts() -> None:
    lengths = probe_tokens().argmax(axis=1) + 1
    assert lengths.min() == 2  # the empty string: <sot> <eot>
    assert 70 <= lengths.max() < 77  # long, yet the batch is still trimmed


@pytest.mark.parametrize("batch", [1, 2, 6])
def test_tiny_model_same_embeddings_from_trimmed_ids(tiny_rewritten: onnx.ModelProto, batch: int) -> None:
    original = _session(TINY / "textual.onnx")
    rewritten = _session(tiny_rewritten)
    ids = probe_tokens()[-batch:]
    trimmed = trim_tokens(ids)
    assert trimmed.shape[1] < 77
    with pytest.raises(Exception, match="77"):  # the original graph cannot take it
        original.run(None, {"text": trimmed})
    assert max_difference(original, rewritten, ids) <= TOLERANCE


def test_tiny_model_verifies_on_every_probe(tiny_rewritten: onnx.ModelProto) -> None:
    assert verify_rewrite(_session(TINY / "textual.onnx"), _session(tiny_rewritten), tolerance=TOLERANCE) <= TOLERANCE


def test_rewritten_graph_has_a_symbolic_length_and_the_same_output(tiny_rewritten: onnx.ModelProto) -> None:
    original = onnx.load(str(TINY / "textual.onnx"), load_external_data=False)
    dims = tiny_rewritten.graph.input[0].type.tensor_type.shape.dim
    assert [dims[0].dim_param, dims[1].dim_param] == ["batch", SEQUENCE_DIM]
    assert tiny_rewritten.graph.output[0] == original.graph.output[0]
    assert {e.key: e.value for e in tiny_rewritten.metadata_props}[METADATA_KEY] == "77"


def test_make_length_dynamic_leaves_its_argument_alone() -> None:
    model = onnx.load(str(TINY / "textual.onnx"))
    before = model.SerializeToString()
    make_length_dynamic(model)
    assert model.SerializeToString() == before


VARIANTS = [
    *(f"opset{opset}-fold{fold}" for opset in (14, 17) for fold in (True, False)),
    "int64-ids",
    "fp16-weights",
    "ort-optimized",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_exported_variants_rewrite_and_verify(exported: dict[str, Path], variant: str) -> None:
    rewritten = make_length_dynamic(onnx.load(str(exported[variant])))
    onnx.checker.check_model(rewritten)
    original, dynamic = _session(exported[variant]), _session(rewritten)
    assert verify_rewrite(original, dynamic, tolerance=TOLERANCE) <= TOLERANCE
    ids = tokenize(["a photo of a dog", "a photo of a cat"]).numpy().astype(np.int32)
    assert trim_tokens(ids).shape == (2, 7)
    assert max_difference(original, dynamic, ids) <= TOLERANCE


def test_build_writes_a_verified_file_atomically(tmp_path: Path) -> None:
    destination = tmp_path / "cache" / "textual-dynamic.onnx"
    build_dynamic_text_model(TINY / "textual.onnx", destination)
    assert [p.name for p in destination.parent.iterdir()] == [destination.name]  # no temp file left
    assert destination.stat().st_mode == (TINY / "textual.onnx").stat().st_mode
    session = _session(destination)
    assert session.get_inputs()[0].shape == ["batch", SEQUENCE_DIM]
    ids = trim_tokens(probe_tokens())
    assert session.run(None, {"text": ids})[0].shape == (len(ids), 64)


def test_build_refuses_without_leaving_files(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTextGraph, match="input"):
        build_dynamic_text_model(TINY / "visual.onnx", tmp_path / "textual-dynamic.onnx")
    assert list(tmp_path.iterdir()) == []


def test_refuses_the_image_graph() -> None:
    with pytest.raises(UnsupportedTextGraph, match=r"not int32/int64 token ids"):
        make_length_dynamic(onnx.load(str(TINY / "visual.onnx")))


def test_refuses_another_context_length() -> None:
    with pytest.raises(UnsupportedTextGraph, match=r"not \[batch, 64\]"):
        make_length_dynamic(onnx.load(str(TINY / "textual.onnx")), context_length=64)


def test_refuses_a_graph_without_a_length_axis() -> None:
    ids = helper.make_tensor_value_info("text", TensorProto.INT32, ["batch", 77])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1])
    nodes = [
        helper.make_node("Cast", ["text"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["f"], ["out"], axes=[1], keepdims=1),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [ids], [out]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedTextGraph, match="no tensor with a 77-long axis"):
        make_length_dynamic(model)


def test_verify_catches_a_wrong_rewrite(tiny_rewritten: onnx.ModelProto) -> None:
    broken = onnx.ModelProto()
    broken.CopyFrom(tiny_rewritten)
    projection = next(i for i in broken.graph.initializer if i.name.startswith("model.text_projection"))
    projection.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(projection) * 1.01, projection.name))
    with pytest.raises(UnsupportedTextGraph, match="differs"):
        verify_rewrite(_session(TINY / "textual.onnx"), _session(broken))
