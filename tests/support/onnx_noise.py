"""A model that runs fine and answers wrong: for the tests of the checks that must catch one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


def perturbed_copy(source: Path, destination: Path, scale: float = 0.5) -> Path:
    """The model with noise on every weight: a candidate that runs fine and answers wrong."""
    model = onnx.load(str(source))
    rng = np.random.default_rng(1)
    for tensor in model.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype in (np.float32, np.float16) and weights.size > 256:  # the matrices, not the norms
            noisy = weights * (1 + scale * rng.standard_normal(weights.shape))
            tensor.CopyFrom(numpy_helper.from_array(noisy.astype(weights.dtype), tensor.name))
    onnx.save(model, str(destination))
    return destination
