"""Turning ``--labeler / --localizer / --models / --backend / --device / --threads / --precision``
into live models.

This layer knows no model family. It finds out what a path holds (from metadata only), opens
the runner ``--backend`` asks for (``engines``: ONNX Runtime, PyTorch or TensorRT), and hands the
runner with the model's metadata to the live adapter of the model's family
(``models.families.live_adapter``), which returns the labeler or localizer the scheduler runs.

What ``--models PATH`` (and ``--labeler PATH`` / ``--localizer PATH``) accepts:

=============================  ==============================================================
path                           read as
=============================  ==============================================================
run folder                     ``metadata.json`` says the task and holds the run's live settings.
                               ``onnxruntime`` runs ``model.onnx`` (``python -m models.export
                               RUN``); ``torch`` rebuilds ``checkpoints/best.pt`` (else
                               ``last.pt``) through its recipe; ``tensorrt`` runs
                               ``model*.engine`` with its sidecar
``*.onnx``                     an exported model; its sidecar ``*.onnx.json`` says the task
``*.engine`` / ``*.plan``      a TensorRT engine with its sidecar (``--backend tensorrt``)
``*.pt``                       an avlive checkpoint (its metadata says the task)
a file a family reads          ``models.families.MODEL_FILES`` (a released Slow-Fast ``.pyth``,
                               a bare L3 checkpoint, a PANNs ``.pth``): ``torch`` runs it directly, ``onnxruntime``
                               exports it once into ``.avlive-cache/`` beside it
a folder holding one of those  that file (the demo layout: model + sidecar)
=============================  ==============================================================

``--backend triton`` (``--triton-url HOST:PORT``) runs each model on a Triton Inference Server: a
path above names the model the way ``python -m models.export PATH --triton REPO`` named it (its
folder's name: ``runs/baseline`` → ``baseline``, ``models/demo/labeler`` → ``labeler``), a repository
entry ``REPO/NAME/`` is ``NAME``, and anything that is not a path is the model's name on the server;
the model's metadata comes from the server (:func:`triton_source`).

``--precision int8`` (ONNX Runtime only) runs ``model.int8.onnx`` in place of ``model.onnx`` (a run
folder, a folder holding an export, or ``FILE.onnx`` → ``FILE.int8.onnx``), written by
``python -m models.export RUN --int8``; a missing variant is a one-line error naming that command.

Each model found is checked against its use (a localizer given as ``--labeler`` names the
``task`` field; a waveform input whose length disagrees with the window names its shape)
and its rolling-label setting is taken from ``extra["hysteresis"]`` of its metadata
(:meth:`realtime.rolling.HysteresisConfig.from_metadata`) into the :class:`ModelSlot`.

Without any model, the demo models ``models/demo/labeler`` and ``models/demo/localizer`` are
used when they exist (for real input the real-sound labeler ``models/demo/real-sounds``, alone);
otherwise :class:`NoModels` says what to pass. ``--labeler`` or ``--localizer`` replaces the
default of its kind only.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engines.base import NonFiniteOutputError
from engines.triton_runner import DEFAULT_TRITON_URL
from models.core.atomic import is_temp_file, sha256_file
from models.core.metadata import PRECISIONS, MetadataMismatch, ModelMetadata, precision_path, sidecar_path
from models.families import MODEL_FILES, exportable, live_adapter, model_file_for

from .rolling import HysteresisConfig
from .scheduler import ModelSlot

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "DEMO_DIR",
    "DEVICES",
    "MODEL_USAGE",
    "LiveModel",
    "LiveModels",
    "ModelError",
    "ModelSource",
    "NoModels",
    "inspect_model",
    "triton_model_name",
    "triton_source",
    "load_models",
    "open_model",
]

BACKENDS = ("onnxruntime", "torch", "tensorrt", "triton")
DEVICES = ("cpu", "cuda")

#: Where the demo models live (issues 5 and 6 put them there).
DEMO_DIR = Path(__file__).resolve().parents[1] / "models" / "demo"

MODEL_USAGE = """\
models (--models PATH ..., or --labeler / --localizer PATH):
  RUN_DIR                   a run folder of python -m models.train (labeler or localizer, from
                            its metadata.json); onnxruntime needs RUN_DIR/model.onnx
                            (python -m models.export RUN_DIR), tensorrt RUN_DIR/model.*.engine
  FILE.onnx | FILE.engine   an exported model | a TensorRT engine, with its sidecar FILE.*.json
  FILE.pt                   an avlive checkpoint or a bare L3 checkpoint
  FILE.pyth                 a released Slow-Fast checkpoint (VGG-Sound, EPIC-100, EPIC-SOUNDS);
                            onnxruntime exports it once into .avlive-cache/ beside it
  FILE.pth                  a PANNs AudioSet checkpoint (Zenodo 3987831), exported the same way;
                            Cnn14 and Cnn14_DecisionLevelMax hold the same keys, so the name
                            decides: Cnn14_*.pth tags, Cnn14_DecisionLevelMax_*.pth gives frame
                            scores; for another name: python -m models.export FILE.pth
                            --family panns-cnn14 (or panns-cnn14-decision-max), then FILE.onnx
  NAME (--backend triton)   a model on the Triton server (--triton-url); a path names the model
                            its --triton export made (runs/baseline: baseline)
  none given                the synthetic world: models/demo/labeler and models/demo/localizer;
                            a microphone, camera or file: models/demo/real-sounds (labels only)
  --labeler / --localizer   each replaces the default of its kind and keeps the other's (none:
                            leave that kind out); --models lists the run's models exactly
audio below a model's rate (a 22.05 or 11.025 kHz file for a 16 or 48 kHz model) is upsampled
for it, and one line per model says what it gets; a default model whose band the audio fills
less than half (on its own mel or linear axis) is left out, saying how to run it anyway (name
it)"""

_KINDS = ("labeler", "localizer")
#: The demo labeler for real input (everyday sounds from Debian packages, apps.build_real_sounds).
REAL_SOUNDS = "real-sounds"
_ENGINE_SUFFIXES = (".engine", ".plan")
_MODEL_SUFFIXES = (".onnx", ".pt", *_ENGINE_SUFFIXES)  # and whatever a family model file claims
#: Where checkpoints and family model files are exported for ONNX Runtime, beside the file.
CACHE_DIR = ".avlive-cache"


class ModelError(ValueError):
    """A model path or option the live pipeline cannot use; the message is one line for the user."""


class NoModels(ModelError):
    """No model was given and there are no demo models."""


@dataclass(frozen=True)
class ModelSource:
    """What a model path holds, before anything is loaded.

    Attributes:
        path: the path as given.
        kind: "run" (run folder), "onnx", "engine", "checkpoint" (avlive), or the name of the
            family file kind that reads it (``models.families.MODEL_FILES``: "slowfast-pyth",
            "l3-checkpoint").
        task: "labeler" or "localizer" (or "embedding", which the pipeline refuses).
        metadata: the model's metadata (for family files, of their export).
    """

    path: Path
    kind: str
    task: str
    metadata: ModelMetadata | None = None

    @property
    def name(self) -> str:
        """A short name for logs and the JSON lines' ``model`` field."""
        p = self.path
        if p.parent.name == "checkpoints":  # RUN/checkpoints/best.pt: the run's name
            p = p.parent.parent
        elif p.is_file() and (p.name == "model.onnx" or (p.parent / "metadata.json").is_file()):
            p = p.parent  # a run folder's export or another file of the run
        return p.stem if p.is_file() else p.name


@dataclass
class LiveModel:
    """A loaded live model and how the scheduler runs it.

    Attributes:
        name: unique among the loaded models.
        kind: "labeler" or "localizer".
        model: a ``models.core.live.Labeler`` or ``Localizer`` (from its family's live adapter).
        source: where it came from.
        backend: "onnxruntime", "torch" or "tensorrt".
        hysteresis: the rolling-label setting (labelers), from the metadata.
        metadata: the model's metadata, when it has one.
        named: the user named it (``--labeler``, ``--localizer``, ``--models``); False: the run
            chose it by default (a default model may be left out where it cannot work,
            ``realtime.bands``).
    """

    name: str
    kind: str
    model: Any
    source: ModelSource
    backend: str
    hysteresis: HysteresisConfig | None = None
    metadata: ModelMetadata | None = None
    named: bool = True
    _runner: Any = field(default=None, repr=False)

    def slot(self, every: int = 1) -> ModelSlot:
        """The scheduler's slot for this model."""
        return ModelSlot(self.name, self.model, every=every, hysteresis=self.hysteresis, kind=self.kind)

    def slot_for_stream(self, every: int = 1, *, first: bool = True) -> ModelSlot:
        """The scheduler's slot for this model in one of several streams of a process.

        A model that keeps no state is the same object in every stream (the streams share it and,
        when it offers ``batch``, one runner call per hop); a stateful one (``reset()``, e.g. a
        streaming CRNN) gets, after the first stream, a new adapter on the same runner, so each
        stream keeps its own state.
        """
        model = self.model
        if not first and callable(getattr(model, "reset", None)):
            model = live_adapter(self.metadata)(self._runner, self.metadata)
            if not hasattr(model, "metadata"):
                model.metadata = self.metadata
        return ModelSlot(self.name, model, every=every, hysteresis=self.hysteresis, kind=self.kind)

    def describe(self) -> str:
        w = self.model.window
        frame = (f" + {w.frames} frames at {w.frame_rate:g} fps" if w.frames > 1 else
                 " + frame" if w.needs_frame or self.kind == "localizer" else "")
        precision = (self.metadata.extra.get("precision") or {}) if self.metadata is not None else {}
        kind = f"{precision['precision']} " if isinstance(precision, dict) and precision.get("precision") else ""
        return (f"{self.kind} {self.name} ({kind}{self.source.kind} {self.source.path}, {self.backend}, {w.seconds:g} s at "
                f"{w.sample_rate} Hz{frame})")

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None


@dataclass
class LiveModels:
    """The labelers and the localizer (at most one) for a run."""

    labelers: list[LiveModel]
    localizer: LiveModel | None

    @property
    def all(self) -> list[LiveModel]:
        return [*self.labelers, *([self.localizer] if self.localizer is not None else [])]

    def slots(self, localizer_every: int = 1) -> list[ModelSlot]:
        return [m.slot(localizer_every if m.kind == "localizer" else 1) for m in self.all]

    def stream_slots(self, localizer_every: int = 1, *, first: bool = True) -> list[ModelSlot]:
        """:meth:`slots` for one of several streams (see :meth:`LiveModel.slot_for_stream`)."""
        return [m.slot_for_stream(localizer_every if m.kind == "localizer" else 1, first=first) for m in self.all]

    @property
    def sample_rate(self) -> int:
        """The highest model rate: the capture rate (models at lower rates get resampled streams)."""
        return max(m.model.window.sample_rate for m in self.all)

    @property
    def preferred_hop(self) -> float | None:
        """The pipeline hop the first labeler that states one prefers (seconds,
        ``metadata.extra["hop_seconds"]``), or None when none does.

        Raises:
            ModelError: a stated hop that is not a number of seconds > 0.
        """
        for m in self.labelers:
            extra = m.metadata.extra if m.metadata is not None else {}
            if "hop_seconds" not in extra:
                continue
            hop = extra["hop_seconds"]
            if isinstance(hop, bool) or not isinstance(hop, (int, float)) or not math.isfinite(hop) or hop <= 0:
                raise ModelError(f"labeler {m.name}: metadata extra.hop_seconds: expected seconds > 0, found {hop!r}")
            return float(hop)
        return None

    def leave_out(self, model: LiveModel) -> None:
        """Drop ``model`` from the run and close it."""
        if model is self.localizer:
            self.localizer = None
        else:
            self.labelers.remove(model)
        model.close()

    def close(self) -> None:
        for m in self.all:
            m.close()


# --------------------------------------------------------------------------------- inspection


def _load_sidecar(path: Path, what: str) -> ModelMetadata:
    try:
        return ModelMetadata.load(path)
    except FileNotFoundError:
        raise ModelError(f"{what}: {path.name} is missing (expected {path})") from None
    except ValueError as e:
        raise ModelError(str(e)) from None


def _checkpoint_source(p: Path) -> ModelSource:
    import torch

    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for foreign pickles
        raise ModelError(f"checkpoint {p}: not loadable ({type(e).__name__}); expected an avlive checkpoint or a "
                         f"file one of the model families reads ({', '.join(MODEL_FILES.names())})") from None
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict) and "recipe" in data:
        try:
            m = ModelMetadata.from_dict(data["metadata"])
        except ValueError as e:
            raise ModelError(f"checkpoint {p}: {e}") from None
        return ModelSource(p, "checkpoint", m.task, m)
    keys = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
    raise ModelError(f"checkpoint {p}: expected an avlive checkpoint (metadata, recipe) or a file one of the model "
                     f"families reads ({', '.join(MODEL_FILES.names())}), found {keys}")


def inspect_model(path: str | os.PathLike) -> ModelSource:
    """What ``path`` holds (see the module docstring); loads metadata only.

    Raises:
        ModelError: no such path, or it lacks a file a model needs (the file is named).
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model {p}: no such file or folder")
    if p.is_dir():
        meta = p / "metadata.json"
        if meta.is_file():
            m = _load_sidecar(meta, f"run folder {p}")
            if m.extra.get("offline"):  # a run that scores recordings only says why it cannot run live
                raise ModelError(f"run folder {p}: {m.extra['offline']}")
            return ModelSource(p, "run", m.task, m)
        if (p / "model.onnx").is_file():
            return inspect_model(p / "model.onnx")
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.endswith(".json") and not is_temp_file(f)
                       and (f.suffix in _MODEL_SUFFIXES or model_file_for(f) is not None))
        if len(files) == 1:
            return inspect_model(files[0])
        found = ", ".join(f.name for f in files) if files else "none"
        raise ModelError(f"model folder {p}: metadata.json is missing (a run folder of python -m models.train holds "
                         f"metadata.json and checkpoints/best.pt or last.pt; model files found: {found})")
    if p.suffix == ".onnx":
        m = _load_sidecar(sidecar_path(p), f"ONNX model {p}")
        return ModelSource(p, "onnx", m.task, m)
    if p.suffix in _ENGINE_SUFFIXES:
        m = _load_sidecar(sidecar_path(p), f"TensorRT engine {p}")
        return ModelSource(p, "engine", m.task, m)
    kind = model_file_for(p)
    if kind is not None:
        try:
            m = kind.metadata(p)
        except (ValueError, KeyError) as e:
            raise ModelError(f"{p}: {e}") from None
        return ModelSource(p, kind.name, m.task, m)
    if p.suffix == ".pt":
        return _checkpoint_source(p)
    raise ModelError(f"model {p}: expected a run folder, a .onnx, .engine, .pt file or one of "
                     f"{', '.join(MODEL_FILES.names())}, found a {p.suffix or 'suffix-less'} file")


def triton_model_name(value: str | os.PathLike) -> str:
    """The name on a Triton server of what ``--models`` names (see the module docstring)."""
    p = Path(value)
    if p.is_dir() and (p / "config.pbtxt").is_file():
        return p.resolve().name  # a repository entry
    if p.exists():
        from models.export.triton import default_model_name

        return default_model_name(p)
    return str(value)


def triton_source(value: str | os.PathLike, url: str) -> ModelSource:
    """What the Triton server at ``url`` holds under the name of ``value``; its metadata comes
    from the server.

    Raises:
        ModelError: tritonclient missing, no server, no such model, no avlive metadata (one line).
    """
    from engines.triton_runner import require_tritonclient, server_metadata

    name = triton_model_name(value)
    try:
        require_tritonclient()
        meta = server_metadata(url, name)
    except RuntimeError as e:  # TRITON_MISSING, TritonServerError
        raise ModelError(f"--backend triton: {str(e).splitlines()[0]}") from None
    return ModelSource(Path(name), "triton", meta.task, meta)


def _check_use(src: ModelSource, kind: str) -> None:
    """Refuse a model whose metadata does not fit the use (names the field)."""
    if src.task != kind:
        e = MetadataMismatch("task", kind, src.task, f"{src.path} is a {src.task}; "
                             + ("pass it as --localizer or in --models" if src.task == "localizer" else
                                "pass it as --labeler or in --models" if src.task == "labeler" else
                                "the live pipeline runs labelers and localizers"))
        raise ModelError(str(e))
    m = src.metadata
    if kind == "labeler" and m is not None:
        samples = int(round(m.window_seconds * m.sample_rate))
        # the waveform input: named so, or the only input when it is (batch, samples); a labeler
        # that also takes frames, or takes a spectrogram, is its family adapter's to check
        audio = [t for t in m.inputs if t.name in ("audio", "waveform")] or \
            [t for t in m.inputs[:1] if len(m.inputs) == 1 and len(t.shape) == 2]
        if not audio:
            return
        dim = audio[0].shape[-1]
        if isinstance(dim, int) and dim != samples:
            raise ModelError(str(MetadataMismatch(f"inputs[{m.inputs.index(audio[0])}].shape", f"(..., {samples})",
                                                  audio[0].shape, f"{src.path}: window_seconds {m.window_seconds:g} "
                                                  f"x sample_rate {m.sample_rate} = {samples} samples")))


# --------------------------------------------------------------------------------- loading


def _run_file(src: ModelSource, names: Sequence[str], what: str, how: str) -> Path:
    for name in names:
        found = sorted(src.path.glob(name))
        if found:
            return found[0]
    raise ModelError(f"run folder {src.path}: {what} is missing ({how})")


def _cached_onnx(src: ModelSource) -> tuple[Path, ModelMetadata]:
    """Export a checkpoint or family model file once into ``.avlive-cache/`` beside it (keyed by
    the file's sha256), for ONNX Runtime."""
    from models.core.atomic import sha256_file
    from models.export.cli import export_any

    digest = sha256_file(src.path)[:16]
    out = src.path.parent / CACHE_DIR / f"{src.path.stem}-{digest}.onnx"
    if out.is_file() and sidecar_path(out).is_file():
        return out, _load_sidecar(sidecar_path(out), f"cached export {out}")
    command = f"python -m models.export {src.path} --out OUT.onnx"
    try:
        out.parent.mkdir(exist_ok=True)
    except OSError as e:
        raise ModelError(f"{src.path}: cannot create the export cache {out.parent} ({e.strerror}); export it "
                         f"yourself ({command}) and pass OUT.onnx, or pass --backend torch") from None
    print(f"avlive: exporting {src.path} to {out} for onnxruntime (once; later runs reuse it)", file=sys.stderr)
    try:
        export_any(src.path, out)
    except Exception as e:  # noqa: BLE001 - any export failure becomes one line
        raise ModelError(f"{src.path}: export for onnxruntime failed ({type(e).__name__}: {str(e).splitlines()[0]}); "
                         f"try {command}, or pass --backend torch") from None
    return out, _load_sidecar(sidecar_path(out), f"cached export {out}")


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def check_onnx_pair(onnx: Path, meta: ModelMetadata) -> None:
    """Refuse an ONNX file beside a sidecar written for another export (the sidecar records the
    file's SHA-256 since the export that added it; older sidecars are taken as they are).

    Raises:
        ModelError: the hashes differ (an export interrupted between its two files, or files
            copied from two exports).
    """
    expected = meta.extra.get("onnx_sha256")
    if expected is None:
        return
    found = sha256_file(onnx)
    if found != expected:
        raise ModelError(f"{onnx}: the file does not match its sidecar {sidecar_path(onnx).name} (onnx_sha256 "
                         f"{expected[:12]}..., file {found[:12]}...): the two come from different exports; export "
                         f"again: python -m models.export RUN_FOLDER")


def _variant(onnx: Path, precision: str, exported_from: Path, meta: ModelMetadata) -> Path:
    """The ``precision`` variant of an exported model (``model.int8.onnx`` beside ``model.onnx``).

    Raises:
        ModelError: it is missing (names the command that writes it, or says why no such variant
            can exist: a graph with inputs nothing calibrates INT8 on).
    """
    if precision == "fp32" or onnx.name.endswith(f".{precision}.onnx"):
        return onnx
    variant = precision_path(onnx, precision)
    if not variant.is_file() or not sidecar_path(variant).is_file():
        if precision == "int8":
            from models.export.quantize import QuantizeError, check_calibratable

            try:
                check_calibratable(meta, where=str(onnx))
            except QuantizeError as e:
                why = str(e).split("; ")[1]  # "<inputs> is neither a waveform ... nothing to calibrate it on"
                raise ModelError(f"--precision int8: {onnx} has no INT8 variant and cannot have one: {why}; leave "
                                 f"out --precision to run it in fp32") from None
        missing = variant if not variant.is_file() else sidecar_path(variant)
        raise ModelError(f"--precision {precision}: {missing} is missing; write it with: python -m models.export "
                         f"{exported_from} --{precision}")
    return variant


def _open_runner(src: ModelSource, backend: str, device: str, threads: int, precision: str = "fp32",
                 triton_url: str = DEFAULT_TRITON_URL):
    """(runner, metadata) for ``src`` on ``backend`` in ``precision``."""
    from engines import open_runner

    if precision == "bf16":
        from models.export.quantize import bf16_refusal

        raise ModelError(bf16_refusal().replace("--bf16", "--precision bf16", 1))
    if precision != "fp32" and backend != "onnxruntime":
        raise ModelError(f"--precision {precision}: reduced-precision variants run with --backend onnxruntime, "
                         f"found --backend {backend}" + (" (a TensorRT engine has the precision it was built with)"
                                                         if backend == "tensorrt" else ""))
    if backend == "triton":
        if device != "cpu":
            raise ModelError(f"--device {device}: with --backend triton the server decides where the model runs (its "
                             f"instance kind: python -m models.export MODEL --triton REPO --triton-kind gpu); leave "
                             f"--device out")
        if src.kind != "triton":
            src = triton_source(src.path, triton_url)
        try:
            runner = open_runner("triton", str(src.path), metadata=src.metadata, url=triton_url)
        except (RuntimeError, ValueError) as e:  # no server, model gone, tensors that disagree: one line
            raise ModelError(f"--backend triton: {str(e).splitlines()[0]}") from None
        return runner, src.metadata
    if src.kind == "triton":
        raise ModelError(f"{src.path}: a model on a Triton server runs with --backend triton")
    if backend == "onnxruntime":
        if src.kind == "engine":
            raise ModelError(f"{src.path}: a TensorRT engine runs with --backend tensorrt")
        if src.kind == "onnx":
            onnx, meta = src.path, src.metadata
        elif src.kind == "run":
            onnx = _run_file(src, ["model.onnx"], "model.onnx", f"--backend onnxruntime runs the exported model: "
                             f"python -m models.export {src.path}; or pass --backend torch")
            meta = _load_sidecar(sidecar_path(onnx), f"run folder {src.path}")
        else:
            if precision != "fp32":
                raise ModelError(f"--precision {precision}: {src.path} is not an export; write one with: python -m "
                                 f"models.export {src.path} --out OUT.onnx --{precision}, then pass OUT.onnx")
            onnx, meta = _cached_onnx(src)
        if precision != "fp32":
            onnx = _variant(onnx, precision, src.path if src.kind == "run" else onnx, meta)
            meta = _load_sidecar(sidecar_path(onnx), f"{precision} model {onnx}")
        _check_use(ModelSource(onnx, "onnx", meta.task, meta), src.task)
        check_onnx_pair(onnx, meta)
        try:
            return open_runner("onnxruntime", onnx, device=device, threads=threads, metadata=meta), meta
        except Exception as e:  # a truncated, empty or foreign file: ONNX Runtime's own message, one line
            if isinstance(e, ModelError):
                raise
            raise ModelError(f"{onnx}: ONNX Runtime cannot load it ({_first_line(e)}); export it again: "
                             f"python -m models.export RUN_FOLDER") from None
    if backend == "tensorrt":
        if src.kind == "run":
            engine = _run_file(src, ["model*.engine", "model*.plan"], "a TensorRT engine (model.*.engine)",
                               f"build one: python -m engines.build_engine {src.path / 'model.onnx'} --fp16")
        elif src.kind == "engine":
            engine = src.path
        else:
            target = src.path if src.kind == "onnx" else "MODEL.onnx (python -m models.export first)"
            raise ModelError(f"{src.path}: --backend tensorrt runs an engine; build one: "
                             f"python -m engines.build_engine {target} --fp16")
        from engines.tensorrt_runner import require_tensorrt

        try:
            require_tensorrt()  # before the engine is read: without TensorRT nothing else matters
            runner = open_runner("tensorrt", engine, device="cuda", metadata=None)
        except (RuntimeError, ValueError) as e:  # TensorRT or CUDA missing, a mismatched sidecar: one line
            raise ModelError(f"--backend tensorrt: {str(e).splitlines()[0]}") from None
        return runner, _load_sidecar(sidecar_path(engine), f"TensorRT engine {engine}")
    # torch
    if src.kind in ("onnx", "engine"):
        what = "an .onnx file runs with --backend onnxruntime" if src.kind == "onnx" else "an engine runs with --backend tensorrt"
        raise ModelError(f"{src.path}: {what} (for torch pass the run folder or checkpoint)")
    import torch

    torch.set_num_threads(threads)
    path = _run_file(src, ["checkpoints/best.pt", "checkpoints/last.pt"], "checkpoints/best.pt",
                     "and checkpoints/last.pt; --backend torch loads the checkpoint; for an exported model.onnx "
                     "pass --backend onnxruntime") \
        if src.kind == "run" else src.path
    try:
        model = exportable(path)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise ModelError(f"{src.path}: {str(e).splitlines()[0]}") from None
    # a run folder's metadata.json is where the run's live settings go (apps.tune_labeler --write,
    # apps.eval_l3 --write-threshold); the inputs and outputs are the checkpoint's either way
    meta = src.metadata if src.kind == "run" else model.metadata
    return open_runner("torch", model.module, device=device, threads=threads, metadata=meta), meta


def _probe_labeler(model, meta: ModelMetadata) -> None:
    """One call on quiet noise before the run, so a model that cannot work fails at load with
    its reason instead of at the first hop: scores that do not match its labels (a sidecar from
    another export), non-finite scores (corrupt weights). Labelers that take pictures are probed
    by their first hop. A stateful labeler is reset afterwards.

    Raises:
        ValueError: what the model got wrong, and what to do.
    """
    window = model.window
    if window.needs_frame:
        return
    noise = np.random.default_rng(0).normal(0.0, 1e-3, window.samples).astype(np.float32)
    n = len(meta.labels)
    try:
        out = model(noise, None)
    except ValueError as e:
        raise ValueError(f"{e} (the sidecar names {n} labels; a sidecar from another export? export again: "
                         f"python -m models.export RUN_FOLDER)") from None
    except NonFiniteOutputError as e:
        raise ValueError(f"non-finite scores on quiet input ({e}): corrupt weights? export or train it again") from None
    scores = np.asarray(getattr(out, "scores", out))
    if scores.shape[-1] != n:
        raise ValueError(f"the model gives {scores.shape[-1]} scores per step, its sidecar names {n} labels; "
                         f"the sidecar belongs to another export: export again (python -m models.export RUN_FOLDER)")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"non-finite scores on quiet input ({int(np.size(scores) - np.isfinite(scores).sum())} of "
                         f"{np.size(scores)}): corrupt weights? export or train it again")
    reset = getattr(model, "reset", None)
    if callable(reset):
        reset()


def open_model(src: ModelSource, kind: str, *, backend: str = "onnxruntime", device: str = "cpu",
               threads: int = 2, name: str | None = None, precision: str = "fp32",
               triton_url: str = DEFAULT_TRITON_URL) -> LiveModel:
    """Load one model for one use: open the runner for ``backend``, then the family's live adapter.

    Args:
        src: what :func:`inspect_model` found.
        kind: "labeler" or "localizer".
        backend: "onnxruntime", "torch", "tensorrt" (an engine file with its sidecar) or "triton"
            (a model on a Triton server).
        device: "cpu" or "cuda".
        threads: CPU threads for the backend.
        name: the model's name (default: the folder's or file's).
        precision: "fp32", or "int8" for the exported variant (onnxruntime).
        triton_url: the Triton server's gRPC ``HOST:PORT`` (backend "triton").

    Raises:
        ModelError: a missing file (named), a use its metadata does not allow (field named), a
            backend or device that cannot run it.
    """
    if backend not in BACKENDS:
        raise ModelError(f"--backend: expected one of {', '.join(BACKENDS)}, found {backend!r}")
    if device not in DEVICES:
        raise ModelError(f"--device: expected one of {', '.join(DEVICES)}, found {device!r}")
    if precision not in PRECISIONS:
        raise ModelError(f"--precision: expected one of {', '.join(PRECISIONS)}, found {precision!r}")
    _check_use(src, kind)
    runner, meta = _open_runner(src, backend, device, threads, precision, triton_url)
    try:
        model = live_adapter(meta)(runner, meta)
    except BaseException as e:
        runner.close()
        if isinstance(e, (KeyError, ValueError)):
            raise ModelError(f"{src.path}: {str(e).strip(chr(34) + chr(39))}") from None
        raise
    try:
        hysteresis = HysteresisConfig.from_metadata(meta) if kind == "labeler" else None
        if kind == "labeler":
            _probe_labeler(model, meta)
    except BaseException as e:
        runner.close()
        if isinstance(e, ValueError):
            raise ModelError(f"{src.path}: {e}") from None
        raise
    if not hasattr(model, "metadata"):
        try:
            model.metadata = meta
        except AttributeError:
            pass
    return LiveModel(name or src.name, kind, model, src, backend, hysteresis, meta, _runner=runner)


def load_models(*, labeler: str | None = None, localizer: str | None = None, models: Sequence[str] = (),
                backend: str = "onnxruntime", device: str = "cpu", threads: int = 2, video: bool = True,
                demo_dir: Path | None = None, real_input: bool = False,
                precision: str = "fp32", triton_url: str = DEFAULT_TRITON_URL) -> tuple[LiveModels, list[str]]:
    """The models for a run, from the command-line options.

    ``--models`` lists the run's models exactly. ``--labeler`` and ``--localizer`` each choose
    one kind and keep the default of the other (``none`` leaves a kind out): the demo labeler and
    localizer for the synthetic world; for real input the real-sound labeler and no localizer
    (the demo localizer has only seen the world's pictures), or the world's demo models in a
    checkout without the real-sound labeler. The first note says which models run and why.

    Args:
        labeler: a labeler path, ``"none"``, or None (the default).
        localizer: a localizer path, ``"none"``, or None (the default).
        models: paths, each a labeler or a localizer by its metadata.
        backend, device, threads: how to run them.
        video: whether the run has frames (without, a localizer is left out: no heatmap).
        demo_dir: where the demo models are looked for (default :data:`DEMO_DIR`).
        real_input: the input is a microphone, a camera or a file, not the synthetic world.
        precision: "fp32" (the export itself) or "int8" (each model's ``*.int8.onnx``).
        triton_url: the Triton server (backend "triton"), whose models' metadata is read from it.

    Returns:
        ``(models, notes)``: notes are one-line remarks for stderr. Models the run chose by
        default have ``named=False``.

    Raises:
        NoModels: nothing given and no demo models.
        ModelError: see :func:`open_model`; two localizers; no labeler and no localizer left.
    """
    demo_dir = Path(DEMO_DIR if demo_dir is None else demo_dir)
    notes: list[str] = []
    if backend not in BACKENDS:
        raise ModelError(f"--backend: expected one of {', '.join(BACKENDS)}, found {backend!r}")
    served = backend == "triton"
    if served and device != "cpu":
        raise ModelError(f"--device {device}: with --backend triton the server decides where the model runs (its "
                         f"instance kind: python -m models.export MODEL --triton REPO --triton-kind gpu); leave "
                         f"--device out")

    def inspect(value: str | os.PathLike) -> ModelSource:
        return triton_source(value, triton_url) if served else inspect_model(value)

    for flag, value in (("--labeler", labeler), ("--localizer", localizer)):
        if value is not None and value != "none" and not served and not Path(value).exists():
            raise ModelError(f"{flag} {value}: no such file or folder (expected a model path or 'none')")
    wanted: list[tuple[ModelSource, str, str]] = []  # (source, kind, why)
    if labeler not in (None, "none"):
        wanted.append((inspect(labeler), "labeler", "--labeler"))
    if localizer not in (None, "none"):
        wanted.append((inspect(localizer), "localizer", "--localizer"))
    for path in models:
        src = inspect(path)
        if src.task not in _KINDS:
            raise ModelError(str(MetadataMismatch("task", "labeler or localizer", src.task, f"{path}")))
        wanted.append((src, src.task, "--models"))
    absent: list[str] = []  # kinds that run without a model, and why
    if not models:  # --models lists the run's models; otherwise each kind not chosen gets its default
        real_sounds = demo_dir / REAL_SOUNDS
        real = real_input and real_sounds.exists()
        given = {k for _, k, _ in wanted}
        world = ("default for the synthetic world: the demo models" if not real_input else
                 f"default: the demo models ({real_sounds} is not in this checkout)")
        if labeler is None and "labeler" not in given:
            path = real_sounds if real else demo_dir / "labeler"
            if path.exists():
                why = "default for real input: the real-sound labeler, everyday sounds" if real else world
                wanted.append((inspect(path), "labeler", why))
            elif localizer in (None, "none"):
                raise NoModels(f"no model given and no demo models in {demo_dir} yet: pass --models RUN_DIR (a run "
                               f"folder; train one with: python -m models.train --recipe baseline --out runs/baseline)")
        elif labeler == "none":
            absent.append("no labeler (--labeler none)")
        if localizer is None and "localizer" not in given:
            path = demo_dir / "localizer"
            if real:
                absent.append("no localizer (default for real input: the demo localizer knows only the synthetic "
                              "world's pictures; add one: --localizer PATH)")
            elif path.exists():
                wanted.append((inspect(path), "localizer", f"{world}; --localizer none leaves it out"))
        elif localizer == "none":
            absent.append("no localizer (--localizer none)")
    if not video:
        dropped = [s for s, k, _ in wanted if k == "localizer"]
        if dropped:
            notes.append(f"no video: leaving out the localizer {dropped[0].path} (labels only, no heatmap)")
        wanted = [w for w in wanted if w[1] != "localizer"]
    if sum(k == "localizer" for _, k, _ in wanted) > 1:
        raise ModelError("more than one localizer given: " + ", ".join(str(s.path) for s, k, _ in wanted
                                                                        if k == "localizer"))
    if not wanted:
        raise ModelError("no model left to run: give a labeler (--models RUN_DIR) or, with video, a localizer")
    ordered = sorted(wanted, key=lambda w: _KINDS.index(w[1]))
    notes.insert(0, "models: " + ", ".join([f"{k} {s.path} ({why})" for s, k, why in ordered] + absent)
                 + f"; precision {precision}")
    loaded: list[LiveModel] = []
    used: set[str] = set()
    try:
        for src, kind, why in wanted:
            name = src.name
            i = 2
            while name in used:
                name, i = f"{src.name}-{i}", i + 1
            used.add(name)
            model = open_model(src, kind, backend=backend, device=device, threads=threads, name=name,
                               precision=precision, triton_url=triton_url)
            model.named = not why.startswith("default")
            loaded.append(model)
    except BaseException:
        for m in loaded:
            m.close()
        raise
    labelers = [m for m in loaded if m.kind == "labeler"]
    localizers = [m for m in loaded if m.kind == "localizer"]
    return LiveModels(labelers, localizers[0] if localizers else None), notes
