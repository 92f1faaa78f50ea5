"""Export a ``clip.model.CLIP`` to the two-file ONNX layout Roboflow Inference loads.

``inference.models.Clip`` reads ``visual.onnx`` and ``textual.onnx`` from its model cache,
takes the image resolution from ``visual.get_inputs()[0].shape[2]`` and feeds int32 token
ids from ``clip.tokenize``; both graphs return raw (un-normalised) embeddings.  Writing the
same layout lets tests and benchmarks go through inference's production loader unchanged.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from clip.clip import tokenize
from clip.model import CLIP
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# Initializers with at least this many elements are stored as float16 when asked;
# small ones (LayerNorm, biases) stay float32 because they save nothing and cost accuracy.
FP16_MIN_ELEMENTS = 1024


class ImageEncoder(torch.nn.Module):
    """``encode_image`` as a module so the exporter sees a single-input forward."""

    def __init__(self, model: CLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image).float()


class TextEncoder(torch.nn.Module):
    """``encode_text`` taking int32 ids, because inference feeds ``tokenize(...).astype(int32)``."""

    def __init__(self, model: CLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(text.to(torch.int64)).float()


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    name: str,
    path: Path,
    *,
    opset: int = OPSET,
    constant_folding: bool = True,
) -> None:
    """Run the TorchScript exporter (the dynamo one needs onnxscript, which we do not ship).

    The batch axis is dynamic; everything else is as in ``example``.
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[name],
            output_names=["embeddings"],
            dynamic_axes={name: {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=constant_folding,
            dynamo=False,
        )


def weights_to_fp16(model_proto: onnx.ModelProto) -> int:
    """Store large float32 initializers as float16 plus a Cast, keeping float32 I/O.

    Returns the number of initializers converted.  Casts are prepended so the graph stays
    topologically sorted.
    """
    graph = model_proto.graph
    casts: list[onnx.NodeProto] = []
    kept: list[onnx.TensorProto] = []
    converted: list[onnx.TensorProto] = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or array.size < FP16_MIN_ELEMENTS:
            kept.append(init)
            continue
        half_name = f"{init.name}__fp16"
        converted.append(numpy_helper.from_array(array.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=TensorProto.FLOAT, name=f"{half_name}_cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept + converted)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return len(converted)


def round_weights_to_fp16(model: torch.nn.Module) -> None:
    """Round large float parameters through float16 in place, matching ``weights_to_fp16``.

    Calling this before export makes the torch model compute exactly what the fp16-weight
    ONNX files compute, so accuracy measured in torch is the accuracy that ships.
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point() and tensor.numel() >= FP16_MIN_ELEMENTS:
                tensor.copy_(tensor.half().float())


def _verify(path: Path, module: torch.nn.Module, example: torch.Tensor, atol: float) -> float:
    """Compare onnxruntime with torch on ``example``; returns the max abs difference.

    ``atol`` is scaled by the largest reference magnitude (when above 1), since raw CLIP
    embeddings are not normalised and their scale depends on the weights.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = example.numpy()
    got = session.run(None, {session.get_inputs()[0].name: feed})[0]
    with torch.no_grad():
        want = module(example).numpy()
    if got.shape != want.shape or got.dtype != np.float32:
        raise RuntimeError(f"{path.name}: got {got.shape} {got.dtype}, want {want.shape} float32")
    err = float(np.abs(got - want).max())
    atol *= max(1.0, float(np.abs(want).max()))  # relative to the embedding scale
    if err > atol:
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch by {err:.3g} > {atol}")
    return err


def export_roboflow_layout(model: CLIP, out_dir: Path, *, fp16_weights: bool) -> None:
    """Write ``out_dir/visual.onnx`` and ``out_dir/textual.onnx`` in Roboflow's CLIP layout.

    visual: float32 [batch, 3, R, R] -> float32 [batch, D] (``encode_image``);
    textual: int32 [batch, 77] -> float32 [batch, D] (``encode_text``).  Batch is dynamic,
    R and 77 are static.  With ``fp16_weights`` large weights are stored as float16 (half
    the size) and cast back inside the graph.  Both files are checked against torch
    (with the same fp16-rounded weights) on a batch of 3 with onnxruntime.
    """
    model = model.float().eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    resolution = model.visual.input_resolution
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(2, 3, resolution, resolution, generator=gen)
    text = tokenize(["a photo of a red circle", "x"]).to(torch.int32)
    # Checks use a different batch size than the export, proving the batch axis is dynamic.
    check_image = torch.randn(3, 3, resolution, resolution, generator=gen)
    check_text = tokenize(["a", "a blue square", "a photo of a yellow triangle"]).int()

    # The reference holds exactly the weights the files store, so any mismatch beyond float
    # summation order (~1e-5) is an export bug, not fp16 rounding (which moves outputs ~1e-3).
    stored = copy.deepcopy(model)
    if fp16_weights:
        round_weights_to_fp16(stored)
    parts = [
        ("visual.onnx", ImageEncoder(model), ImageEncoder(stored), image, check_image, "image"),
        ("textual.onnx", TextEncoder(model), TextEncoder(stored), text, check_text, "text"),
    ]
    for filename, module, reference, example, check, input_name in parts:
        path = out_dir / filename
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / filename
            export_onnx(module, example, input_name, raw)
            proto = onnx.load(str(raw))
        if fp16_weights:
            weights_to_fp16(proto)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
        _verify(path, reference, check, atol=1e-3)
