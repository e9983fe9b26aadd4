"""The authors' PANNs ``.pth`` checkpoints as model files avlive opens directly (live, export).

Kinds (``models.families.MODEL_FILES``):

=============================  ================================================================
kind                           opens
=============================  ================================================================
``panns``                      any ``.pth`` holding a PANNs Cnn14 / Cnn14_16k / Cnn10 state dict;
                               the network from the keys, the head from the keys or the name
                               (:func:`models.panns.checkpoint.head_from_name`); an ambiguous
                               file is refused with the choices
``panns-cnn14``                the same file read as a Cnn14 tagger (clip head), whatever its name
``panns-cnn14-decision-max``   ... as Cnn14_DecisionLevelMax (framewise)
``panns-cnn14-decision-att``   ... as Cnn14_DecisionLevelAtt (framewise; its keys say so anyway)
``panns-cnn10``                ... as Cnn10
=============================  ================================================================

Only ``panns`` claims files; the others are chosen by name (``python -m models.export FILE.pth
--family panns-cnn14``). The module is waveform in (mono float32 at the model's rate, 32 kHz
for Cnn14, no scaling; the export takes :data:`LIVE_WINDOW_SECONDS`), probabilities out, the
front end inside: the same for ONNX export,
the torch runner and TensorRT. Taggers return ``probs (B, 527)`` and ``embedding (B, C)``;
decision-level models ``probs (B, 527)`` (the clip) and ``segment_probs (B, T', 527)``, one
row per 32 STFT frames (0.32 s at 32 kHz), which the live labeler turns into frame scores
(:mod:`models.panns.live`).
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from models.core.atomic import sha256_file
from models.core.family import ExportableModel, ModelFile
from models.core.metadata import ModelMetadata, TensorSpec
from models.datasets.formats.audioset import audioset_display_names as audioset_labels
from models.panns.checkpoint import PANNS_SUFFIX, config_from_state, head_from_name, looks_like_panns, read_state_dict
from models.panns.network import PannsConfig, PannsNet

__all__ = ["LIVE_HOP_SECONDS", "LIVE_WINDOW_SECONDS", "MODEL_FILES", "panns_metadata", "load_panns", "model_file"]

#: The audio window a live PANNs model is given every hop. The networks take any length of at
#: least ``PannsConfig.min_samples`` (0.31 s for Cnn14; they were trained on 10 s clips); 2 s
#: holds six 0.32 s segments and keeps a hop's inference on 2 CPU threads well under a second.
LIVE_WINDOW_SECONDS = 2.0
#: The hop a PANNs model asks the pipeline for (``extra["hop_seconds"]``; ``avlive --hop``
#: overrides it): windows overlap by half, and a decision-level model adds about three new
#: 0.32 s segments per hop.
LIVE_HOP_SECONDS = 1.0


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _checkpoint_sha256(path: Path) -> str:
    """The file's SHA-256, hashed once per path, size and modification time (a Cnn14 file is
    327 MB; avlive asks for its metadata, then loads it)."""
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _config(path: Path, head: str | None, trunk: str | None = None) -> PannsConfig:
    state = read_state_dict(path)
    config = config_from_state(state, head if head is not None else head_from_name(path.name), path.name)
    if trunk is not None and not config.arch.startswith(trunk):
        raise ValueError(f"expected a {trunk} state dict, found {config.arch} "
                         f"({len(config.channels)} conv blocks)")
    return config


def _labels(config: PannsConfig, path: Path) -> tuple[str, ...]:
    labels = audioset_labels()
    if config.classes != len(labels):
        raise ValueError(f"expected the 527 AudioSet classes, found a head of {config.classes} "
                         f"(a fine-tuned model; its labels are not in the file)")
    return labels


def panns_metadata(path: Path, head: str | None = None, trunk: str | None = None) -> ModelMetadata:
    """The metadata of a PANNs file's waveform-in export.

    Args:
        path: the ``.pth`` file.
        head: force a head (``"clip"``, ``"decision-max"``, ``"decision-att"``); None: from the
            keys and the file name.
        trunk: ``"Cnn14"`` or ``"Cnn10"``: refuse another network; None: any.

    Raises:
        ValueError: not a PANNs file, or an ambiguous or contradicting head (one line).
    """
    c = _config(path, head, trunk)
    labels = _labels(c, path)
    framewise = c.head != "clip"
    samples = int(round(LIVE_WINDOW_SECONDS * c.sample_rate))
    second = (TensorSpec("segment_probs", ("batch", c.segments(samples), len(labels)), "float32") if framewise
              else TensorSpec("embedding", ("batch", c.embedding_size), "float32"))
    extra = {"multi_label": True, "hop_seconds": LIVE_HOP_SECONDS, "arch": c.arch, "head": c.head, "source": "PANNs (Kong et al. 2020), "
             "qiuqiangkong/audioset_tagging_cnn; weights: Zenodo record 3987831"}
    if framewise:
        extra["segments"] = {"output": "segment_probs", "ratio": c.ratio, "hop_length": c.hop_length,
                             "seconds": c.ratio * c.hop_length / c.sample_rate}
    return ModelMetadata(
        family="panns", task="labeler", labels=labels, sample_rate=c.sample_rate,
        window_seconds=LIVE_WINDOW_SECONDS, needs_frame=False,
        frontend={"n_fft": c.n_fft, "win_length": c.n_fft, "hop_length": c.hop_length, "n_mels": c.n_mels,
                  "fmin": c.fmin, "fmax": c.fmax, "window": "hann (periodic)", "center": True,
                  "pad_mode": "reflect", "power": 2.0, "log": "10*log10(max(mel, 1e-10))",
                  "kernels": "DFT and melW from the checkpoint", "norm": "bn0 over mel bins"},
        checkpoint_sha256=_checkpoint_sha256(path),
        inputs=(TensorSpec("audio", ("batch", samples), "float32"),),
        outputs=(TensorSpec("probs", ("batch", len(labels)), "float32"), second),
        extra=extra,
    )


def load_panns(path: Path, head: str | None = None, trunk: str | None = None) -> ExportableModel:
    """The network with the file's weights (strict), in eval mode, with its metadata; ``head``
    and ``trunk`` as :func:`panns_metadata` takes them."""
    path = Path(path)
    metadata = panns_metadata(path, head, trunk)
    config = _config(path, head, trunk)
    model = PannsNet(config)
    model.load_panns_state_dict(read_state_dict(path))
    model.eval()
    samples = int(round(metadata.window_seconds * metadata.sample_rate))
    example = {"audio": torch.randn(2, samples, generator=torch.Generator().manual_seed(0)) * 0.05}
    # the window is fixed in the export: the trunk's chain of floored poolings is more than the
    # dynamo exporter's symbolic shapes solve (torch 2.13); PyTorch itself takes any length
    return ExportableModel(model, example, {"audio": {0: "batch"}}, metadata)


def _claims(path: Path) -> bool:
    if path.suffix != PANNS_SUFFIX or not path.is_file():
        return False
    try:
        return looks_like_panns(read_state_dict(path))
    except (ValueError, OSError):
        return False


def model_file(name: str, head: str | None, description: str, trunk: str | None = None) -> ModelFile:
    """A PANNs file kind; ``head`` None: the claiming kind that infers it (the others claim
    nothing: they are asked for by name)."""
    return ModelFile(
        name=name, description=description,
        claims=_claims if head is None else (lambda p: False),
        metadata=lambda p: panns_metadata(Path(p), head, trunk),
        load=lambda p: load_panns(Path(p), head, trunk),
    )


MODEL_FILES = (
    model_file("panns", None, "a PANNs AudioSet .pth (Cnn14, Cnn14_16k, Cnn10, Cnn14_DecisionLevelMax/Att; "
                              "head from the keys or the file name)"),
    model_file("panns-cnn14", "clip", "a PANNs .pth read as a Cnn14 (or Cnn14_16k) tagger (--family; any name)",
               "Cnn14"),
    model_file("panns-cnn14-decision-max", "decision-max",
               "a PANNs .pth read as Cnn14_DecisionLevelMax, framewise (--family; any name)", "Cnn14"),
    model_file("panns-cnn14-decision-att", "decision-att",
               "a PANNs .pth read as Cnn14_DecisionLevelAtt, framewise (--family; any name)", "Cnn14"),
    model_file("panns-cnn10", "clip", "a PANNs .pth read as Cnn10 (--family; any name)", "Cnn10"),
)
