"""Linear transfer from a SoundNet layer (the paper's evaluation): window features, a one-vs-rest
linear SVM, and the fitted SVM as one labeler file that exports to ONNX and runs live.

* **Windows**: each clip is cut into overlapping windows of ``seconds`` every ``hop_seconds``
  (the last one ends at the clip's end); a clip shorter than a window is tiled to length, as the
  authors' loader tiles short files. A window's feature is a layer's output averaged over time.
* **Baseline features**: the same windows as log-mel statistics, per-band mean and standard
  deviation (64 bands at 22,050 Hz).
* **SVM**: features standardised (training-fold mean and deviation), ``LinearSVC`` (one-vs-rest,
  squared hinge, as liblinear ``-s 1`` in the authors' ``eval_esc50.lua``) with C picked by
  leave-one-fold-out cross-validation over the training folds on clip accuracy; trained on every
  window of the training clips; a test clip's score is the mean decision value over its windows.
* **Labeler file** (:data:`LINEAR_FILE`, a ``.pt`` of tensors and plain types): the network up to
  the layer, the standardisation and the SVM's weights as a linear layer; waveform (one window at
  22,050 Hz) in, softmax of the decision values (``probs``) out. ``avlive --labeler FILE`` and
  ``python -m models.export FILE`` open it through the family's model-file kind.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.atomic import atomic_torch_save
from models.core.family import ExportableModel, ModelFile
from models.core.metadata import ModelMetadata, TensorSpec
from models.soundnet.network import SAMPLE_RATE, SoundNet, SoundNetConfig

LINEAR_FORMAT = "avlive-soundnet-linear"
LINEAR_VERSION = 1
#: The log-mel statistics baseline's front end: 64 bands, 46 ms frames every 23 ms at 22,050 Hz.
LOGMEL = FrontEndConfig(sample_rate=SAMPLE_RATE, n_fft=1024, win_length=1024, hop_length=512, center=True,
                        power=2.0, n_mels=64, mel_scale="htk", mel_norm=None, log_offset=1e-6)
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0)


@dataclass(frozen=True)
class Windows:
    """How clips are cut: windows of ``seconds`` every ``hop_seconds`` at 22,050 Hz."""

    seconds: float = 2.0
    hop_seconds: float = 0.5

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and self.hop_seconds > 0):
            raise ValueError(f"Windows: expected seconds and hop_seconds > 0, found {self.seconds}, {self.hop_seconds}")

    @property
    def samples(self) -> int:
        return round(self.seconds * SAMPLE_RATE)

    def cut(self, audio: np.ndarray) -> np.ndarray:
        """``(N,)`` float -> ``(W, samples)`` float32 windows (short clips tiled to one window)."""
        audio = np.asarray(audio, np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("Windows.cut: expected audio samples, found an empty clip")
        n = self.samples
        if audio.size < n:
            audio = np.tile(audio, -(-n // audio.size))[:n]
        hop = max(1, round(self.hop_seconds * SAMPLE_RATE))
        starts = list(range(0, audio.size - n + 1, hop))
        if starts[-1] != audio.size - n:
            starts.append(audio.size - n)
        return np.stack([audio[s:s + n] for s in starts])


@torch.no_grad()
def layer_features(net: SoundNet, clips: Sequence[np.ndarray], layer: str, windows: Windows,
                   batch: int = 16) -> list[np.ndarray]:
    """Each clip's windows as ``(W, C)`` float32: ``layer`` averaged over time."""
    net.eval()
    out = []
    for audio in clips:
        w = torch.from_numpy(windows.cut(audio))
        out.append(torch.cat([net.layer(w[i:i + batch], layer).mean(dim=2) for i in range(0, len(w), batch)]).numpy())
    return out


@torch.no_grad()
def logmel_statistics(clips: Sequence[np.ndarray], windows: Windows, batch: int = 32) -> list[np.ndarray]:
    """Each clip's windows as ``(W, 128)``: per-band mean and standard deviation of the log-mel."""
    fe = FrontEnd(LOGMEL)
    out = []
    for audio in clips:
        w = torch.from_numpy(windows.cut(audio))
        rows = []
        for i in range(0, len(w), batch):
            mel = fe(w[i:i + batch])  # (B, T, 64)
            rows.append(torch.cat([mel.mean(dim=1), mel.std(dim=1)], dim=1))
        out.append(torch.cat(rows).numpy())
    return out


@dataclass
class LinearSVM:
    """A fitted one-vs-rest linear SVM on standardised features.

    Attributes:
        mean, scale: ``(D,)`` standardisation.
        weight: ``(K, D)``; bias: ``(K,)``: decision values ``((x - mean) / scale) @ weight.T + bias``.
        C: the regularisation picked.
        cv_accuracy: mean clip accuracy of that C over the inner folds (NaN with one candidate).
    """

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    C: float
    cv_accuracy: float

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict_clips(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """The class of each clip: argmax of its windows' mean decision value."""
        return np.array([int(np.argmax(self.decision(w).mean(axis=0))) for w in clips])


def _fit_once(clips: Sequence[np.ndarray], labels: np.ndarray, n_classes: int, C: float, seed: int) -> LinearSVM:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    x = np.concatenate(clips).astype(np.float64)
    y = np.concatenate([np.full(len(w), lab) for w, lab in zip(clips, labels)])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    # A feature that barely varies (a little-trained layer varies by 1e-5 of its size) would be blown
    # up by 1/std, and float32's rounding in the network with it (measured: 7e-9 between ONNX
    # Runtime and PyTorch on features of size 0.04): deviations floored at 1e-3 of the features' RMS.
    scale = np.maximum(scale, max(1e-3 * float(np.sqrt(np.mean(x * x))), 1e-12))
    with warnings.catch_warnings():  # large C on few clips stops at max_iter; the fold accuracy says what it gives
        warnings.simplefilter("ignore", ConvergenceWarning)
        svc = LinearSVC(C=C, tol=1e-3, max_iter=1000, random_state=seed).fit((x - mean) / scale, y)
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, -1e3)  # a class absent from the training folds is never picked
    if len(svc.classes_) == 2:  # liblinear gives one hyperplane for two classes
        coef, intercept = svc.coef_[0], svc.intercept_[0]
        weight[svc.classes_] = np.stack([-coef, coef])
        bias[svc.classes_] = [-intercept, intercept]
    else:
        weight[svc.classes_], bias[svc.classes_] = svc.coef_, svc.intercept_
    return LinearSVM(mean, scale, weight, bias, float(C), float("nan"))


def fit_svm(clips: Sequence[np.ndarray], labels: Sequence[int], folds: Sequence[int], n_classes: int,
            Cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> LinearSVM:
    """Fit on every window of ``clips`` (each ``(W, D)``), C by leave-one-fold-out over ``folds``.

    Raises:
        ValueError: no clips, or clips, labels and folds of different lengths.
    """
    labels, folds = np.asarray(labels), np.asarray(folds)
    if not len(clips) or not len(clips) == len(labels) == len(folds):
        raise ValueError(f"fit_svm: expected as many clips, labels and folds (> 0), found {len(clips)}, "
                         f"{len(labels)}, {len(folds)}")
    best_c, best_acc = float(Cs[0]), float("nan")
    inner = np.unique(folds)
    if len(Cs) > 1 and len(inner) > 1:
        scores = []
        for C in Cs:
            correct = 0
            for f in inner:
                tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
                svm = _fit_once([clips[i] for i in tr], labels[tr], n_classes, C, seed)
                correct += int((svm.predict_clips([clips[i] for i in te]) == labels[te]).sum())
            scores.append(correct / len(labels))
        k = int(np.argmax(scores))  # ties go to the smaller C (Cs in increasing order)
        best_c, best_acc = float(Cs[k]), float(scores[k])
    svm = _fit_once(clips, labels, n_classes, best_c, seed)
    svm.cv_accuracy = best_acc
    return svm


def cross_validate(clips: Sequence[np.ndarray], labels: Sequence[int], folds: Sequence[int], n_classes: int,
                   Cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> dict[int, tuple[float, float]]:
    """Per test fold: (clip accuracy, C picked on the other folds)."""
    labels, folds = np.asarray(labels), np.asarray(folds)
    out = {}
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        svm = fit_svm([clips[i] for i in tr], labels[tr], folds[tr], n_classes, Cs, seed)
        acc = float((svm.predict_clips([clips[i] for i in te]) == labels[te]).mean())
        out[int(f)] = (acc, svm.C)
    return out


class LinearLabeler(nn.Module):
    """Waveform window ``(B, N)`` -> ``probs (B, K)``: softmax of the SVM's decision values on the
    time-averaged ``layer`` of a SoundNet (the network is cut after that layer)."""

    def __init__(self, config: SoundNetConfig, layer: str, mean: torch.Tensor, scale: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.net = SoundNet(config)
        names = config.layer_names()
        if layer not in names:
            raise ValueError(f"LinearLabeler layer: expected one of {', '.join(names)}, found {layer!r}")
        self.layer = layer
        self.register_buffer("mean", mean.float())
        self.register_buffer("scale", scale.float())
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.net.layer(audio, self.layer).mean(dim=2)  # (B, C)
        return torch.softmax(self.head((x - self.mean) / self.scale), dim=1)


def save_linear_labeler(path: str | Path, net: SoundNet, layer: str, svm: LinearSVM, labels: Sequence[str],
                        windows: Windows, source: str = "") -> Path:
    """Write the labeler file (atomic): the network's weights, the layer, standardisation and SVM."""
    if len(labels) != svm.weight.shape[0]:
        raise ValueError(f"save_linear_labeler: expected {svm.weight.shape[0]} labels, found {len(labels)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({
        "format": LINEAR_FORMAT, "version": LINEAR_VERSION, "network": net.config.to_dict(),
        "network_state": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "layer": layer,
        "mean": torch.from_numpy(svm.mean).float(), "scale": torch.from_numpy(svm.scale).float(),
        "weight": torch.from_numpy(svm.weight).float(), "bias": torch.from_numpy(svm.bias).float(),
        "labels": list(labels), "window_seconds": float(windows.seconds), "hop_seconds": float(windows.hop_seconds),
        "C": float(svm.C), "source": str(source)}, path)
    return path


def _read(path: Path) -> dict:
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != LINEAR_FORMAT:
        raise ValueError(f"{path}: expected a SoundNet linear labeler (format {LINEAR_FORMAT!r})")
    return data


def _claims(path: Path) -> bool:
    if path.suffix != ".pt" or not path.is_file():
        return False
    try:
        _read(path)
    except Exception:  # noqa: BLE001 - torch raises several types for foreign files
        return False
    return True


def _metadata(data: dict) -> ModelMetadata:
    config = SoundNetConfig.from_dict(data["network"])
    n = round(data["window_seconds"] * SAMPLE_RATE)
    return ModelMetadata(
        family="soundnet", task="labeler", labels=tuple(data["labels"]), sample_rate=SAMPLE_RATE,
        window_seconds=float(data["window_seconds"]), needs_frame=False, frontend={},
        inputs=(TensorSpec("audio", ("batch", n), "float32"),),
        outputs=(TensorSpec("probs", ("batch", len(data["labels"])), "float32"),),
        extra={"multi_label": False, "network": config.name, "layer": data["layer"], "svm_C": data["C"],
               "hop_seconds": float(data["hop_seconds"]), "source": data["source"]})


def load_linear_labeler(path: str | Path) -> ExportableModel:
    """The labeler file as an :class:`ExportableModel` (eval mode)."""
    path = Path(path)
    data = _read(path)
    config = SoundNetConfig.from_dict(data["network"])
    module = LinearLabeler(config, data["layer"], data["mean"], data["scale"], data["weight"], data["bias"])
    module.net.load_state_dict(data["network_state"])
    meta = _metadata(data)
    n = meta.inputs[0].shape[1]
    g = torch.Generator().manual_seed(0)
    example = {"audio": torch.randn(2, n, generator=g) * 0.05}
    return ExportableModel(module.eval(), example, {"audio": {0: "batch"}}, meta)


LINEAR_FILE = ModelFile(
    name="soundnet-linear",
    description="a SoundNet layer with a fitted linear SVM (apps.transfer --write-labeler FILE.pt)",
    claims=_claims,
    metadata=lambda p: _metadata(_read(Path(p))),
    load=load_linear_labeler,
)
