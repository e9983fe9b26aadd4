"""Reduced-precision variants of an exported model: ONNX Runtime static INT8, measured at export.

:func:`export_int8` turns ``model.onnx`` (with its sidecar) into ``model.int8.onnx`` (with
``model.int8.onnx.json``) beside it:

1. ``quant_pre_process`` (ONNX Runtime's shape inference and graph optimisation) on a copy;
2. ``quantize_static`` in QDQ format, uint8 activations and per-channel int8 weights, min-max
   calibrated on inputs a :class:`~onnxruntime.quantization.CalibrationDataReader` feeds one
   at a time (:func:`world_inputs` by default: validation windows of the model's world, audio
   and, for localizers, the frame at the window's centre; or :func:`data_inputs`, training
   clips of any layout the trainer reads, for audio-only labelers);
3. the front end stays float32: :func:`front_end_nodes` (the STFT, the mel ``MatMul``, the log)
   are excluded from quantization. Quantizing the magnitude spectrum to
   8 bits flattens the quiet mel bands to log(offset); on the demo labeler that took top-1 on
   200 world test windows from 100 % to 54 %, and excluding those 13 nodes kept it at 100 %;
   so does the output head (:func:`output_head_nodes`: softmax or sigmoid and the reshaping
   around them), whose probabilities uint8 would round to steps of 1/255;
4. fp32 and int8 run in ONNX Runtime on held-out inputs (world *test* windows, never the
   calibration ones): max |Δ| per output and top-1 agreement of the first output; for a
   labeler that names the world's classes, top-1 and mAP on those windows too
   (:func:`models.world.scoring.single_event_figures`, as ``apps.evaluate`` scores them).

Why uint8 activations: ONNX Runtime's x86 int8 convolution is fast for uint8 × int8 (VNNI);
on paper-size Slow-Fast EPIC (1 thread, a shared 2-core avx512_vnni machine) int8 activations
made the QDQ model slower than fp32 (x0.6 to x0.96) while uint8 ones made it x2.65 faster.

The sidecar is the fp32 one with ``extra["precision"]`` holding all of that (precision,
calibration set and count, the held-out comparison, the world figures, the nodes kept in
float32, the ONNX Runtime version) and ``extra["onnx_sha256"]`` of the new file. Both files are
written atomically, the model first (models/core/atomic.py).

A streaming labeler (``extra["streaming"]``: the CRNN, which carries its encoder caches and frame
history between calls) is calibrated and compared hop by hop: its family's live adapter runs the
fp32 graph over the world's first validation scene, and every call's inputs (audio chunk,
state, history) are calibration candidates, ``calib`` of them taken evenly over the stream; on
the held-out windows each window is streamed from a reset state and scored by the maximum of its
frame probabilities, for fp32 and int8 alike. Other graphs with inputs that are neither a
waveform, a picture nor a features-in export's features are refused with one line: nothing here
can calibrate them.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from models.core.atomic import atomic_path, remove_stale_temps, sha256_file
from models.core.metadata import ModelMetadata, TensorSpec, load_export, precision_path, sidecar_path

__all__ = [
    "DEFAULT_CALIB",
    "DEFAULT_HELD_OUT",
    "QuantizeError",
    "Int8Report",
    "front_end_nodes",
    "world_inputs",
    "data_inputs",
    "calibration_inputs",
    "check_calibratable",
    "export_int8",
    "static_int8",
    "INT8_METHOD",
    "bf16_refusal",
]

#: Calibration inputs by default (``--calib``): world validation windows.
DEFAULT_CALIB = 64
#: Held-out inputs the int8 file is compared on at export: world test windows.
DEFAULT_HELD_OUT = 200
#: Rows per ONNX Runtime call when comparing.
_BATCH = 25


class QuantizeError(ValueError):
    """A model or calibration set that cannot give an int8 variant; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Int8Report:
    """What :func:`export_int8` wrote and measured.

    Attributes:
        path: ``model.int8.onnx``.
        sidecar: Its sidecar.
        record: ``extra["precision"]`` of the sidecar.
        seconds: Wall time, calibration and comparison included.
    """

    path: Path
    sidecar: Path
    record: dict
    seconds: float


def front_end_nodes(proto) -> list[str]:
    """Names of a waveform model's front-end nodes, in graph order: every node with no ``Conv``
    upstream (pad, STFT, magnitude, mel ``MatMul``, log, normalisation), and the first ``Log``
    with all its ancestors, which also catches a front end computing its STFT as convolutions
    (PANNs' DFT kernels). That ``Log`` counts only while its ancestors are under a quarter of
    the graph (a front end is small; a log in a head is not one). Empty for a graph whose
    inputs go straight into convolutions."""
    nodes = list(proto.graph.node)  # ONNX graphs are topologically sorted
    producer = {out: n for n in nodes for out in n.output}
    after_conv: set[str] = set()
    front = set()
    for node in nodes:
        if node.op_type == "Conv" or any(i in after_conv for i in node.input):
            after_conv.update(node.output)
        else:
            front.add(node.name)
    log = next((n for n in nodes if n.op_type == "Log"), None)
    if log is not None:
        ancestors, todo = {log.name}, list(log.input)
        while todo:
            node = producer.get(todo.pop())
            if node is not None and node.name not in ancestors:
                ancestors.add(node.name)
                todo.extend(node.input)
        if len(ancestors) < len(nodes) / 4:
            front |= ancestors
    return [n.name for n in nodes if n.name in front]


#: Operators between a model's last weighted layer and its outputs that stay float32 (the output
#: activation, the reshaping around it, Slow-Fast's mean of the softmax over its cells).
_HEAD_OPS = {"Softmax", "Sigmoid", "LogSoftmax", "Concat", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
             "Identity", "Split", "Slice", "Cast", "ReduceMean", "ReduceMax"}


def output_head_nodes(proto) -> list[str]:
    """Names of the nodes from the last weighted layers to the graph's outputs (softmax, sigmoid,
    the concatenation of two heads): quantized, a 397-way softmax's probabilities fall on uint8's
    1/255 steps, so every class under 0.4 % ties at 0 and the top class is lost among them."""
    producer = {out: n for n in proto.graph.node for out in n.output}
    head, todo = set(), [o.name for o in proto.graph.output]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.op_type not in _HEAD_OPS or node.name in head:
            continue
        head.add(node.name)
        todo.extend(node.input)
    return [n.name for n in proto.graph.node if n.name in head]


def _is_waveform(spec: TensorSpec, meta: ModelMetadata) -> bool:
    """A (batch, samples) float input named so, or the model's only input (as realtime reads it)."""
    shaped = len(spec.shape) == 2 and spec.dtype == "float32"
    return shaped and (spec.name in ("audio", "waveform") or len(meta.inputs) == 1)


def _is_features(spec: TensorSpec, meta: ModelMetadata) -> bool:
    """The (batch, T, F) input of a features-in export (``models.export.frontend_outside``)."""
    return bool(meta.extra.get("frontend_outside")) and len(spec.shape) == 3 and spec.dtype == "float32"


def _features(meta: ModelMetadata, waves: np.ndarray) -> np.ndarray:
    """``(B, N)`` windows -> ``(B, T, F)`` features, as the live labeler computes them."""
    from models.audio.frontend import FrontEndConfig
    from models.audio.streaming import StreamingFrontEnd

    n = int(round(meta.window_seconds * meta.sample_rate))
    front = StreamingFrontEnd(FrontEndConfig.from_dict(meta.frontend), n)
    out = []
    for wave in waves:
        front.reset()
        out.append(front(np.ascontiguousarray(wave[-n:], dtype=np.float32)).copy())
    return np.stack(out)


def _is_picture(spec: TensorSpec) -> bool:
    return len(spec.shape) == 4 and spec.shape[1] == 3 and isinstance(spec.shape[2], int) and spec.dtype == "float32"


def is_streaming(meta: ModelMetadata) -> bool:
    """A labeler whose graph carries state between calls (``extra["streaming"]``, the streaming
    CRNN): calibrated and compared by running it hop by hop (:func:`stream_calibration_rows`)."""
    return meta.task == "labeler" and isinstance(meta.extra.get("streaming"), dict)


def check_calibratable(meta: ModelMetadata, *, where: str) -> None:
    """Raise :class:`QuantizeError` (one line) when an input is neither a waveform, a picture nor
    the features of a features-in export, and the graph is no streaming labeler: there is nothing
    to calibrate it on."""
    if is_streaming(meta):
        return
    others = [s for s in meta.inputs if not (_is_waveform(s, meta) or _is_picture(s) or _is_features(s, meta))]
    if others:
        shown = ", ".join(f"{s.name} {tuple(s.shape)}" for s in others)
        raise QuantizeError(f"{where}: static INT8 needs calibration inputs for every graph input; {shown} is neither a "
                            f"waveform (batch, samples), a picture (batch, 3, S, S) nor the features of a features-in "
                            f"export (batch, T, F) (a streaming graph's state?), "
                            f"so there is nothing to calibrate it on; run this model in fp32")



def _samples(meta: ModelMetadata, spec: TensorSpec) -> int:
    n = spec.shape[1]
    return n if isinstance(n, int) else int(round(meta.window_seconds * meta.sample_rate))


def _world_windows(meta: ModelMetadata, split: str, count: int):
    """The model's world (``metadata.extra["world"]``, else bench), ``count`` single-event windows
    of ``split`` (2 s, or the model's window if longer) and their audio ``(count, samples)``."""
    from models.world import get_preset
    from models.world.cache import cached_window_audio
    from models.world.evalsets import single_event_windows

    world = get_preset(meta.extra.get("world", "bench"))
    seconds = max(2.0, meta.window_seconds)
    windows = list(single_event_windows(split, seconds, count, config=world)[:count])
    audio = np.asarray(cached_window_audio(windows, meta.sample_rate, world, desc=f"rendering {split} windows"))
    return world, windows, audio


def world_inputs(meta: ModelMetadata, split: str, count: int) -> tuple[dict[str, np.ndarray], list]:
    """``count`` single-event windows of the model's world (``metadata.extra["world"]``, else
    the bench world) from ``split`` as the model's inputs, and the windows.

    A waveform input gets the last ``samples`` of each window (the labelled tail, as
    ``apps.evaluate`` feeds it); a picture input gets the world frame at the window's centre,
    preprocessed as the L3 localizers' metadata says (``extra["frame_preprocess"]``).

    Raises:
        QuantizeError: an input this cannot fill (names it).
    """
    from models.world.scene import Scene

    world, windows, audio = _world_windows(meta, split, count)
    feeds: dict[str, np.ndarray] = {}
    for spec in meta.inputs:
        if _is_waveform(spec, meta):
            n = _samples(meta, spec)
            feeds[spec.name] = np.ascontiguousarray(audio[:, audio.shape[1] - n:], dtype=np.float32)
        elif _is_features(spec, meta):
            feeds[spec.name] = _features(meta, audio)
        elif _is_picture(spec) and "x / 127.5 - 1" in str(meta.extra.get("frame_preprocess", "")):
            from models.l3.network import preprocess_frames

            scenes: dict[int, Scene] = {}
            frames = []
            for w in windows:
                scene = scenes.setdefault(w.seed, Scene(world, w.seed))
                frames.append(scene.render_frame(int(round((w.end - meta.window_seconds / 2) * world.fps)))[0])
            feeds[spec.name] = preprocess_frames(np.stack(frames), int(spec.shape[2])).numpy()
        else:
            raise QuantizeError(f"input {spec.name} {tuple(spec.shape)}: no world inputs for it (a picture input needs "
                                f"extra.frame_preprocess 'x / 127.5 - 1' in the sidecar); pass --calib-data DIR")
    return feeds, windows


def data_inputs(meta: ModelMetadata, root: Path, count: int) -> tuple[dict[str, np.ndarray], str]:
    """``count`` training clips of a dataset folder (any clip layout the trainer reads), the
    first ``window_seconds`` of each, as the input of an audio-only labeler; and a description.

    Raises:
        QuantizeError: the model takes more than one waveform input.
    """
    from models.datasets.labelled_sets import read_labelled_set

    features = len(meta.inputs) == 1 and _is_features(meta.inputs[0], meta)
    if len(meta.inputs) != 1 or not (_is_waveform(meta.inputs[0], meta) or features):
        raise QuantizeError(f"--calib-data calibrates audio-only labelers (one waveform input); this model takes "
                            f"{', '.join(s.name for s in meta.inputs)}: leave --calib-data out to use world windows")
    data = read_labelled_set(Path(root), recipe="python -m models.export --int8")
    clips = dataclasses.replace(data.train, clips=tuple(data.train.clips[:count]))
    decoded = clips.decode(meta.sample_rate, meta.window_seconds)
    if not len(decoded.audio):
        raise QuantizeError(f"--calib-data {root}: none of the first {count} training clips decoded")
    spec = meta.inputs[0]
    if features:
        return {spec.name: _features(meta, np.asarray(decoded.audio))}, f"{data.layout} training clips of {root}"
    audio = np.ascontiguousarray(decoded.audio[:, :_samples(meta, spec)], dtype=np.float32)
    return {spec.name: audio}, f"{data.layout} training clips of {root}"


def calibration_inputs(meta: ModelMetadata, calib: int,
                       calib_data: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The calibration inputs of an int8 build and a description of them: ``calib`` world
    validation windows (:func:`world_inputs`), or ``calib`` training clips of the dataset folder
    ``calib_data`` (:func:`data_inputs`). Shared by the ONNX Runtime INT8 export here and the
    TensorRT entropy calibrator (engines/calibration.py), so both calibrate on the same inputs.

    Returns:
        ``({input name: (N, ...) array}, description)``.

    Raises:
        QuantizeError: a model with inputs nothing here can fill, or a bad count (one line).
    """
    if isinstance(calib, bool) or not isinstance(calib, int) or calib < 1:
        raise QuantizeError(f"--calib: expected a count of inputs >= 1, found {calib!r}")
    check_calibratable(meta, where=f"{meta.family} {meta.task}")
    if is_streaming(meta):
        raise QuantizeError(f"{meta.family} {meta.task}: a streaming labeler's state inputs are calibrated hop by hop "
                            f"by python -m models.export --int8 (ONNX Runtime) only, not in one batch; run it with "
                            f"--precision int8 on ONNX Runtime, or build its TensorRT engine in fp16/fp32")
    if calib_data is not None:
        return data_inputs(meta, Path(calib_data), calib)
    feeds, _ = world_inputs(meta, "val", calib)
    return feeds, f"world '{meta.extra.get('world', 'bench')}' validation single-event windows"


class _SessionRunner:
    """What a live adapter calls (``infer(feeds) -> {output: array}``) over an ONNX Runtime
    session; with ``record``, every call's inputs are appended to it (copied: the adapter reuses
    its buffers)."""

    def __init__(self, session, record: list | None = None) -> None:
        self.session, self.record = session, record
        self.names = [o.name for o in session.get_outputs()]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.record is not None:
            self.record.append({k: np.array(v, dtype=np.float32) for k, v in feeds.items()})
        return dict(zip(self.names, self.session.run(None, dict(feeds))))


def _stream(labeler, audio: np.ndarray) -> list:
    """Run a streaming labeler over ``audio`` (samples,) from its reset state, one call per hop,
    as the live scheduler does (the first chunk padded with the samples before the stream, zeros)
    -> what each call returned."""
    window = labeler.window
    chunk, hop = window.samples, int(round(window.hop_seconds * window.sample_rate))
    padded = np.concatenate([np.zeros(chunk - hop, np.float32), np.asarray(audio, np.float32)])
    labeler.reset()
    return [labeler(padded[end - chunk:end]) for end in range(chunk, len(padded) + 1, hop)]


def stream_calibration_rows(src: Path, meta: ModelMetadata, count: int) -> tuple[list[dict[str, np.ndarray]], str]:
    """``count`` calibration inputs of a streaming labeler: its fp32 graph run by its family's live
    adapter over the world's first validation scene (``count`` seconds, at least 60), every call's
    inputs recorded, ``count`` of them taken evenly; and a description."""
    from models.families import live_adapter
    from models.world import get_preset, split_seed
    from models.world.scene import Scene

    world = get_preset(meta.extra.get("world", "bench"))
    seed, seconds = split_seed("val", 0), max(60, count)
    audio = Scene(world, seed).render_audio(0, int(seconds * meta.sample_rate), meta.sample_rate)
    calls: list[dict[str, np.ndarray]] = []
    _stream(live_adapter(meta)(_SessionRunner(_session(src), record=calls), meta), audio)
    picked = np.linspace(0, len(calls) - 1, min(count, len(calls))).round().astype(int)
    return [calls[i] for i in picked], (f"hops of world '{meta.extra.get('world', 'bench')}' validation scene {seed} "
                                        f"({seconds} s streamed by the fp32 graph, state carried)")


def stream_window_scores(path: Path, meta: ModelMetadata, audio: np.ndarray) -> np.ndarray:
    """``(N, samples)`` windows -> ``(N, C)``: each window streamed through the graph at ``path``
    from a reset state by its family's live adapter, scored by the maximum of its frame scores."""
    from models.families import live_adapter

    labeler = live_adapter(meta)(_SessionRunner(_session(path)), meta)
    return np.stack([np.max([r.scores.max(axis=0) for r in _stream(labeler, wave)], axis=0) for wave in audio])


#: How :func:`static_int8` quantizes (recorded in every int8 sidecar).
INT8_METHOD = "onnxruntime quantize_static, QDQ, uint8 activations, per-channel int8 weights, min-max calibration"


def static_int8(src: str | os.PathLike, dst: str | os.PathLike, rows: list[dict[str, np.ndarray]],
                excluded: list[str] = ()) -> None:
    """ONNX Runtime static INT8 of ``src`` into ``dst`` the way every avlive variant is made
    (:data:`INT8_METHOD`), calibrated on ``rows`` (one feed dict per call; a streaming graph's
    feeds differ in shape from call to call), the ``excluded`` nodes left in float32."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._rows = iter(rows)

        def get_next(self):
            return next(self._rows, None)

    quantize_static(os.fspath(src), os.fspath(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(excluded))


def _one_row_each(feeds: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """``{input: (N, ...)}`` -> N feed dicts of one row each."""
    n = len(next(iter(feeds.values())))
    return [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(n)]


def _run(session, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    n = len(next(iter(feeds.values())))
    parts = [session.run(None, {k: v[i:i + _BATCH] for k, v in feeds.items()}) for i in range(0, n, _BATCH)]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def _session(path: Path, threads: int = 2):
    import onnxruntime as ort

    from models.evaluation.benchmark import ort_session_options

    return ort.InferenceSession(os.fspath(path), ort_session_options(threads), providers=["CPUExecutionProvider"])


def _compare(fp32: Path, int8: Path, meta: ModelMetadata, feeds: Mapping[str, np.ndarray]):
    a, b = _run(_session(fp32), feeds), _run(_session(int8), feeds)
    names = [s.name for s in meta.outputs]
    diffs = {n: float(np.abs(x.astype(np.float64) - y).max()) for n, x, y in zip(names, a, b)}
    first_a, first_b = a[0].reshape(len(a[0]), -1), b[0].reshape(len(b[0]), -1)
    agreement = float(np.mean(first_a.argmax(1) == first_b.argmax(1)))
    return diffs, agreement, a[0], b[0]


def _world_labels(meta: ModelMetadata) -> bool:
    from models.world import CLASS_NAMES

    return meta.task == "labeler" and tuple(meta.labels) == tuple(CLASS_NAMES)


def export_int8(
    onnx: str | os.PathLike,
    *,
    calib: int = DEFAULT_CALIB,
    calib_data: str | os.PathLike | None = None,
    held_out: int = DEFAULT_HELD_OUT,
    out: str | os.PathLike | None = None,
) -> Int8Report:
    """Write the static INT8 variant of an exported model (see the module docstring).

    Args:
        onnx: The fp32 ``.onnx`` file; its sidecar must be beside it.
        calib: Calibration inputs (world validation windows, or clips of ``calib_data``).
        calib_data: A dataset folder to calibrate on instead (audio-only labelers).
        held_out: World test windows to compare fp32 and int8 on.
        out: Where to write (default: ``model.int8.onnx`` beside ``onnx``).

    Raises:
        FileNotFoundError: ``onnx`` or its sidecar is missing.
        QuantizeError: a model or calibration set this cannot quantize (one line).
    """
    from onnxruntime import __version__ as ort_version
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx as onnx_lib

    started = time.perf_counter()
    src, meta = load_export(onnx, "no such ONNX file (export the fp32 model first: python -m models.export RUN)")
    check_calibratable(meta, where=str(src))
    if isinstance(calib, bool) or not isinstance(calib, int) or calib < 1:
        raise QuantizeError(f"--calib: expected a count of inputs >= 1, found {calib!r}")
    target = Path(out) if out is not None else precision_path(src, "int8")
    streaming = is_streaming(meta)
    if streaming:
        if calib_data is not None:
            raise QuantizeError(f"--calib-data: {src} is a streaming labeler, calibrated hop by hop on a world stream "
                                f"with its state; leave --calib-data out")
        rows, described = stream_calibration_rows(src, meta, calib)
    else:
        feeds, described = calibration_inputs(meta, calib, calib_data)
        rows = _one_row_each(feeds)
    count = len(rows)
    remove_stale_temps(target)
    remove_stale_temps(sidecar_path(target))

    with tempfile.TemporaryDirectory(prefix="avlive-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # symbolic shape inference is for transformer graphs; ONNX's own inference suffices here
        quant_pre_process(os.fspath(src), os.fspath(pre), skip_symbolic_shape=True)
        graph = onnx_lib.load(os.fspath(pre))
        excluded = list(dict.fromkeys(front_end_nodes(graph) + output_head_nodes(graph)))
        with atomic_path(target) as part:
            try:
                static_int8(pre, part, rows, excluded)
            except Exception as e:  # ONNX Runtime's quantizer raises many types; one line says which
                raise QuantizeError(f"{src}: ONNX Runtime's quantize_static failed ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''})") from None
            if streaming:
                _, windows, audio = _world_windows(meta, "test", held_out)
                probs32, probs8 = (stream_window_scores(p, meta, audio) for p in (src, part))
                diffs = {"window max of probs": float(np.abs(probs32.astype(np.float64) - probs8).max())}
                agreement = float(np.mean(probs32.argmax(1) == probs8.argmax(1)))
            else:
                test, windows = world_inputs(meta, "test", held_out)
                diffs, agreement, probs32, probs8 = _compare(src, part, meta, test)
    record = {
        "precision": "int8",
        "method": INT8_METHOD,
        "source": src.name,
        "source_sha256": sha256_file(src),
        "calibration": {"set": described, "count": count},
        "float32_nodes": excluded,
        "held_out": {"set": f"world '{meta.extra.get('world', 'bench')}' test single-event windows"
                            + (" (each streamed from a reset state, scored by its frames' maximum)" if streaming else ""),
                     "count": len(probs32), "max_abs_diff": diffs, "top1_agreement": agreement},
        "onnxruntime_version": ort_version,
    }
    if _world_labels(meta):
        from models.world.scoring import single_event_figures

        a, b = single_event_figures(probs32, windows), single_event_figures(probs8, windows)
        record["world_test"] = {"windows": len(windows), "fp32": {k: a[k] for k in ("top1", "mAP")},
                                "int8": {k: b[k] for k in ("top1", "mAP")},
                                "top1_change_points": 100 * (b["top1"] - a["top1"]),
                                "mAP_change": b["mAP"] - a["mAP"]}
    # the sidecar names the file it describes: written after the model (see export_onnx)
    meta = meta.replace(extra={**meta.extra, "precision": record, "onnx_sha256": sha256_file(target)})
    meta.save(sidecar_path(target))
    return Int8Report(target, sidecar_path(target), record, time.perf_counter() - started)


#: Why ``--bf16`` writes nothing: what was measured (2026-12-06, a shared 2-core avx512_bf16
#: CPU, ONNX Runtime 1.32, torch 2.13; paper-size Slow-Fast EPIC, random weights, batch 1, 400
#: frames, medians of 10 calls): ONNX Runtime runs no bfloat16 graph here (ONNX's Conv takes no
#: bfloat16 at opset 18; MatMul(13) in bfloat16 has no CPU kernel), and PyTorch's oneDNN bf16
#: autocast at 1 thread (86 and 140 ms in two runs, ``python -m apps.bench_precision --slowfast``)
#: is no faster than fp32 in ONNX Runtime (84 and 130 ms), which avlive runs already; OpenVINO is
#: not installed. INT8 (``--int8``: 37 ms in the second run, x3.5) is the reduced precision that wins.
BF16_REFUSAL = ("--bf16: no bfloat16 variant is written: ONNX Runtime {ort} has no bfloat16 CPU kernels for these "
                "graphs (Conv takes no bfloat16; MatMul: NOT_IMPLEMENTED), and PyTorch bf16 autocast measured no gain "
                "over fp32 ONNX Runtime (Slow-Fast EPIC, 1 thread: 140 vs 130 ms; python -m apps.bench_precision "
                "--slowfast); use --int8")


def bf16_refusal() -> str:
    """The one-line reason ``--bf16`` (and ``avlive --precision bf16``) gives for running nothing."""
    import onnxruntime

    return BF16_REFUSAL.format(ort=onnxruntime.__version__)
