"""Intermediate tensors of exported models as graph outputs, run with ONNX Runtime.

The committed demo models (models/demo/) are ONNX files only. Their embeddings are tensors inside
the graph, so the graph is edited in memory with the ``onnx`` package: the tensor is found by
structure (the initializer names the exporter keeps from the PyTorch parameter names, never the
node or tensor names it generates, which change between exports), a pooling node is added where
the graph pools differently or not at all, and the graph is cut down to the part between the
input and that tensor (``onnx.utils.Extractor``), so an audio embedding needs no frame input.

==================  ===================================================================================
tap                 what it is (tensor names in the committed demo models)
==================  ===================================================================================
L³ ``audio``        the global max over the last audio conv map, :meth:`L3Net.embed_audio`, the input of
                    the AVOL head's audio projection. Found as the ReLU after the conv whose weight is
                    ``*audio.blocks.3.1.0.weight`` (demo localizer: ``relu_15``, (B, 64, 32, 24)) and the
                    ReduceMax the graph already applies to it (``amax``, (B, 64)); one is added if absent.
L³ ``vision``       the global max over the last vision conv map, :meth:`L3Net.embed_vision`. The AVOL head
                    compares cells and never pools the vision map, so a ReduceMax over axes (2, 3) is added
                    on the ReLU after ``*vision.blocks.3.1.0.weight`` (demo: ``relu_7``, (B, 128, 14, 14)).
slowfast ``features``  the pooled features before the classifier, :meth:`SlowFast.forward_features`: the
                    data input of the MatMul (or Gemm) whose bias is ``*head.projection.bias`` (demo
                    labeler: ``permute_1``, the concatenated per-pathway means as cells (B, 1, 1, 1152)),
                    averaged over its two cell axes by an added ReduceMean.
==================  ===================================================================================
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Tap", "TapError", "l3_embedding_tap", "slowfast_features_tap", "TappedSession"]


class TapError(ValueError):
    """The graph does not hold the structure a tap looks for (the message says what is missing)."""


@dataclass(frozen=True)
class Tap:
    """A graph cut down to one input and one exposed tensor.

    Attributes:
        model: the edited ``onnx.ModelProto`` (input ``input_name``, output ``output_name``).
        input_name: the graph input it reads.
        output_name: the exposed tensor's name in the edited graph.
        source_tensor: the existing tensor it was found at (the map or cells before any added pooling).
        added_node: the op type of the pooling node added on ``source_tensor`` (None: none added).
    """

    model: object
    input_name: str
    output_name: str
    source_tensor: str
    added_node: str | None


def _load(model_or_path):
    import onnx

    if isinstance(model_or_path, (str, os.PathLike)):
        return onnx.load(os.fspath(model_or_path))
    copy = onnx.ModelProto()
    copy.CopyFrom(model_or_path)
    return copy


def _consumers(graph, tensor: str) -> list:
    return [n for n in graph.node if tensor in n.input]


def _producer(graph, tensor: str):
    for n in graph.node:
        if tensor in n.output:
            return n
    return None


def _initializer_user(graph, suffix: str, what: str):
    names = [i.name for i in graph.initializer if i.name.endswith(suffix)]
    if len(names) != 1:
        raise TapError(f"{what}: expected one initializer named *{suffix}, found {len(names)}")
    users = _consumers(graph, names[0])
    if len(users) != 1:
        raise TapError(f"{what}: expected one node reading {names[0]}, found {len(users)}")
    return users[0]


def _add_pool(model, op: str, tensor: str, axes: tuple[int, ...], out: str) -> None:
    """Append ``out = op(tensor, axes, keepdims=0)`` (opset 18: axes are an input)."""
    from onnx import helper, numpy_helper

    axes_name = f"{out}_axes"
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(axes, np.int64), axes_name))
    model.graph.node.append(helper.make_node(op, [tensor, axes_name], [out], name=f"{out}_{op}", keepdims=0))


def _cut(model, input_name: str, output_name: str):
    """The part of ``model`` from ``input_name`` to ``output_name``, shapes inferred."""
    import onnx
    from onnx import helper

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 18:
        raise TapError(f"expected an opset >= 18 graph (the project's exporter writes 18), found opset {opset}")
    if input_name not in {i.name for i in model.graph.input}:
        raise TapError(f"expected a graph input named {input_name!r}, found {[i.name for i in model.graph.input]}")
    model.graph.output.append(helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, None))
    return onnx.utils.Extractor(model).extract_model([input_name], [output_name])


def _existing_pool(graph, tensor: str, op: str) -> str | None:
    for n in _consumers(graph, tensor):
        if n.op_type == op:
            return n.output[0]
    return None


def l3_embedding_tap(model_or_path, subnet: str) -> Tap:
    """The ``subnet`` (``"audio"`` or ``"vision"``) embedding of an exported L³ heatmap graph.

    Raises:
        TapError: no L³ subnet of that name in the graph.
    """
    if subnet not in ("audio", "vision"):
        raise TapError(f"l3_embedding_tap: expected subnet 'audio' or 'vision', found {subnet!r}")
    model = _load(model_or_path)
    graph = model.graph
    conv = _initializer_user(graph, f"{subnet}.blocks.3.1.0.weight", f"L3 {subnet} embedding")
    relus = [n for n in _consumers(graph, conv.output[0]) if n.op_type == "Relu"]
    if conv.op_type != "Conv" or len(relus) != 1:
        raise TapError(f"L3 {subnet} embedding: expected Conv -> Relu at the last {subnet} block (BatchNorm folded "
                       f"by the exporter), found {conv.op_type} -> {[n.op_type for n in _consumers(graph, conv.output[0])]}")
    conv_map = relus[0].output[0]
    pooled = _existing_pool(graph, conv_map, "ReduceMax")
    added = None
    if pooled is None:
        pooled, added = f"l3_{subnet}_embedding", "ReduceMax"
        _add_pool(model, "ReduceMax", conv_map, (2, 3), pooled)
    input_name = "audio" if subnet == "audio" else "frames"
    return Tap(_cut(model, input_name, pooled), input_name, pooled, conv_map, added)


def slowfast_features_tap(model_or_path) -> Tap:
    """The pooled features before the classifier of an exported (waveform-in) Slow-Fast graph.

    Raises:
        TapError: no single-head Slow-Fast classifier in the graph.
    """
    model = _load(model_or_path)
    graph = model.graph
    node = _initializer_user(graph, "head.projection.bias", "Slow-Fast features")
    if node.op_type == "Add":
        other = [t for t in node.input if not t.endswith("head.projection.bias")]
        node = _producer(graph, other[0]) if len(other) == 1 else None
    if node is None or node.op_type not in ("MatMul", "Gemm"):
        raise TapError("Slow-Fast features: expected the head projection as MatMul + Add or Gemm, found "
                       f"{None if node is None else node.op_type}")
    cells = node.input[0]
    out = "slowfast_features"
    _add_pool(model, "ReduceMean", cells, (1, 2), out)
    input_name = graph.input[0].name
    return Tap(_cut(model, input_name, out), input_name, out, cells, "ReduceMean")


class TappedSession:
    """An ONNX Runtime session on a :class:`Tap`: ``session(x) -> (B, dim)`` float32.

    Args:
        tap: the edited graph.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
    """

    def __init__(self, tap: Tap, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.tap = tap
        self._session = ort.InferenceSession(tap.model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        shape = self._session.get_outputs()[0].shape
        self.dim = shape[-1] if isinstance(shape[-1], int) else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self.tap.output_name], {self.tap.input_name: np.ascontiguousarray(x, np.float32)})[0]


def model_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to be an ``.onnx`` file (one-line error otherwise)."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".onnx":
        raise FileNotFoundError(f"expected an .onnx file, found {'a directory' if p.is_dir() else 'nothing'} at {p}")
    return p
