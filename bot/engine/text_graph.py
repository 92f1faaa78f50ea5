"""Make CLIP's exported text graph accept token ids trimmed to the longest real prompt.

``textual.onnx`` takes ``[batch, 77]`` ids and always runs all 77 positions, though a label
such as "a photo of a dog" is about 7 tokens.  The attention mask is causal and
``encode_text`` reads the row at the end-of-text token (``text.argmax(-1)``; EOT has the
largest id), so that row depends only on the tokens up to it: running the graph on ids cut
after the last EOT of the batch gives the same embeddings for a fraction of the work.

The exported graph bakes 77 in: the positional embedding ``[77, W]`` and the causal mask
``[.., 77, 77]`` are tensors, and reshape targets hold 77.  :func:`make_length_dynamic`
rewrites any such graph generically (we never see the real Roboflow file, so nothing is
fitted to one export): ``L = Shape(ids)[1]`` is computed once, tensors with a 77-long axis
are sliced to ``L`` where they are defined, and small integer shape constants holding 77
are rebuilt from ``L``.  It refuses (:class:`UnsupportedTextGraph`) what it cannot rewrite;
the result must still be checked numerically (:func:`verify_rewrite`), and callers keep the
original graph when either step fails.

The numerical check, and the token trimming that the rewritten graph serves, are in
:mod:`bot.engine.text_graph_check` (re-exported here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bot.engine.text_graph_check import (
    CONTEXT_LENGTH,
    DEFAULT_TOLERANCE,
    PROBE_TEXTS,
    UnsupportedTextGraph,
    max_difference,
    probe_tokens,
    trim_tokens,
    verify_rewrite,
)
from bot.errors import first_line

__all__ = [
    "CONTEXT_LENGTH",
    "DEFAULT_TOLERANCE",
    "METADATA_KEY",
    "PROBE_TEXTS",
    "REWRITE_VERSION",
    "SEQUENCE_DIM",
    "UnsupportedTextGraph",
    "build_dynamic_text_model",
    "make_length_dynamic",
    "max_difference",
    "probe_tokens",
    "trim_tokens",
    "verify_rewrite",
]

#: Bumped whenever the rewrite changes, so files cached by an older version are rebuilt.
REWRITE_VERSION = 1
#: Name given to the token input's second (now symbolic) dimension.
SEQUENCE_DIM = "sequence"
#: Metadata key marking a rewritten file (its value is the original context length).
METADATA_KEY = "clipbot.dynamic_text_length"
#: Integer tensors of rank <= 1 and at most this many elements are read as shape values
#: (reshape targets, slice ends, range limits); shapes in these graphs have rank <= 5.
SHAPE_MAX_ELEMENTS = 8

_INTEGER_INPUTS = {TensorProto.INT32, TensorProto.INT64}
_SHAPE_DTYPES = {TensorProto.INT32: np.int32, TensorProto.INT64: np.int64}
_PREFIX = "clipbot_dynlen/"

def make_length_dynamic(model: onnx.ModelProto, context_length: int = CONTEXT_LENGTH) -> onnx.ModelProto:
    """A copy of ``model`` whose token input takes ``[batch, L]`` ids for any ``L <= context_length``.

    The argument is left untouched (one full copy is made); outputs keep their type and shape.
    Raises :class:`UnsupportedTextGraph` when the graph does not look like a CLIP text tower.
    """
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    _rewrite_in_place(rewritten, context_length)
    return rewritten


def build_dynamic_text_model(
    source: Path, destination: Path, context_length: int = CONTEXT_LENGTH, *, verify: bool = True
) -> None:
    """Rewrite ``source`` into ``destination`` atomically, checked and (by default) verified.

    The model is rewritten in place (no second copy of the ~250 MB proto) and freed before the
    saved file is checked; peak memory is about three file sizes, while protobuf serialises
    (the message plus two copies of its bytes).  With ``verify`` the file
    is compared with ``source`` on CPU before it replaces ``destination``, so a file found at
    ``destination`` is always one that passed.  Raises :class:`UnsupportedTextGraph` (leaving
    ``destination`` as it was) when the graph is refused or does not verify.
    """
    model = onnx.load(str(source))
    _rewrite_in_place(model, context_length)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx.save_model(model, str(tmp))
        del model
        shutil.copymode(source, tmp)  # mkstemp makes it 0600
        try:
            onnx.checker.check_model(str(tmp))
        except onnx.checker.ValidationError as exc:
            raise UnsupportedTextGraph(f"rewritten text graph is invalid: {first_line(exc, 10_000)}") from exc
        if verify:
            providers = ["CPUExecutionProvider"]
            original = ort.InferenceSession(str(source), providers=providers)
            rewritten = ort.InferenceSession(str(tmp), providers=providers)
            verify_rewrite(original, rewritten)
            del original, rewritten
        os.replace(tmp, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- the rewrite -------------------------------------------------------------------------


class _Names:
    """Fresh tensor/node names that cannot clash with any already in the graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.taken: set[str] = {i.name for i in graph.initializer}
        self.taken.update(v.name for v in [*graph.input, *graph.output])
        for node in graph.node:
            self.taken.update([*node.input, *node.output, node.name])
        self.counter = 0

    def __call__(self, hint: str) -> str:
        while True:
            self.counter += 1
            name = f"{_PREFIX}{hint}_{self.counter}"
            if name not in self.taken:
                self.taken.add(name)
                return name


class _Builder:
    """Emits the nodes computing L (once) and the pieces the rewrites share."""

    def __init__(self, names: _Names, token_input: str) -> None:
        self.names = names
        self.prologue: list[onnx.NodeProto] = []
        self.token_input = token_input
        self._cache: dict[str, str] = {}

    def const(self, array: np.ndarray, hint: str, out: list[onnx.NodeProto]) -> str:
        """A Constant node (not an initializer: IR < 4 would need it listed as an input)."""
        name = self.names(hint)
        out.append(helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(array, name)))
        return name

    def _cached(self, key: str, make: Callable[[], str]) -> str:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _shape(self) -> str:
        def make() -> str:
            out = self.names("ids_shape")
            self.prologue.append(helper.make_node("Shape", [self.token_input], [out], name=out))
            return out

        return self._cached("shape", make)

    def length_1d(self) -> str:
        """``[L]`` (int64, shape [1]): the token input's second dimension."""

        def make() -> str:
            index = self.const(np.array([1], np.int64), "one_1d", self.prologue)
            out = self.names("L_1d")
            self.prologue.append(helper.make_node("Gather", [self._shape(), index], [out], name=out, axis=0))
            return out

        return self._cached("L_1d", make)

    def length_scalar(self) -> str:
        """``L`` as an int64 scalar (for Range limits, scalar shape arithmetic)."""

        def make() -> str:
            index = self.const(np.array(1, np.int64), "one", self.prologue)
            out = self.names("L")
            self.prologue.append(helper.make_node("Gather", [self._shape(), index], [out], name=out, axis=0))
            return out

        return self._cached("L", make)

    def repeated_length(self, count: int) -> str:
        """``[L] * count`` (int64, shape [count]): Slice ends for ``count`` 77-long axes."""
        if count == 1:
            return self.length_1d()

        def make() -> str:
            out = self.names(f"L_x{count}")
            self.prologue.append(helper.make_node("Concat", [self.length_1d()] * count, [out], name=out, axis=0))
            return out

        return self._cached(f"L_x{count}", make)

    def slice_nodes(self, full: str, sliced: str, axes: Sequence[int]) -> list[onnx.NodeProto]:
        """Nodes computing ``sliced = full[..., :L, ...]`` on ``axes``."""
        ends = self.repeated_length(len(axes))
        nodes: list[onnx.NodeProto] = []
        starts = self.const(np.zeros(len(axes), np.int64), "zeros", nodes)
        axes_name = self.const(np.array(axes, np.int64), "axes", nodes)
        nodes.append(helper.make_node("Slice", [full, starts, ends, axes_name], [sliced], name=self.names("slice")))
        return nodes

    def shape_value_nodes(self, values: np.ndarray, output: str, context_length: int) -> list[onnx.NodeProto]:
        """Nodes producing ``output`` = ``values`` with every ``context_length`` replaced by L."""
        nodes: list[onnx.NodeProto] = []
        int32 = values.dtype == np.int32
        if values.ndim == 0:
            source = self.length_scalar()
        else:
            pieces: list[str] = []
            run: list[int] = []
            for value in values.tolist():
                if value == context_length:
                    if run:
                        pieces.append(self.const(np.array(run, np.int64), "dims", nodes))
                        run = []
                    pieces.append(self.length_1d())
                else:
                    run.append(value)
            if run:
                pieces.append(self.const(np.array(run, np.int64), "dims", nodes))
            if len(pieces) == 1:
                source = pieces[0]
            else:
                source = self.names("shape")
                nodes.append(helper.make_node("Concat", pieces, [source], name=source, axis=0))
        if int32:
            nodes.append(helper.make_node("Cast", [source], [output], name=self.names("cast"), to=TensorProto.INT32))
        else:
            nodes.append(helper.make_node("Identity", [source], [output], name=self.names("identity")))
        return nodes


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The value of a Constant node as a tensor (``value`` or ``value_int(s)``), else None."""
    for attr in node.attribute:
        if attr.name == "value":
            return attr.t
        if attr.name == "value_int":
            return numpy_helper.from_array(np.array(attr.i, np.int64))
        if attr.name == "value_ints":
            return numpy_helper.from_array(np.array(list(attr.ints), np.int64))
    return None


def _sequence_axes(tensor: onnx.TensorProto, context_length: int) -> list[int]:
    """Axes of ``tensor`` that are ``context_length`` long (read from dims: no data copied)."""
    return [axis for axis, dim in enumerate(tensor.dims) if dim == context_length]


def _shape_values(tensor: onnx.TensorProto, context_length: int) -> np.ndarray | None:
    """The values of a small integer shape-like tensor holding ``context_length``, else None."""
    if tensor.data_type not in _SHAPE_DTYPES or len(tensor.dims) > 1:
        return None
    if int(np.prod(tensor.dims, dtype=np.int64)) > SHAPE_MAX_ELEMENTS:
        return None
    values = numpy_helper.to_array(tensor)
    return values if context_length in values.ravel().tolist() else None


def _refuse_node(node: onnx.NodeProto, context_length: int) -> None:
    """Refuse a node holding the length where the rewrite cannot reach it (subgraph, attribute)."""
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise UnsupportedTextGraph(f"graph has control flow ({node.op_type} {node.name!r})")
        if node.op_type != "Constant" and (
            (attr.type == onnx.AttributeProto.INT and attr.i == context_length)
            or (attr.type == onnx.AttributeProto.INTS and context_length in attr.ints)
        ):
            raise UnsupportedTextGraph(f"attribute {attr.name} of {node.op_type} {node.name!r} holds {context_length}")


def _refuse_unsupported(model: onnx.ModelProto, context_length: int) -> None:
    """Refuse graphs whose static length this rewrite could not reach."""
    if len(model.graph.sparse_initializer):
        raise UnsupportedTextGraph("graph has sparse initializers")
    for node in model.graph.node:
        _refuse_node(node, context_length)
    for function in model.functions:  # local functions are not rewritten
        for node in function.node:
            _refuse_node(node, context_length)
            tensor = _constant_tensor(node) if node.op_type == "Constant" else None
            if tensor is not None and (
                _sequence_axes(tensor, context_length) or _shape_values(tensor, context_length) is not None
            ):
                raise UnsupportedTextGraph(f"local function {function.name!r} holds a constant with {context_length}")


def _token_input(graph: onnx.GraphProto, context_length: int) -> onnx.ValueInfoProto:
    """The one graph input: integer ``[batch, context_length]`` token ids, else refuse."""
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedTextGraph(f"expected one input (token ids), found {len(inputs)}")
    tensor_type = inputs[0].type.tensor_type
    dims = tensor_type.shape.dim
    if tensor_type.elem_type not in _INTEGER_INPUTS:
        raise UnsupportedTextGraph(f"input {inputs[0].name!r} is not int32/int64 token ids")
    if len(dims) != 2 or dims[1].dim_value != context_length:
        shape = [d.dim_param or d.dim_value for d in dims]
        raise UnsupportedTextGraph(f"input {inputs[0].name!r} has shape {shape}, not [batch, {context_length}]")
    for output in graph.output:
        if any(d.dim_value == context_length for d in output.type.tensor_type.shape.dim):
            raise UnsupportedTextGraph(f"output {output.name!r} has a {context_length}-long axis (per-token output)")
    return inputs[0]


def _rewrite_in_place(model: onnx.ModelProto, context_length: int) -> None:
    """The rewrite itself; mutates ``model`` (see :func:`make_length_dynamic`)."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 10:
        raise UnsupportedTextGraph(f"opset {opset} is too old (Slice with tensor inputs needs 10)")
    token = _token_input(graph, context_length)
    _refuse_unsupported(model, context_length)
    names = _Names(graph)
    build = _Builder(names, token.name)

    # Initializers: slice data tensors right after the prologue, rebuild shape values there.
    after_prologue: list[onnx.NodeProto] = []
    graph_inputs = {i.name: i for i in graph.input}
    replaced: list[onnx.TensorProto] = []
    sliced = rebuilt = 0
    for init in graph.initializer:
        axes = _sequence_axes(init, context_length)
        values = None if axes else _shape_values(init, context_length)
        if axes:
            full = names(f"{init.name}_full")
            after_prologue += build.slice_nodes(full, init.name, axes)
            if init.name in graph_inputs:  # IR < 4 lists initializers as inputs too
                graph_inputs[init.name].name = full
            init.name = full
            sliced += 1
        elif values is not None:
            after_prologue += build.shape_value_nodes(values, init.name, context_length)
            if init.name in graph_inputs:
                graph.input.remove(graph_inputs[init.name])
            replaced.append(init)
            rebuilt += 1
    for init in replaced:  # one by one: re-adding the kept ones would copy every weight
        graph.initializer.remove(init)

    # Constant nodes: replace in place, so every consumer still follows its producer.
    body: list[onnx.NodeProto] = []
    for node in graph.node:
        tensor = _constant_tensor(node) if node.op_type == "Constant" else None
        if tensor is None:
            body.append(node)
            continue
        axes = _sequence_axes(tensor, context_length)
        if axes:
            output = node.output[0]
            node.output[0] = names(f"{output}_full")
            body.append(node)
            body += build.slice_nodes(node.output[0], output, axes)
            sliced += 1
            continue
        values = _shape_values(tensor, context_length)
        if values is not None:
            body += build.shape_value_nodes(values, node.output[0], context_length)
            rebuilt += 1
            continue
        body.append(node)

    if not sliced:
        raise UnsupportedTextGraph(
            f"no tensor with a {context_length}-long axis (positional embedding, causal mask) was found"
        )
    del graph.node[:]
    graph.node.extend([*build.prologue, *after_prologue, *body])
    # Intermediate shapes recorded at export hold the static length; onnxruntime re-infers them.
    del graph.value_info[:]
    token.type.tensor_type.shape.dim[1].dim_param = SEQUENCE_DIM  # clears dim_value (oneof)
    _set_metadata(model, METADATA_KEY, str(context_length))


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    """Record that the file was rewritten (replacing an earlier entry of the same key)."""
    entries: Iterable[onnx.StringStringEntryProto] = [e for e in model.metadata_props if e.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(entries)
    model.metadata_props.add(key=key, value=value)
