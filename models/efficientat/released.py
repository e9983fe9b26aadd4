"""The authors' released MN and DyMN checkpoints (``mn04_as_mAP_432.pt`` … ``mn40_as_ext_mAP_487.pt``,
``dymn04_as.pt`` … ``dymn20_as_mAP_493.pt``, GitHub release v0.0.1 of fschmid56/EfficientAT) as a
model file avlive opens directly: export, live.

A file is a flat state dict (MN: ``features.*``; DyMN: ``in_c.*``, ``layers.*``, ``out_c.*``; both
``classifier.{2,5}.*``); the network, its width and the number of classes follow from its tensor
shapes (the shape table of each known network is compared whole), so a renamed file still opens. What the weights cannot tell is the front end of the
``mn10_as_hop_N`` (hop N ms) and ``mn10_as_mels_N`` (N mel bands) variants: that is read from the
file name, and a renamed one of those gets the default front end (10 ms, 128 bands).

The module is waveform in, sigmoid probabilities out (527 AudioSet classes), front end inside, in
eval mode; the same for ONNX export, the torch runner and TensorRT. Live window: 2 s (see
:data:`WINDOW_SECONDS`), hop 1 s.
"""
from __future__ import annotations

import dataclasses
import os
import re
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from models.core.atomic import sha256_file
from models.core.family import ExportableModel, ModelFile
from models.core.metadata import ModelMetadata, TensorSpec
from models.efficientat.frontend import LogMel, MelConfig
from models.datasets.formats.audioset import audioset_display_names as audioset_labels
from models.efficientat.dymn import DYMN_VARIANTS, DyMN, DyMNConfig
from models.efficientat.network import VARIANTS, MNConfig, MobileNet

__all__ = ["WINDOW_SECONDS", "HOP_SECONDS", "CANDIDATES", "EfficientATFileError", "MNWaveform", "build_network",
           "read_mn", "mn_metadata",
           "load_mn", "metadata_for", "MN_FILE"]

#: The live window. The authors train and evaluate on 10 s clips, but the head averages the
#: feature map over time, so any window of >= 32 frames (0.32 s) yields scores. 2 s holds most
#: AudioSet events whole, gives the net 200 frames (7 columns after its ×32 downsampling), and
#: with a 1 s hop shows every second twice; it costs a fifth of a 10 s clip per hop.
WINDOW_SECONDS = 2.0
#: How often the live pipeline runs it (``extra["hop_seconds"]``).
HOP_SECONDS = 1.0

_STEM = "features.0.0.weight"
_DYMN_STEM = "in_c.0.weight"
_HEAD = "classifier.5.bias"

#: Every network a file may hold: name -> config (the DyMN ``replace_se`` files have dynamic blocks
#: only where MN has squeeze-excitation).
CANDIDATES: dict[str, MNConfig | DyMNConfig] = {
    **VARIANTS, **DYMN_VARIANTS,
    **{f"{name}_replace_se": dataclasses.replace(c, dynamic="replace_se") for name, c in DYMN_VARIANTS.items()},
}


def build_network(config: MNConfig | DyMNConfig) -> MobileNet | DyMN:
    """The (untrained) network of ``config``."""
    return DyMN(config) if isinstance(config, DyMNConfig) else MobileNet(config)


class EfficientATFileError(ValueError):
    """A file that is not an EfficientAT MN checkpoint avlive can open (one line: expected, found;
    the callers name the file)."""


@lru_cache(maxsize=None)
def _shape_table(config: MNConfig | DyMNConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a network's state dict (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        net = build_network(config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` as it was at (``mtime_ns``, ``size``): claims, metadata and load
    read the file once."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # not a zip archive (pre-1.6 torch.save): no mmap, read it whole
        data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in data.items()):
        found = type(data).__name__ if not isinstance(data, dict) else f"a dict with keys {list(data)[:4]}"
        raise EfficientATFileError(f"expected a flat state dict of tensors (EfficientAT MN: features.*, "
                                   f"classifier.5.*), found {found}")
    return data


def _read(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors (memory-mapped when the file allows; read once per version of the file)."""
    st = path.stat()
    return _read_cached(os.fspath(path), st.st_mtime_ns, st.st_size)


def _identify(state: dict[str, torch.Tensor]) -> MNConfig | DyMNConfig:
    """The MN or DyMN config whose state-dict keys and shapes are exactly the file's."""
    dymn = _DYMN_STEM in state
    kind = "DyMN" if dymn else "MN"
    if _HEAD not in state:
        head = "classifier.1.* (the fully-convolutional head)" if "classifier.1.weight" in state else \
            f"no {_HEAD}"
        raise EfficientATFileError(f"expected an EfficientAT {kind} checkpoint with the MLP head ({_HEAD}), "
                                   f"found {head}")
    found = {k: tuple(v.shape) for k, v in state.items()}
    classes = found[_HEAD][0]
    candidates = {n: c for n, c in CANDIDATES.items() if isinstance(c, DyMNConfig) == dymn}
    closest: tuple[int, str] | None = None
    for name, base in candidates.items():
        config = dataclasses.replace(base, num_classes=classes)
        expected = _shape_table(config)
        if expected == found:
            return config
        wrong = [k for k in expected if found.get(k) != expected[k]] + [k for k in found if k not in expected]
        first = wrong[0]
        note = (f"{name}: {first} expected {expected.get(first, 'absent')}, "
                f"found {found.get(first, 'absent')} (keys differing: {len(wrong)})")
        if closest is None or len(wrong) < closest[0]:
            closest = (len(wrong), note)
    raise EfficientATFileError(f"expected the keys and shapes of an EfficientAT {kind} "
                               f"({', '.join(candidates)}), found {len(found)} tensors matching none; "
                               f"closest {closest[1]}")


def _frontend_for(path: Path) -> MelConfig:
    """The front end: the authors' default, with the hop (ms) or band count a variant's name states."""
    config = MelConfig()
    hop = re.search(r"_hop_(\d+)", path.name)
    mels = re.search(r"_mels_(\d+)", path.name)
    if hop:
        config = dataclasses.replace(config, hop_length=int(hop.group(1)) * config.sample_rate // 1000)
    if mels:
        config = dataclasses.replace(config, n_mels=int(mels.group(1)))
    return config


def read_mn(path: str | os.PathLike) -> tuple[MNConfig | DyMNConfig, MelConfig, dict[str, torch.Tensor]]:
    """The network config, front end and tensors of an MN or DyMN checkpoint.

    Raises:
        FileNotFoundError: no such file.
        EfficientATFileError: (a ``ValueError``) not an MN or DyMN checkpoint with the MLP head; the message
            says what was expected and what was found.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    state = _read(path)
    return _identify(state), _frontend_for(path), state


def claims(path: Path) -> bool:
    """Whether ``path`` is a ``.pt`` flat state dict with an MN's or DyMN's first and last conv
    (a file with another head is claimed too, so that loading it says why it is refused)."""
    if path.suffix != ".pt" or not path.is_file():
        return False
    try:
        state = _read(path)
    except Exception:  # noqa: BLE001 - torch raises several types for foreign files
        return False
    return (_STEM in state and "features.16.0.weight" in state) or (_DYMN_STEM in state and "out_c.0.weight" in state)


class MNWaveform(nn.Module):
    """Front end + network + sigmoid: the exported module.

    Shape: ``(B, N)`` float32 (or float64) waveform at 32 kHz, ``N >= 514`` → ``(B, classes)``
    probabilities in the input's dtype.
    """

    def __init__(self, net: MobileNet | DyMN, frontend: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.frontend = LogMel(frontend)
        self.net = net

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.frontend(audio)))  # (B, 1, F, T) -> (B, classes)


def metadata_for(path: Path, config: MNConfig | DyMNConfig, frontend: MelConfig) -> ModelMetadata:
    """The metadata of the waveform-in export of ``config`` with ``frontend``, weights from ``path``."""
    classes = config.num_classes
    labels = audioset_labels() if classes == 527 else tuple(f"class {i}" for i in range(classes))
    samples = round(WINDOW_SECONDS * frontend.sample_rate)
    name = next((n for n, c in CANDIDATES.items() if c == dataclasses.replace(config, num_classes=527)),
                f"width {config.width:g}")
    return ModelMetadata(
        family="efficientat", task="labeler", labels=labels, sample_rate=frontend.sample_rate,
        window_seconds=WINDOW_SECONDS, needs_frame=False, frontend=frontend.to_dict(),
        checkpoint_sha256=sha256_file(path),
        inputs=(TensorSpec("audio", ("batch", samples), "float32"),),
        outputs=(TensorSpec("probs", ("batch", classes), "float32"),),
        extra={"multi_label": True, "hop_seconds": HOP_SECONDS, "variant": name, "width": config.width,
               "network": "dymn" if isinstance(config, DyMNConfig) else "mn",
               "source_file": path.name},
    )


def mn_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The metadata of an MN file's waveform-in export (builds no network)."""
    config, frontend, _ = read_mn(path)
    return metadata_for(Path(path), config, frontend)


def load_mn(path: str | os.PathLike) -> ExportableModel:
    """The network with the file's weights (loaded strictly), wrapped waveform in, probabilities out."""
    config, frontend, state = read_mn(path)
    net = build_network(config)
    net.load_state_dict(state, strict=True)
    module = MNWaveform(net, frontend).eval()
    samples = round(WINDOW_SECONDS * frontend.sample_rate)
    example = {"audio": torch.randn(2, samples, generator=torch.Generator().manual_seed(0)) * 0.05}
    return ExportableModel(module, example, {"audio": {0: "batch"}}, metadata_for(Path(path), config, frontend))


MN_FILE = ModelFile(
    name="efficientat-mn",
    description="an EfficientAT MobileNet AudioSet checkpoint (mn04_as … mn40_as, dymn04_as … dymn20_as .pt, flat "
                "state dict; network and width from its shapes)",
    claims=claims,
    metadata=mn_metadata,
    load=load_mn,
)
