"""Turning ``--labeler / --localizer / --models / --backend / --device / --threads`` into live models.

What ``--models PATH`` (and ``--labeler PATH`` / ``--localizer PATH``) accepts:

=============================  ==============================================================
path                           read as
=============================  ==============================================================
run folder                     ``metadata.json`` says the task. Labeler: ``model.onnx`` (+ its
                               sidecar, ``python -m models.export RUN``) for ``onnxruntime``,
                               ``checkpoints/best.pt`` (else ``last.pt``) for ``torch``.
                               Localizer (L³): ``model.onnx`` for ``onnxruntime``; ``l3.pt``
                               (``apps.eval_l3 --write-threshold``), else the checkpoint, for
                               ``torch``
``*.onnx``                     an exported model; its sidecar ``*.onnx.json`` says the task
``*.pt``                       an avlive checkpoint (its metadata says the task) or an L³
                               checkpoint (``models.l3.save_checkpoint``: a localizer)
``*.pyth``                     a released Slow-Fast checkpoint (a labeler, ``torch`` only)
a folder holding one of those  that file (the demo layout: checkpoint + sidecar)
=============================  ==============================================================

Each model found is checked against its use (a localizer given as ``--labeler`` names the
``task`` field; an ONNX input whose length disagrees with the window names ``inputs[0].shape``)
and its rolling-label setting is taken from ``extra["hysteresis"]`` of its metadata
(:meth:`realtime.rolling.HysteresisConfig.from_metadata`) into the :class:`ModelSlot`.

Without any model, the demo models ``models/demo/labeler`` and ``models/demo/localizer`` are
used when they exist (issues 5 and 6 ship them); otherwise :class:`NoModels` says what to pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models.live import LIVE_MODELS, FRAME_AT_CENTRE, FunctionLabeler, Heatmap, WindowSpec
from models.metadata import MetadataMismatch, ModelMetadata, sidecar_path

from .rolling import HysteresisConfig
from .scheduler import ModelSlot

__all__ = [
    "BACKENDS",
    "DEMO_DIR",
    "DEVICES",
    "MODEL_USAGE",
    "LiveModel",
    "LiveModels",
    "ModelError",
    "ModelSource",
    "NoModels",
    "OnnxLocalizer",
    "inspect_model",
    "load_models",
    "open_model",
]

BACKENDS = ("onnxruntime", "torch")
DEVICES = ("cpu", "cuda")

#: Where the demo models live (issues 5 and 6 put them there).
DEMO_DIR = Path(__file__).resolve().parents[1] / "models" / "demo"

MODEL_USAGE = """\
models (--models PATH ..., or --labeler / --localizer PATH):
  RUN_DIR                   a run folder of python -m models.train (labeler or L3 localizer,
                            from its metadata.json); onnxruntime needs RUN_DIR/model.onnx
                            (python -m models.export RUN_DIR)
  FILE.onnx                 an exported model with its sidecar FILE.onnx.json
  FILE.pt | FILE.pyth       an avlive or L3 checkpoint | a released Slow-Fast checkpoint (torch)
  none given                models/demo/labeler and models/demo/localizer when they exist"""

_KINDS = ("labeler", "localizer")


class ModelError(ValueError):
    """A model path or option the live pipeline cannot use; the message is one line for the user."""


class NoModels(ModelError):
    """No model was given and there are no demo models."""


@dataclass(frozen=True)
class ModelSource:
    """What a model path holds, before anything is loaded.

    Attributes:
        path: the path as given.
        kind: "run" (run folder), "onnx", "checkpoint" (avlive), "l3-checkpoint", "pyth".
        task: "labeler" or "localizer" (or "embedding", which the pipeline refuses).
        metadata: the model's metadata, None for ``.pyth`` and bare L³ checkpoints.
    """

    path: Path
    kind: str
    task: str
    metadata: ModelMetadata | None = None

    @property
    def name(self) -> str:
        """A short name for logs and the JSON lines' ``model`` field."""
        p = self.path
        if p.name in ("model.onnx", "l3.pt", "best.pt", "last.pt") or p.parent.name == "checkpoints":
            p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
        return p.stem if p.is_file() else p.name


@dataclass
class LiveModel:
    """A loaded live model and how the scheduler runs it.

    Attributes:
        name: unique among the loaded models.
        kind: "labeler" or "localizer".
        model: a ``models.live.Labeler`` or ``Localizer``.
        source: where it came from.
        backend: "onnxruntime" or "torch".
        hysteresis: the rolling-label setting (labelers), from the metadata.
        metadata: the model's metadata, when it has one.
    """

    name: str
    kind: str
    model: Any
    source: ModelSource
    backend: str
    hysteresis: HysteresisConfig | None = None
    metadata: ModelMetadata | None = None
    _runner: Any = field(default=None, repr=False)

    def slot(self, every: int = 1) -> ModelSlot:
        """The scheduler's slot for this model."""
        return ModelSlot(self.name, self.model, every=every, hysteresis=self.hysteresis, kind=self.kind)

    def describe(self) -> str:
        w = self.model.window
        frame = " + frame" if w.needs_frame or self.kind == "localizer" else ""
        return f"{self.kind} {self.name} ({self.source.kind} {self.source.path}, {self.backend}, {w.seconds:g} s at {w.sample_rate} Hz{frame})"

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

    @property
    def sample_rate(self) -> int:
        """The highest model rate: the capture rate (models at lower rates get resampled streams)."""
        return max(m.model.window.sample_rate for m in self.all)

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
            return ModelSource(p, "run", m.task, m)
        if (p / "model.onnx").is_file():
            return inspect_model(p / "model.onnx")
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".onnx", ".pt", ".pyth"))
        if len(files) == 1:
            return inspect_model(files[0])
        found = ", ".join(f.name for f in files) if files else "none"
        raise ModelError(f"model folder {p}: metadata.json is missing (a run folder of python -m models.train holds "
                         f"metadata.json and checkpoints/best.pt or last.pt; model files found: {found})")
    if p.suffix == ".pyth":
        return ModelSource(p, "pyth", "labeler")
    if p.suffix == ".onnx":
        m = _load_sidecar(sidecar_path(p), f"ONNX model {p}")
        return ModelSource(p, "onnx", m.task, m)
    if p.suffix == ".pt":
        side = sidecar_path(p)
        if side.is_file():
            m = _load_sidecar(side, f"checkpoint {p}")
            data_kind = "l3-checkpoint" if m.family == "l3" and _is_l3_checkpoint(p) else "checkpoint"
            return ModelSource(p, data_kind, m.task, m)
        import torch

        try:
            data = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises several types for foreign pickles
            raise ModelError(f"checkpoint {p}: not loadable ({type(e).__name__}); expected an avlive or L3 checkpoint") from None
        if isinstance(data, dict) and isinstance(data.get("metadata"), dict) and "recipe" in data:
            try:
                m = ModelMetadata.from_dict(data["metadata"])
            except ValueError as e:
                raise ModelError(f"checkpoint {p}: {e}") from None
            return ModelSource(p, "checkpoint", m.task, m)
        if isinstance(data, dict) and {"config", "model_state"} <= set(data):
            return ModelSource(p, "l3-checkpoint", "localizer")
        keys = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise ModelError(f"checkpoint {p}: expected an avlive checkpoint (metadata, recipe) or an L3 checkpoint "
                         f"(config, model_state), found {keys}")
    raise ModelError(f"model {p}: expected a run folder, a .onnx, .pt or .pyth file, found a {p.suffix or 'suffix-less'} file")


def _is_l3_checkpoint(p: Path) -> bool:
    import torch

    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        return False
    return isinstance(data, dict) and {"config", "model_state"} <= set(data) and "recipe" not in data


def _check_use(src: ModelSource, kind: str) -> None:
    """Refuse a model whose metadata does not fit the use (names the field)."""
    if src.task != kind:
        e = MetadataMismatch("task", kind, src.task, f"{src.path} is a {src.task}; "
                             + ("pass it as --localizer or in --models" if src.task == "localizer" else
                                "pass it as --labeler or in --models" if src.task == "labeler" else
                                "the live pipeline runs labelers and localizers"))
        raise ModelError(str(e))
    m = src.metadata
    if m is None:
        return
    if kind == "labeler" and m.needs_frame:
        raise ModelError(str(MetadataMismatch("needs_frame", False, True, f"{src.path}: labelers that take a frame "
                                              "are not supported by the live pipeline yet")))
    if kind == "labeler":
        samples = int(round(m.window_seconds * m.sample_rate))
        dim = m.inputs[0].shape[-1]
        if isinstance(dim, int) and dim != samples:
            raise ModelError(str(MetadataMismatch("inputs[0].shape", f"(..., {samples})", m.inputs[0].shape,
                                                  f"{src.path}: window_seconds {m.window_seconds:g} x sample_rate "
                                                  f"{m.sample_rate} = {samples} samples")))


# --------------------------------------------------------------------------------- loading


class OnnxLocalizer:
    """A live L³ localizer on an exported ``model.onnx`` (inputs ``frames``, ``audio``; output
    ``cell_probs``) through an engines runner; the frame is preprocessed as in training."""

    def __init__(self, runner, metadata: ModelMetadata) -> None:
        from models.l3 import heatmap_from_cells, preprocess_frames

        self._runner = runner
        self._heatmap = heatmap_from_cells
        self._preprocess = preprocess_frames
        self.metadata = metadata
        self.threshold = float(metadata.extra.get("threshold", 0.5))
        self._size = int(metadata.inputs[0].shape[-1])
        frame_at = metadata.extra.get("frame_at", FRAME_AT_CENTRE)
        self.window = WindowSpec(metadata.window_seconds, metadata.sample_rate, needs_frame=True, frame_at=frame_at)
        self._audio = np.zeros((1, self.window.samples), np.float32)

    def __call__(self, audio: np.ndarray, frame: np.ndarray) -> Heatmap:
        self._audio[0] = audio
        frames = self._preprocess(frame, self._size).numpy()
        out = self._runner.infer({"frames": frames, "audio": self._audio})
        return self._heatmap(np.array(out["cell_probs"][0], np.float32), frame.shape[:2], self.threshold)


def _scores_output(m: ModelMetadata) -> tuple[str, str]:
    """(output name, how to turn it into scores in [0, 1])."""
    names = [o.name for o in m.outputs]
    for name in ("probs", "scores", "probabilities"):
        if name in names:
            return name, "identity"
    if "logits" in names:
        return "logits", "sigmoid" if m.extra.get("multi_label") else "softmax"
    return names[0], "identity"


def _onnx_labeler(onnx: Path, m: ModelMetadata, device: str, threads: int):
    from engines import open_runner

    runner = open_runner("onnxruntime", onnx, device=device, threads=threads, metadata=m)
    name, how = _scores_output(m)
    in_name = m.inputs[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        y = runner.infer({in_name: batch})[name]
        if how == "sigmoid":
            return 1.0 / (1.0 + np.exp(-y))
        if how == "softmax":
            e = np.exp(y - y.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return y

    window = WindowSpec(m.window_seconds, m.sample_rate, needs_frame=False)
    return FunctionLabeler(window, m.labels, predict), runner


def _run_onnx(src: ModelSource) -> tuple[Path, ModelMetadata]:
    if src.kind == "onnx":
        return src.path, src.metadata
    onnx = src.path / "model.onnx"
    if not onnx.is_file():
        raise ModelError(f"run folder {src.path}: model.onnx is missing (--backend onnxruntime runs the exported "
                         f"model: python -m models.export {src.path}; or pass --backend torch)")
    return onnx, _load_sidecar(sidecar_path(onnx), f"run folder {src.path}")


def _run_checkpoint(src: ModelSource) -> Path:
    if src.kind != "run":
        return src.path
    ckpt = src.path / "checkpoints"
    for name in ("best.pt", "last.pt"):
        if (ckpt / name).is_file():
            return ckpt / name
    raise ModelError(f"run folder {src.path}: checkpoints/best.pt is missing (and checkpoints/last.pt; "
                     f"--backend torch loads the checkpoint; for an exported model.onnx pass --backend onnxruntime)")


def open_model(src: ModelSource, kind: str, *, backend: str = "onnxruntime", device: str = "cpu",
               threads: int = 2, name: str | None = None) -> LiveModel:
    """Load one model for one use.

    Args:
        src: what :func:`inspect_model` found.
        kind: "labeler" or "localizer".
        backend: "onnxruntime" or "torch" (``.pyth`` and L³ checkpoints run on torch: with
            ``onnxruntime`` they need an exported ``.onnx``).
        device: "cpu" or "cuda".
        threads: CPU threads for the backend.
        name: the model's name (default: the folder's or file's).

    Raises:
        ModelError: a missing file (named), a use its metadata does not allow (field named), a
            backend or device that cannot run it.
    """
    if backend not in BACKENDS:
        raise ModelError(f"--backend: expected one of {', '.join(BACKENDS)}, found {backend!r}")
    if device not in DEVICES:
        raise ModelError(f"--device: expected one of {', '.join(DEVICES)}, found {device!r}")
    _check_use(src, kind)
    name = name or src.name
    runner = None
    meta = src.metadata
    if kind == "labeler":
        if src.kind == "pyth":
            if backend != "torch":
                raise ModelError(f"{src.path}: a .pyth checkpoint runs with --backend torch (or export it: "
                                 f"python -m models.export {src.path}, then pass the .onnx)")
            model = LIVE_MODELS.create("slowfast-pyth", src.path, backend="torch", device=device, threads=threads)
        elif backend == "onnxruntime":
            onnx, meta = _run_onnx(src)
            _check_use(ModelSource(onnx, "onnx", meta.task, meta), kind)
            model, runner = _onnx_labeler(onnx, meta, device, threads)
        else:
            if src.kind == "onnx":
                raise ModelError(f"{src.path}: an .onnx file runs with --backend onnxruntime (for torch pass the run folder)")
            ckpt = _run_checkpoint(src)
            import torch

            torch.set_num_threads(threads)
            if device == "cpu":
                model = LIVE_MODELS.create("run", ckpt)
            else:
                from engines import open_runner
                from models.train.checkpoint import load_trained

                recipe, net, metadata = load_trained(ckpt)
                module, _, _ = recipe.export_module(net)
                meta = ModelMetadata.from_dict(metadata)
                runner = open_runner("torch", module, device=device, threads=threads, metadata=meta)
                out_name, _ = _scores_output(meta)
                in_name = meta.inputs[0].name
                model = FunctionLabeler(WindowSpec(meta.window_seconds, meta.sample_rate), meta.labels,
                                        lambda b: runner.infer({in_name: b})[out_name])
        hysteresis = HysteresisConfig.from_metadata(meta) if meta is not None else HysteresisConfig()
        if meta is not None and not hasattr(model, "metadata"):
            try:
                model.metadata = meta
            except AttributeError:
                pass
        return LiveModel(name, kind, model, src, backend, hysteresis, meta, runner)

    # localizer
    if backend == "onnxruntime" and src.kind in ("run", "onnx"):
        from engines import open_runner

        onnx, meta = _run_onnx(src)
        _check_use(ModelSource(onnx, "onnx", meta.task, meta), kind)
        runner = open_runner("onnxruntime", onnx, device=device, threads=threads, metadata=meta)
        return LiveModel(name, kind, OnnxLocalizer(runner, meta), src, backend, None, meta, runner)
    if src.kind == "onnx":
        raise ModelError(f"{src.path}: an .onnx file runs with --backend onnxruntime (for torch pass the run folder)")
    if backend == "onnxruntime":
        raise ModelError(f"{src.path}: an L3 checkpoint runs with --backend torch; for onnxruntime pass a run folder "
                         f"with model.onnx (python -m models.export RUN_DIR)")
    if src.kind == "run" and (src.path / "l3.pt").is_file():
        model = LIVE_MODELS.create("l3", src.path / "l3.pt", backend="torch", device=device, threads=threads)
    elif src.kind == "l3-checkpoint":
        model = LIVE_MODELS.create("l3", src.path, backend="torch", device=device, threads=threads)
    else:  # a trainer checkpoint of an l3 run; threshold from its metadata
        import torch

        from models.l3 import L3Localizer, L3Net
        from models.train.checkpoint import load_trained

        torch.set_num_threads(threads)
        _, net, metadata = load_trained(_run_checkpoint(src))
        if not isinstance(net, L3Net):
            raise ModelError(f"{src.path}: a localizer of family {metadata.get('family')!r}; the live pipeline runs L3 localizers")
        model = L3Localizer(net.to(device), threshold=float(metadata.get("extra", {}).get("threshold", 0.5)))
    return LiveModel(name, kind, model, src, backend, None, meta, None)


def _spec_is_factory(value: str | None) -> bool:
    return value is not None and value in LIVE_MODELS and not Path(value).exists()


def load_models(*, labeler: str | None = None, localizer: str | None = None, models: Sequence[str] = (),
                backend: str = "onnxruntime", device: str = "cpu", threads: int = 2, video: bool = True,
                demo_dir: Path | None = None) -> tuple[LiveModels, list[str]]:
    """The models for a run, from the command-line options.

    Args:
        labeler: a labeler path, ``"none"``, or None.
        localizer: a localizer path, ``"none"``, or None.
        models: paths, each a labeler or a localizer by its metadata.
        backend, device, threads: how to run them.
        video: whether the run has frames (without, a localizer is left out: no heatmap).
        demo_dir: where the demo models are looked for when no model is given (default
            :data:`DEMO_DIR`).

    Returns:
        ``(models, notes)``: notes are one-line remarks for stderr.

    Raises:
        NoModels: nothing given and no demo models.
        ModelError: see :func:`open_model`; two localizers; no labeler and no localizer left.
    """
    demo_dir = Path(DEMO_DIR if demo_dir is None else demo_dir)
    notes: list[str] = []
    for flag, value in (("--labeler", labeler), ("--localizer", localizer)):
        if _spec_is_factory(value):  # a LIVE_MODELS name: the paths come from --models
            continue
        if value is not None and value != "none" and not Path(value).exists():
            raise ModelError(f"{flag} {value}: no such file or folder (expected a model path, 'none', or one of "
                             f"{', '.join(LIVE_MODELS.names())} with --models)")
    wanted: list[tuple[ModelSource, str]] = []
    if labeler not in (None, "none") and not _spec_is_factory(labeler):
        wanted.append((inspect_model(labeler), "labeler"))
    if localizer not in (None, "none") and not _spec_is_factory(localizer):
        wanted.append((inspect_model(localizer), "localizer"))
    for path in models:
        src = inspect_model(path)
        if src.task not in _KINDS:
            raise ModelError(str(MetadataMismatch("task", "labeler or localizer", src.task, f"{path}")))
        wanted.append((src, src.task))
    if not wanted:
        demo = [(demo_dir / k, k) for k in _KINDS if (demo_dir / k).exists()]
        demo = [(p, k) for p, k in demo if not (k == "labeler" and labeler == "none")
                and not (k == "localizer" and localizer == "none")]
        if not any(k == "labeler" for _, k in demo) and labeler != "none":
            raise NoModels(f"no model given and no demo models in {demo_dir} yet: pass --models RUN_DIR (a run folder; "
                           f"train one with: python -m models.train --recipe baseline --out runs/baseline)")
        wanted = [(inspect_model(p), k) for p, k in demo]
        notes.append("using the demo models in " + str(demo_dir))
    if not video:
        dropped = [s for s, k in wanted if k == "localizer"]
        if dropped:
            notes.append(f"no video: leaving out the localizer {dropped[0].path} (labels only, no heatmap)")
        wanted = [(s, k) for s, k in wanted if k != "localizer"]
    if sum(k == "localizer" for _, k in wanted) > 1:
        raise ModelError("more than one localizer given: " + ", ".join(str(s.path) for s, k in wanted if k == "localizer"))
    if not wanted:
        raise ModelError("no model left to run: give a labeler (--models RUN_DIR) or, with video, a localizer")
    loaded: list[LiveModel] = []
    used: set[str] = set()
    try:
        for src, kind in wanted:
            name = src.name
            i = 2
            while name in used:
                name, i = f"{src.name}-{i}", i + 1
            used.add(name)
            loaded.append(open_model(src, kind, backend=backend, device=device, threads=threads, name=name))
    except BaseException:
        for m in loaded:
            m.close()
        raise
    labelers = [m for m in loaded if m.kind == "labeler"]
    localizers = [m for m in loaded if m.kind == "localizer"]
    return LiveModels(labelers, localizers[0] if localizers else None), notes
