"""Training recipes for Slow-Fast Auditory Streams, as the reference trains them.

Three recipes (``python -m models.train --recipe NAME --data FOLDER``), each faithful to the
authors' code (ekazakos/auditory-slow-fast; facts in ``shared/REFERENCE.md`` 1.1-1.8) and
single-label:

======================  =======================================================================
recipe                  what
======================  =======================================================================
``slowfast-vggsound``   VGG-Sound from scratch: 16 kHz, 5.119 s clips (81 903 samples, 512
                        frames), SGD lr 0.01 x [1, 0.1, 0.01] at epochs [0, 30, 40], 50 epochs,
                        2 test views; top-1/top-5, mAP, AUC, d' (primary ``top1``).
``slowfast-epic100``    EPIC-KITCHENS-100 verb + noun, fine-tuned from a VGG-Sound ``.pyth``
                        (``init_checkpoint=PATH``) with frozen BN statistics: 24 kHz, 1.999 s
                        clips (47 975 samples, 400 frames) inside each narration, loss
                        ``0.5 (CE_verb + CE_noun)``, lr 0.001 x [1, 0.1, 0.01] at [0, 20, 25],
                        30 epochs, 10 test views; verb/noun/action top-1/top-5 (primary
                        ``action_top1``).
``slowfast-epicsounds`` EPIC-SOUNDS (44 classes), same front end, clip and schedule as EPIC-100,
                        5 test views; top-1/top-5, mean class accuracy, mAP, AUC (primary
                        ``top1``).
======================  =======================================================================

**Data (``--data``).** A missing file raises ``FileNotFoundError`` naming it and the layout
expected:

* VGG-Sound: ``train.csv`` and ``test.csv`` (``<ytid>_<start:06d>.mp4,label``, no header),
  optional ``stat.csv`` (class names; class id = position in the *sorted* names, as the
  VGG-Sound authors' loader numbers them), and the clips as ``<ytid>_<start:06d>.wav`` or
  ``.mp4`` in ``clip_dir`` (default: the first of ``audio/``, ``video/``, ``wav/`` or the folder
  itself that holds the first training clip). ``.wav`` is preferred, as the reference
  substitutes it. Without ``stat.csv`` the names are ``models/labels/vggsound.txt`` (309) when
  ``num_classes=309``, else the sorted labels of both lists. Clips are decoded once, through
  the crash-contained decode pool (:meth:`models.datasets.clips.ClipIndex.decode`: a clip that
  is missing or fails to decode is skipped, counted and reported, never substituted), to 16 kHz
  mono, kept in memory up to ``max_clip_seconds`` each (10 s is 640 kB a clip: fine for
  subsets and the world, but the full 183 k-clip training list would need about 117 GB; a
  streamed or disk-cached loader is not written yet).
* EPIC-100: ``EPIC_100_train.csv``, ``EPIC_100_validation.csv``, ``EPIC_100_verb_classes.csv``,
  ``EPIC_100_noun_classes.csv`` and the one audio HDF5 (``EPIC-KITCHENS-100_audio.hdf5``, or
  the folder's only ``*.hdf5``/``*.h5``; one 24 kHz dataset per video id). A narration covers
  samples ``round(start_timestamp * 24000)`` to ``round(stop_timestamp * 24000)``; segments
  whose video is missing from the HDF5 are skipped and reported
  (:class:`models.datasets.clips.EpicSegments`).
* EPIC-SOUNDS: ``EPIC_Sounds_train.csv``, ``EPIC_Sounds_validation.csv`` (``start_sample`` /
  ``stop_sample`` at 24 kHz, ``class_id`` 0-43) and the same HDF5.

**Class counts are config fields** (``num_classes``; ``num_verbs``/``num_nouns``), because an
exported or reloaded run rebuilds the network without reading the data. They must match the
data: VGG-Sound's class list, EPIC-100's verb/noun class csvs (the head sizes equal the rows of
the csvs; the reference's 97/300 by default -- data written from the synthetic world lists
fewer, pass ``num_verbs=... num_nouns=...``); EPIC-SOUNDS ids must lie below ``num_classes``.

**Clips** (``get_start_end_idx`` / ``_extract_sound_feature`` of the reference): with
``clip = CLIP_SECS * sr`` (81 904 / 47 976 samples) and ``delta = max(n - clip, 0)`` for a
file/segment of ``n`` samples, training and validation take one clip starting at
``int(uniform(0, delta))`` (drawn from ``(seed, epoch, index)``), test view ``k`` of ``V``
starts at ``int(linspace(0, delta, V)[k])``; the clip is the ``clip - 1`` samples from there
(81 903 / 47 975, giving 512 / 400 frames). A file or segment shorter than ``clip`` is used
whole and its log-mel right-padded to the clip's frames by repeating the last frame.
Training adds SpecAugment (:mod:`models.audio.specaugment`). The validation set the trainer scores
after each epoch is the **test-time multi-view** set (``views`` clips per item, softmax scores
averaged per item), so every evaluation reports the reference's test protocol and ``views``,
the number of clips per item the network actually saw.

**Optimisation.** SGD, momentum 0.9, Nesterov, weight decay 1e-4 on every parameter except
those of BatchNorm layers (0); a step schedule ``lr * lr_factors[i]`` from epoch
``lr_steps[i]`` (:meth:`SlowFastRecipe.lr_lambda`), no warm-up. The reference's precise-BN
pass for VGG-Sound (re-estimating BN statistics on 200 batches before each evaluation) is not
done.

**Fine-tuning** (``init_checkpoint=PATH``, any recipe): a reference ``.pyth`` file
(:func:`models.slowfast.pyth.read_pyth`) whose body must match the network (same width
and blocks); the head is re-initialised, whatever its size. The file is read when the trainer
prepares training (:meth:`SlowFastRecipe.build_optimizer`, which only the trainer calls), so a
trained run can be rebuilt for export or evaluation without it; a resumed run takes its weights
from its own checkpoint. EPIC recipes freeze BN statistics (``freeze_bn``): after
``model.train()``, every BatchNorm except ``s1.pathway0_stem.bn``, ``s1.pathway1_stem.bn`` and
``s1_fuse.bn`` is put back in eval mode (the reference's ``freeze_fn('bn_statistics')``); their
affine parameters still train.

**Outputs and export.** Metadata: family ``slowfast``, labels in output order (EPIC-100: the
verb scores then the noun scores, labels ``verb:<key>`` / ``noun:<key>``, the convention of
:func:`models.slowfast.pyth.load_labels` and :class:`models.slowfast.SlowFastLabeler`),
sample rate, window (the clip), the front end, inputs and outputs. The export module takes the
**waveform** (``(batch, clip samples)``) and returns eval-mode probabilities, with the front end
inside the graph: the 2048-point STFT exports as an ONNX ``STFT`` op (opset 18) and costs far
less than the network, so a log-mel input was not needed. Two heads are concatenated (verb
softmax then noun softmax).

Example::

    python -m models.train --recipe slowfast-vggsound --data /data/vggsound --out runs/sf-vgg
    python -m models.train --recipe slowfast-epic100 --data /data/epic --out runs/sf-epic \\
        init_checkpoint=runs/SLOWFAST_VGG.pyth
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from models.datasets.clips import ClipIndex, ClipSpec as MediaClip, EpicSegments
from models.datasets.formats import (epic_class_keys, read_epic100_annotations, read_epic100_classes,
                               read_epic_sounds, read_vggsound_split_csv, read_vggsound_stat, vggsound_class_order)
from models.audio.frontend import FrontEnd
from models.core.metadata import ModelMetadata, TensorSpec
from models.evaluation.metrics import d_prime, mean_average_precision, per_class_accuracy, roc_auc_per_class, topk_accuracy
from models.slowfast.network import (EPIC_CLIP, VGGSOUND_CLIP, ClipSpec, SlowFast, SlowFastConfig, pad_frames_edge,
                       pad_or_crop_frames)
from models.audio.specaugment import REFERENCE_SPECAUGMENT, SpecAugmentConfig, spec_augment
from models.core.train_config import TrainConfig
from models.core.recipe import Recipe

logger = logging.getLogger(__name__)

__all__ = [
    "SlowFastTrainConfig", "VggSoundConfig", "Epic100Config", "EpicSoundsConfig",
    "SlowFastRecipe", "VggSoundRecipe", "Epic100Recipe", "EpicSoundsRecipe",
    "WaveSource", "DecodedWaves", "EpicWaves", "SlowFastClips", "SlowFastWaveform",
    "clip_start", "clip_logmel", "step_lr_factor", "set_bn_frozen", "UNFROZEN_BN",
    "EPIC_AUDIO_HDF5", "VGGSOUND_CLIP_DIRS",
]

#: BatchNorm layers that keep updating their statistics when BN is frozen (the reference's
#: ``freeze_fn('bn_statistics')`` exempts the stems and the first lateral).
UNFROZEN_BN = ("s1.pathway0_stem.bn", "s1.pathway1_stem.bn", "s1_fuse.bn")

#: The audio HDF5 name the EPIC recipes look for first.
EPIC_AUDIO_HDF5 = "EPIC-KITCHENS-100_audio.hdf5"

#: Sub-folders of a VGG-Sound ``--data`` folder searched for clips, in order ("" = the folder).
VGGSOUND_CLIP_DIRS = ("audio", "video", "wav", "")


# ============================================================================ configs


@dataclass(frozen=True)
class SlowFastTrainConfig(TrainConfig):
    """Fields every Slow-Fast recipe has (defaults: the VGG-Sound reference config).

    Network overrides (``width``, ``blocks``, ``dropout``, ``head_pooling``) exist so tests and
    small machines can train a tiny network; the reference is width 64, blocks (3, 4, 6, 3).
    The learning rate follows ``lr_steps``/``lr_factors``; ``TrainConfig``'s warm-up and cosine
    fields do not apply (``warmup_steps`` must stay 0, ``lr_min_factor`` is ignored).
    """

    epochs: int = 50
    batch_size: int = 32  # the reference's total over 8 GPUs
    lr: float = 0.01
    weight_decay: float = 1e-4  # on every parameter except BatchNorm's (0)
    momentum: float = 0.9
    nesterov: bool = True
    lr_steps: tuple[int, ...] = (0, 30, 40)  # epochs where each factor starts
    lr_factors: tuple[float, ...] = (1.0, 0.1, 0.01)
    views: int = 2  # test-time clips per item (TEST.NUM_ENSEMBLE_VIEWS)
    spec_augment: bool = True  # SpecAugment on training clips
    width: int = 64  # Slow width (Fast: width // 8); a multiple of 8
    blocks: tuple[int, ...] | None = None  # blocks in res2..res5; None = ResNet-50's (3, 4, 6, 3)
    dropout: float = 0.5
    head_pooling: str = "global"  # "global" or "reference" (identical at the trained length)
    init_checkpoint: str = ""  # a reference .pyth to fine-tune from (head re-initialised)
    freeze_bn: bool = False  # freeze BN statistics except the stems' and s1_fuse's

    def __post_init__(self) -> None:
        for name in ("lr_steps", "lr_factors", "blocks"):
            value = getattr(self, name)
            if isinstance(value, list):  # config_from_dict keeps lists for Optional[tuple] fields
                object.__setattr__(self, name, tuple(value))

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        super().validate()
        steps, factors = self.lr_steps, self.lr_factors
        if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"lr_steps: expected increasing epochs starting at 0, found {steps}")
        if len(factors) != len(steps) or any(f <= 0 for f in factors):
            raise ValueError(f"lr_factors: expected {len(steps)} positive factors (one per lr_steps entry), "
                             f"found {factors}")
        if self.warmup_steps:
            raise ValueError(f"warmup_steps: the Slow-Fast recipes follow the reference's step schedule without "
                             f"warm-up (lr_steps, lr_factors); expected 0, found {self.warmup_steps}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: expected a value in [0, 1), found {self.momentum}")
        if self.views < 1:
            raise ValueError(f"views: expected >= 1, found {self.views}")
        if self.width < 8 or self.width % 8:
            raise ValueError(f"width: expected a positive multiple of 8 (Fast has width // 8 channels), "
                             f"found {self.width}")
        if self.blocks is not None and (len(self.blocks) != 4 or min(self.blocks) < 1):
            raise ValueError(f"blocks: expected four positive ints (res2..res5) or None, found {self.blocks}")
        if self.head_pooling not in ("global", "reference"):
            raise ValueError(f"head_pooling: expected 'global' or 'reference', found {self.head_pooling!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: expected a value in [0, 1), found {self.dropout}")


@dataclass(frozen=True)
class VggSoundConfig(SlowFastTrainConfig):
    """``slowfast-vggsound``: ``configs/VGG-Sound/SLOWFAST_R50.yaml``."""

    num_classes: int = 309  # must match the data's class list (stat.csv, or the lists' labels)
    clip_dir: str = ""  # clip folder (relative to --data, or absolute); "" = search VGGSOUND_CLIP_DIRS
    max_clip_seconds: float = 10.0  # audio kept per clip (VGG-Sound clips are 10 s)
    decode_workers: int = 2  # decoder processes (crash-contained)
    decode_timeout_s: float = 60.0  # per clip

    def validate(self) -> None:
        super().validate()
        if self.num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, found {self.num_classes}")
        if self.max_clip_seconds <= 0 or self.decode_timeout_s <= 0 or self.decode_workers < 1:
            raise ValueError(f"max_clip_seconds, decode_timeout_s: expected > 0 and decode_workers >= 1, found "
                             f"{self.max_clip_seconds}, {self.decode_timeout_s}, {self.decode_workers}")


@dataclass(frozen=True)
class _EpicConfig(SlowFastTrainConfig):
    """Fields of both EPIC recipes: ``configs/EPIC-KITCHENS/SLOWFAST_R50.yaml``."""

    epochs: int = 30
    lr: float = 0.001
    lr_steps: tuple[int, ...] = (0, 20, 25)
    freeze_bn: bool = True
    audio_hdf5: str = ""  # relative to --data or absolute; "" = EPIC_AUDIO_HDF5, else the only *.hdf5/*.h5


@dataclass(frozen=True)
class Epic100Config(_EpicConfig):
    """``slowfast-epic100``: verb + noun heads; 10 test views (the default NUM_ENSEMBLE_VIEWS)."""

    views: int = 10
    num_verbs: int = 97  # rows of EPIC_100_verb_classes.csv
    num_nouns: int = 300  # rows of EPIC_100_noun_classes.csv

    def validate(self) -> None:
        super().validate()
        if self.num_verbs < 1 or self.num_nouns < 1:
            raise ValueError(f"num_verbs, num_nouns: expected >= 1, found {self.num_verbs}, {self.num_nouns}")


@dataclass(frozen=True)
class EpicSoundsConfig(_EpicConfig):
    """``slowfast-epicsounds``: 44 classes, 5 test views.

    The schedule is EPIC-100's (lr 0.001 x [1, 0.1, 0.01] at epochs [0, 20, 25], 30 epochs,
    batch 32). The EPIC-SOUNDS config's own schedule was not checked against its yaml
    (``shared/REFERENCE.md`` 1.8 reports batch 128 and a single x0.1 step at epoch 25,
    unverified here); set ``batch_size``/``lr_steps``/``lr_factors`` to change it.
    """

    views: int = 5
    num_classes: int = 44  # class ids in the csvs must be below this

    def validate(self) -> None:
        super().validate()
        if self.num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, found {self.num_classes}")


# ============================================================================ clips


def clip_start(n_samples: int, clip: ClipSpec, *, rng: np.random.Generator | None = None, view: int = 0,
               views: int = 1) -> int:
    """First sample of a clip in a file/segment of ``n_samples``, as the reference picks it.

    ``delta = max(n - (clip_samples + 1), 0)`` (the reference's clip size is ``CLIP_SECS * sr``,
    one more than the samples it slices); with ``rng`` the start is ``int(rng.uniform(0, delta))``
    (training and validation), else ``int(linspace(0, delta, views)[view])`` (test view ``view``).

    Args:
        n_samples: Length of the file or segment.
        clip: The clip definition.
        rng: Random source for a training clip; None for a test view.
        view: Test view index, ``0 <= view < views``.
        views: Test views per item.

    Returns:
        The start offset (0 for input shorter than a clip, which is used whole).
    """
    delta = max(int(n_samples) - (clip.clip_samples + 1), 0)
    if rng is not None:
        return int(rng.uniform(0.0, delta))
    if not 0 <= view < views:
        raise ValueError(f"clip_start: expected 0 <= view < views, found view {view}, views {views}")
    return int(np.linspace(0.0, delta, views)[view])


def clip_logmel(wave: np.ndarray, clip: ClipSpec, frontend: FrontEnd) -> torch.Tensor:
    """Log-mel ``(1, num_frames, F)`` of one clip's samples (``clip_samples`` of them, or a whole
    shorter file/segment, edge-padded to ``num_frames`` as the reference pads it)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"clip_logmel: expected (n,) samples with n >= 1, found shape {wave.shape}")
    with torch.no_grad():
        feats = frontend(torch.from_numpy(np.ascontiguousarray(wave[: clip.clip_samples]))[None])  # (1, T, F)
    return pad_frames_edge(feats, clip.num_frames)


class WaveSource:
    """Where a clip dataset's audio comes from: item ``i`` is a file or segment of
    ``num_samples(i)`` samples whose span ``[start, stop)`` :meth:`read` returns."""

    def __len__(self) -> int:
        raise NotImplementedError

    def num_samples(self, index: int) -> int:
        raise NotImplementedError

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError


class DecodedWaves(WaveSource):
    """Decoded files in memory: row ``i`` of ``audio`` holds ``lengths[i]`` valid samples.

    Args:
        audio: ``(N, samples)`` float32 (zero-padded rows).
        lengths: ``(N,)`` samples decoded per file (capped at the row length).
    """

    def __init__(self, audio: np.ndarray, lengths: np.ndarray):
        self.audio = audio
        self.lengths = np.minimum(np.asarray(lengths, dtype=np.int64), audio.shape[1])

    def __len__(self) -> int:
        return len(self.audio)

    def num_samples(self, index: int) -> int:
        return int(self.lengths[index])

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        return self.audio[index, start:min(stop, self.num_samples(index))]


class EpicWaves(WaveSource):
    """EPIC segments read from the audio HDF5 on demand (whole-segment spans of an
    :class:`~models.datasets.clips.EpicSegments`, which did the skipping and reporting)."""

    def __init__(self, segments: EpicSegments):
        self.segments = segments

    def __len__(self) -> int:
        return len(self.segments)

    def num_samples(self, index: int) -> int:
        start, stop = self.segments.span(index)
        return stop - start

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        first, last = self.segments.span(index)
        seg = self.segments.segments[index]
        return self.segments.audio.samples(seg.video_id, first + start, min(first + stop, last))


class SlowFastClips(Dataset):
    """Log-mel clips of a :class:`WaveSource`, addressed by ``(epoch, index)`` or ``index``.

    Training (``views=0``): one clip per item at a random start drawn from
    ``(seed, epoch, index)``, with SpecAugment when ``augment`` is given; ``spec`` is
    ``(1, T, F)``. Test (``views=V >= 1``): ``V`` clips at the reference's evenly spaced starts;
    ``spec`` is ``(V, 1, T, F)``.

    Args:
        source: The audio.
        targets: Name -> ``(N,)`` int64 class ids (``target``, or ``verb`` and ``noun``).
        clip: Clip and front end.
        views: 0 for training clips, else test views per item.
        augment: SpecAugment settings for training clips, or None.
        seed: Seeds the clip starts and the augmentation.

    Items are dicts: ``spec`` float32, ``index`` int64 and each target.
    """

    def __init__(self, source: WaveSource, targets: dict[str, np.ndarray], clip: ClipSpec, *, views: int = 0,
                 augment: SpecAugmentConfig | None = None, seed: int = 0):
        if views < 0:
            raise ValueError(f"views: expected >= 0 (0 = training clips), found {views}")
        for name, values in targets.items():
            if len(values) != len(source):
                raise ValueError(f"target {name!r}: expected {len(source)} values, found {len(values)}")
        self.source = source
        self.targets = {k: np.asarray(v, dtype=np.int64) for k, v in targets.items()}
        self.clip = clip
        self.views = int(views)
        self.augment = augment
        self.seed = int(seed)
        self.frontend = FrontEnd(clip.frontend)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, address) -> dict:
        epoch, index = (int(address[0]), int(address[1])) if isinstance(address, tuple) else (0, int(address))
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} items")
        n = self.source.num_samples(index)
        size = self.clip.clip_samples
        if self.views == 0:
            rng = np.random.default_rng([self.seed, epoch, index])
            start = clip_start(n, self.clip, rng=rng)
            spec = clip_logmel(self.source.read(index, start, start + size), self.clip, self.frontend)
            if self.augment is not None:
                spec = spec_augment(spec, rng, self.augment)
        else:
            starts = [clip_start(n, self.clip, view=k, views=self.views) for k in range(self.views)]
            cache: dict[int, torch.Tensor] = {}  # short input: every view is the same clip
            specs = []
            for s in starts:
                if s not in cache:
                    cache[s] = clip_logmel(self.source.read(index, s, s + size), self.clip, self.frontend)
                specs.append(cache[s])
            spec = torch.stack(specs)  # (V, 1, T, F)
        item = {"spec": spec.float().contiguous(), "index": torch.tensor(index)}
        for name, values in self.targets.items():
            item[name] = torch.tensor(values[index])
        return item


# ============================================================================ helpers


def step_lr_factor(epoch: int, steps: Sequence[int], factors: Sequence[float]) -> float:
    """The factor of the last ``steps`` entry at or before ``epoch`` (PySlowFast's
    ``steps_with_relative_lrs``)."""
    factor = factors[0]
    for step, f in zip(steps, factors):
        if epoch >= step:
            factor = f
    return float(factor)


def _bn_name(name: str) -> str:
    return name[len("module."):] if name.startswith("module.") else name


def set_bn_frozen(model: nn.Module, unfrozen: Sequence[str] = UNFROZEN_BN) -> list[str]:
    """Put every BatchNorm layer except ``unfrozen`` in eval mode (statistics frozen).

    Works through a DistributedDataParallel wrapper (``module.`` prefix) and on SyncBatchNorm.

    Returns:
        The names of the layers frozen.
    """
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and _bn_name(name) not in unfrozen:
            module.eval()
            frozen.append(_bn_name(name))
    return frozen


def _resolve(root: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else root / path


def _need(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected --data to hold {layout}")
    return path


def _need_data(data: Path | None, recipe: str, layout: str) -> Path:
    if data is None:
        raise ValueError(f"recipe {recipe!r} needs --data: a folder holding {layout}")
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder; expected a folder holding {layout}")
    return data


def _unique_labels(names: Sequence[str]) -> tuple[str, ...]:
    """Labels made unique (a repeated name gets `` (k)`` with its index)."""
    seen: set[str] = set()
    out = []
    for k, name in enumerate(names):
        name = name or f"class_{k}"
        if name in seen:
            name = f"{name} ({k})"
        seen.add(name)
        out.append(name)
    return tuple(out)


class SlowFastWaveform(nn.Module):
    """Export/live wrapper: waveform ``(B, samples)`` -> eval-mode probabilities ``(B, K)``.

    The front end runs inside: log-mel, edge-padded to the trained frame count if shorter,
    brought to a multiple of 16 frames (:func:`models.slowfast.pad_or_crop_frames`), the network
    in eval mode. Two heads give the verb softmax followed by the noun softmax.
    """

    def __init__(self, model: SlowFast, clip: ClipSpec):
        super().__init__()
        self.model = model.eval()
        self.frontend = FrontEnd(clip.frontend)
        self.num_frames = clip.num_frames

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        feats = pad_frames_edge(self.frontend(audio), self.num_frames)  # (B, T, F)
        feats = pad_or_crop_frames(feats, self.model.frame_multiple)
        out = self.model(feats[:, None])
        return torch.cat(out, dim=1) if isinstance(out, tuple) else out


# ============================================================================ recipes


class SlowFastRecipe(Recipe):
    """What the three Slow-Fast recipes share; subclasses set the data, heads, loss and figures."""

    config_class: ClassVar[type] = SlowFastTrainConfig
    clip: ClassVar[ClipSpec] = VGGSOUND_CLIP
    dataset_name: ClassVar[str] = ""

    def __init__(self, config: Any):
        super().__init__(config)
        self.labels: tuple[str, ...] | None = None  # set by build_datasets

    # --- network ----------------------------------------------------------------------
    def heads(self) -> tuple[int, ...]:
        """Head sizes: ``(K,)`` (single-head recipes; EPIC-100 overrides with ``(verbs, nouns)``)."""
        return (self.config.num_classes,)

    def network_config(self) -> SlowFastConfig:
        """The :class:`SlowFastConfig` the config describes."""
        c = self.config
        return SlowFastConfig(num_classes=self.heads(), width=c.width, blocks=c.blocks, num_frames=self.clip.num_frames,
                              head_pooling=c.head_pooling, dropout=c.dropout)

    def build_model(self) -> nn.Module:
        """The network, freshly initialised (``init_checkpoint`` is loaded in :meth:`build_optimizer`)."""
        return SlowFast(self.network_config())

    def load_init_checkpoint(self, model: nn.Module) -> None:
        """Fill ``model`` from ``init_checkpoint`` (a ``.pyth``), head re-initialised; no-op without one.

        Raises:
            FileNotFoundError: the file does not exist.
            models.slowfast.pyth.CheckpointMismatch: its body does not fit the network
                (the message names the keys and the checkpoint's width and blocks).
        """
        path = self.config.init_checkpoint
        if not path:
            return
        from models.slowfast.pyth import load_state, read_pyth

        ckpt = read_pyth(path)
        report = load_state(model, ckpt.model_state, finetune=True)
        logger.info("initialised from %s: %d tensors loaded, head re-initialised (%s)", path, len(report.loaded),
                    ", ".join(report.reinitialised))

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Loads ``init_checkpoint`` into ``model``, then SGD (momentum, Nesterov) with weight
        decay on every parameter except BatchNorm weights and biases."""
        self.load_init_checkpoint(model)
        c = self.config
        bn, other = [], []
        for module in model.modules():
            params = [p for p in module.parameters(recurse=False) if p.requires_grad]
            (bn if isinstance(module, nn.modules.batchnorm._BatchNorm) else other).extend(params)
        groups = [{"params": other, "weight_decay": c.weight_decay}, {"params": bn, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0)

    def lr_lambda(self, steps_per_epoch: int, total_steps: int):
        """Step schedule: factor ``lr_factors[i]`` from epoch ``lr_steps[i]``, per step."""
        c = self.config
        per_epoch = max(1, steps_per_epoch)

        def factor(step: int) -> float:
            return step_lr_factor(step // per_epoch, c.lr_steps, c.lr_factors)

        return factor

    def set_train_mode(self, model: nn.Module) -> None:
        """``model.train()``, then (``freeze_bn``) BN statistics frozen except :data:`UNFROZEN_BN`."""
        model.train()
        if self.config.freeze_bn:
            set_bn_frozen(model)

    # --- data -------------------------------------------------------------------------
    def _clips(self, source: WaveSource, targets: dict[str, np.ndarray], train: bool) -> SlowFastClips:
        c = self.config
        if train:
            return SlowFastClips(source, targets, self.clip, views=0,
                                 augment=REFERENCE_SPECAUGMENT if c.spec_augment else None, seed=c.seed)
        return SlowFastClips(source, targets, self.clip, views=c.views, seed=c.seed)

    # --- evaluation -------------------------------------------------------------------
    def _predict(self, model: nn.Module, loader, target_names: Sequence[str]):
        """Multi-view scores: per head ``(N, K)`` probabilities averaged over views, the targets
        and the views the network saw per item."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        scores: list[list[torch.Tensor]] = []
        targets: dict[str, list[torch.Tensor]] = {name: [] for name in target_names}
        rows = items = 0
        views_seen: set[int] = set()
        try:
            with torch.no_grad():
                for batch in loader:
                    spec = batch["spec"]
                    if spec.dim() == 4:  # a training-style set: one view
                        spec = spec[:, None]
                    b, v = spec.shape[:2]
                    out = model(spec.reshape(b * v, *spec.shape[2:]).to(device))
                    outs = out if isinstance(out, tuple) else (out,)
                    rows += outs[0].shape[0]
                    items += b
                    views_seen.add(v)
                    if not scores:
                        scores = [[] for _ in outs]
                    for k, o in enumerate(outs):
                        scores[k].append(o.float().reshape(b, v, -1).mean(dim=1).cpu())
                    for name in target_names:
                        targets[name].append(batch[name])
        finally:
            if was_training:
                self.set_train_mode(model)
        if items == 0:
            raise ValueError("evaluate: the validation loader yielded no items")
        probs = [torch.cat(s).numpy() for s in scores]
        views = rows // items if rows % items == 0 else rows / items
        return probs, {k: torch.cat(v).numpy() for k, v in targets.items()}, views, sorted(views_seen)

    # --- metadata and export ----------------------------------------------------------
    def default_labels(self) -> tuple[str, ...]:
        """Labels when no data was read (e.g. metadata of a rebuilt run)."""
        return tuple(f"class_{k}" for k in range(sum(self.heads())))

    def metadata(self, model: nn.Module) -> ModelMetadata:
        labels = self.labels if self.labels is not None else self.default_labels()
        clip, c = self.clip, self.config
        net = self.network_config()
        return ModelMetadata(
            family="slowfast", task="labeler", labels=labels, sample_rate=clip.frontend.sample_rate,
            window_seconds=clip.seconds, needs_frame=False, frontend=clip.frontend.to_dict(),
            inputs=(TensorSpec("audio", ("batch", clip.clip_samples), "float32"),),
            outputs=(TensorSpec("probs", ("batch", len(labels)), "float32"),),
            extra={"multi_label": False, "dataset": self.dataset_name, "heads": list(net.num_classes),
                   "output_order": "verb softmax then noun softmax" if len(net.num_classes) == 2 else "softmax",
                   "clip_samples": clip.clip_samples, "num_frames": clip.num_frames, "test_views": c.views,
                   "network": {"arch": net.arch, "width": net.width, "blocks": list(net.stage_blocks),
                               "head_pooling": net.head_pooling}},
        )

    def export_module(self, model: nn.Module):
        """Waveform ``(batch, clip samples)`` -> probabilities, front end inside (see module docstring)."""
        n = self.clip.clip_samples
        wave = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32) * 0.05
        example = {"audio": torch.from_numpy(wave)}
        return SlowFastWaveform(model, self.clip).eval(), example, {"audio": {0: "batch"}}


# ----------------------------------------------------------------------------- VGG-Sound

_VGG_LAYOUT = ("train.csv and test.csv (<ytid>_<start:06d>.mp4,label; no header), optionally stat.csv, "
               "and the clips <ytid>_<start:06d>.wav|.mp4 in audio/, video/, wav/ or the folder itself")


class VggSoundRecipe(SlowFastRecipe):
    """Slow-Fast R50 on VGG-Sound from scratch (the reference's ``SLOWFAST_R50.yaml``)."""

    name = "slowfast-vggsound"
    description = ("Slow-Fast auditory R50 on VGG-Sound (--data: train.csv/test.csv + clips; 16 kHz, 5.119 s, "
                   "SGD 50 epochs, 2 test views)")
    config_class = VggSoundConfig
    primary_metric = "top1"
    data_help = _VGG_LAYOUT
    clip = VGGSOUND_CLIP
    dataset_name = "vggsound"

    def default_labels(self) -> tuple[str, ...]:
        if self.config.num_classes == 309:
            from models.slowfast.pyth import load_labels

            return load_labels("vggsound")
        return super().default_labels()

    def class_names(self, root: Path, train: list, test: list) -> list[str]:
        """Class names in id order: sorted ``stat.csv`` labels, else the reference's 309, else
        the sorted labels of both lists."""
        stat = root / "stat.csv"
        if stat.is_file():
            names = vggsound_class_order(read_vggsound_stat(stat))
            source = f"{stat} (sorted)"
        elif self.config.num_classes == 309:
            names = list(self.default_labels())
            source = "models/labels/vggsound.txt"
        else:
            names = sorted({c.label for c in train + test})
            source = "the sorted labels of train.csv and test.csv"
        if len(names) != self.config.num_classes:
            raise ValueError(f"{source} gives {len(names)} classes, the config has num_classes="
                             f"{self.config.num_classes}; pass num_classes={len(names)}")
        return names

    def clip_folder(self, root: Path, names: Sequence[str]) -> Path:
        """The clip folder: ``clip_dir``, or the first of :data:`VGGSOUND_CLIP_DIRS` holding one
        of the first 50 clips ``names`` (as ``.wav`` or ``.mp4``)."""
        if self.config.clip_dir:
            folder = _resolve(root, self.config.clip_dir)
            if not folder.is_dir():
                raise FileNotFoundError(f"clip_dir {folder}: no such folder")
            return folder
        stems = [Path(name).stem for name in names[:50]]  # videos vanish: look for any of the first 50
        looked = []
        for sub in VGGSOUND_CLIP_DIRS:
            folder = root / sub if sub else root
            looked.append(os.fspath(folder))
            if any((folder / f"{stem}{ext}").is_file() for stem in stems for ext in (".wav", ".mp4")):
                return folder
        raise FileNotFoundError(f"no clip {stems[0]}.wav or {stems[0]}.mp4 (nor any other of the first {len(stems)} "
                                f"of train.csv) in any of {looked}; expected --data to hold {_VGG_LAYOUT}, or pass "
                                f"clip_dir=FOLDER")

    def _decode(self, folder: Path, splits: dict[str, tuple[Path, list]], class_id: dict[str, int]
                ) -> dict[str, tuple[DecodedWaves, np.ndarray]]:
        """Decode every split's clips in one pass of the decode pool (one pool start-up);
        split name -> (audio source, class ids). Skipped clips are logged and left out."""
        c = self.config
        specs = []
        for split, (csv, clips) in splits.items():
            for clip in clips:
                if clip.label not in class_id:
                    raise ValueError(f"{csv}: clip {clip.filename} has label {clip.label!r}, which is not among the "
                                     f"{len(class_id)} classes")
                stem = Path(clip.filename).stem
                wav = folder / f"{stem}.wav"
                path = wav if wav.is_file() else folder / clip.filename
                specs.append(MediaClip(path, (clip.label,), key=f"{split}/{clip.filename}"))
        decoded = ClipIndex(tuple(specs)).decode(self.clip.frontend.sample_rate, c.max_clip_seconds,
                                                 workers=c.decode_workers, timeout_s=c.decode_timeout_s)
        out = {}
        for split, (csv, clips) in splits.items():
            rows = [i for i, s in enumerate(decoded.clips) if s.key.startswith(f"{split}/")]
            if len(rows) < len(clips):
                logger.warning("%s: %d of %d clips skipped (see the decode report above)", csv,
                               len(clips) - len(rows), len(clips))
            if not rows:
                raise ValueError(f"{csv}: none of its {len(clips)} clips could be decoded:\n{decoded.summary()}")
            audio = decoded.audio[rows] if len(rows) < len(decoded.clips) else decoded.audio
            targets = np.array([class_id[decoded.clips[i].labels[0]] for i in rows], dtype=np.int64)
            out[split] = (DecodedWaves(audio, decoded.lengths[rows]), targets)
        return out

    def build_datasets(self, data: Path | None):
        root = _need_data(data, self.name, _VGG_LAYOUT)
        train_csv, test_csv = _need(root / "train.csv", _VGG_LAYOUT), _need(root / "test.csv", _VGG_LAYOUT)
        train, test = read_vggsound_split_csv(train_csv, "train"), read_vggsound_split_csv(test_csv, "test")
        names = self.class_names(root, train, test)
        class_id = {n: i for i, n in enumerate(names)}
        folder = self.clip_folder(root, [c.filename for c in train])
        decoded = self._decode(folder, {"train": (train_csv, train), "test": (test_csv, test)}, class_id)
        (train_src, train_y), (test_src, test_y) = decoded["train"], decoded["test"]
        self.labels = _unique_labels(names)
        return self._clips(train_src, {"target": train_y}, True), self._clips(test_src, {"target": test_y}, False)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(model(batch["spec"]), batch["target"])

    def evaluate(self, model: nn.Module, loader) -> dict:
        """top1, top5 (%-free fractions), mAP, AUC and d' over classes (the reference's
        ``vggsound_metrics``: per-class AP/AUC of the one-hot targets, d' from the mean AUC),
        ``views`` and ``items``."""
        (probs,), targets, views, _ = self._predict(model, loader, ["target"])
        y = targets["target"]
        onehot = np.zeros_like(probs, dtype=bool)
        onehot[np.arange(len(y)), y] = True
        m_ap, _ = mean_average_precision(probs, onehot)
        auc = roc_auc_per_class(probs, onehot)
        m_auc = float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")
        return {"top1": topk_accuracy(probs, y, 1), "top5": topk_accuracy(probs, y, 5), "mAP": float(m_ap),
                "AUC": m_auc, "dprime": float(d_prime(m_auc)) if np.isfinite(m_auc) else float("nan"),
                "views": views, "items": int(len(y))}


# ----------------------------------------------------------------------------- EPIC

class _EpicRecipe(SlowFastRecipe):
    clip = EPIC_CLIP
    layout: ClassVar[str] = ""

    def audio_file(self, root: Path) -> Path:
        """The audio HDF5: ``audio_hdf5``, else :data:`EPIC_AUDIO_HDF5`, else the folder's only one."""
        if self.config.audio_hdf5:
            return _need(_resolve(root, self.config.audio_hdf5), self.layout)
        default = root / EPIC_AUDIO_HDF5
        if default.is_file():
            return default
        found = sorted(p for p in root.iterdir() if p.suffix in (".hdf5", ".h5") and p.is_file())
        if len(found) == 1:
            return found[0]
        if not found:
            raise FileNotFoundError(f"{default}: no such file (and no other *.hdf5 in {root}); expected --data to "
                                    f"hold {self.layout}")
        raise ValueError(f"{root} holds several HDF5 files {[p.name for p in found]}; pass audio_hdf5=NAME")

    def load_init_checkpoint(self, model: nn.Module) -> None:
        if not self.config.init_checkpoint:
            logger.warning("%s: no init_checkpoint; training from scratch (the reference fine-tunes from a "
                           "VGG-Sound checkpoint)", self.name)
        super().load_init_checkpoint(model)


_EPIC100_LAYOUT = ("EPIC_100_train.csv, EPIC_100_validation.csv, EPIC_100_verb_classes.csv, "
                   "EPIC_100_noun_classes.csv and the audio HDF5 (EPIC-KITCHENS-100_audio.hdf5: one 24 kHz dataset "
                   "per video id)")


class Epic100Recipe(_EpicRecipe):
    """Slow-Fast R50 on EPIC-KITCHENS-100 verb + noun, fine-tuned with frozen BN statistics."""

    name = "slowfast-epic100"
    description = ("Slow-Fast auditory R50 on EPIC-KITCHENS-100 verb+noun (--data: EPIC_100 csvs + audio HDF5; "
                   "24 kHz, 1.999 s, fine-tune init_checkpoint=VGG .pyth, frozen BN, 10 test views)")
    config_class = Epic100Config
    primary_metric = "action_top1"
    data_help = _EPIC100_LAYOUT
    layout = _EPIC100_LAYOUT
    dataset_name = "epic100"

    def heads(self) -> tuple[int, ...]:
        return (self.config.num_verbs, self.config.num_nouns)

    def default_labels(self) -> tuple[str, ...]:
        if self.heads() == (97, 300):
            from models.slowfast.pyth import load_labels

            return load_labels("epic100")
        return tuple(f"verb:{k}" for k in range(self.config.num_verbs)) + tuple(
            f"noun:{k}" for k in range(self.config.num_nouns))

    def _classes(self, path: Path, count: int, field: str) -> list[str]:
        keys = epic_class_keys(read_epic100_classes(path))
        if len(keys) != count:
            raise ValueError(f"{path} lists {len(keys)} classes, the config has {field}={count}; "
                             f"pass {field}={len(keys)}")
        return keys

    def _split(self, root: Path, name: str, audio: Path) -> tuple[EpicWaves, dict[str, np.ndarray]]:
        path = _need(root / name, self.layout)
        rows = read_epic100_annotations(path)
        if rows and not rows[0].has_labels:
            raise ValueError(f"{path}: holds test timestamps without verb/noun labels; training and validation "
                             f"need the 15-column annotation layout")
        c = self.config
        for r in rows:
            if not (0 <= r.verb_class < c.num_verbs and 0 <= r.noun_class < c.num_nouns):
                raise ValueError(f"{path}: narration {r.narration_id} has verb_class {r.verb_class} / noun_class "
                                 f"{r.noun_class}, outside the heads of {c.num_verbs} verbs / {c.num_nouns} nouns")
        segments = EpicSegments(audio, rows)
        if not len(segments):
            raise ValueError(f"{path}: none of its {len(rows)} narrations has audio in {audio}")
        targets = {"verb": np.array([s.verb_class for s in segments.segments], np.int64),
                   "noun": np.array([s.noun_class for s in segments.segments], np.int64)}
        return EpicWaves(segments), targets

    def build_datasets(self, data: Path | None):
        root = _need_data(data, self.name, self.layout)
        c = self.config
        verbs = self._classes(_need(root / "EPIC_100_verb_classes.csv", self.layout), c.num_verbs, "num_verbs")
        nouns = self._classes(_need(root / "EPIC_100_noun_classes.csv", self.layout), c.num_nouns, "num_nouns")
        audio = self.audio_file(root)
        train_src, train_y = self._split(root, "EPIC_100_train.csv", audio)
        val_src, val_y = self._split(root, "EPIC_100_validation.csv", audio)
        self.labels = _unique_labels([f"verb:{v}" for v in verbs] + [f"noun:{n}" for n in nouns])
        return self._clips(train_src, train_y, True), self._clips(val_src, val_y, False)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        verb, noun = model(batch["spec"])
        return 0.5 * (F.cross_entropy(verb, batch["verb"]) + F.cross_entropy(noun, batch["noun"]))

    def evaluate(self, model: nn.Module, loader) -> dict:
        """verb/noun/action top-1 and top-5 (action top-k: verb and noun both within their top k,
        the reference's ``multitask_topks_correct``), ``views`` and ``items``."""
        (verb, noun), y, views, _ = self._predict(model, loader, ["verb", "noun"])
        figures: dict[str, Any] = {}
        for k in (1, 5):
            hit_v = _topk_hits(verb, y["verb"], k)
            hit_n = _topk_hits(noun, y["noun"], k)
            figures[f"verb_top{k}"] = float(hit_v.mean())
            figures[f"noun_top{k}"] = float(hit_n.mean())
            figures[f"action_top{k}"] = float((hit_v & hit_n).mean())
        order = ["verb_top1", "noun_top1", "action_top1", "verb_top5", "noun_top5", "action_top5"]
        return {"action_top1": figures["action_top1"], **{k: figures[k] for k in order if k != "action_top1"},
                "views": views, "items": int(len(verb))}


def _topk_hits(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """``(N,)`` bool: target among the ``k`` highest scores (ties: the higher class index first,
    as :func:`models.evaluation.metrics.topk_accuracy`)."""
    n, c = scores.shape
    target_score = scores[np.arange(n), targets][:, None]
    index = np.arange(c)[None, :]
    rank = (scores > target_score).sum(1) + ((scores == target_score) & (index > targets[:, None])).sum(1)
    return rank < k


_SOUNDS_LAYOUT = ("EPIC_Sounds_train.csv and EPIC_Sounds_validation.csv (annotation layout with class_id) and the "
                  "audio HDF5 (EPIC-KITCHENS-100_audio.hdf5: one 24 kHz dataset per video id)")


class EpicSoundsRecipe(_EpicRecipe):
    """Slow-Fast R50 on EPIC-SOUNDS (44 classes), fine-tuned with frozen BN statistics."""

    name = "slowfast-epicsounds"
    description = ("Slow-Fast auditory R50 on EPIC-SOUNDS, 44 classes (--data: EPIC_Sounds csvs + audio HDF5; "
                   "24 kHz, 1.999 s, frozen BN, 5 test views)")
    config_class = EpicSoundsConfig
    primary_metric = "top1"
    data_help = _SOUNDS_LAYOUT
    layout = _SOUNDS_LAYOUT
    dataset_name = "epic_sounds"

    def reference_names(self) -> list[str] | None:
        if self.config.num_classes != 44:
            return None
        from models.slowfast.pyth import load_labels

        return list(load_labels("epic_sounds"))

    def default_labels(self) -> tuple[str, ...]:
        names = self.reference_names()
        return tuple(names) if names else super().default_labels()

    def _split(self, root: Path, name: str, audio: Path, names: dict[int, str]) -> tuple[EpicWaves, dict]:
        path = _need(root / name, self.layout)
        rows = read_epic_sounds(path)
        n = self.config.num_classes
        for r in rows:
            if r.class_id is None:
                raise ValueError(f"{path}: segment {r.annotation_id} has no class_id; training and validation need "
                                 f"the annotation layout ({_SOUNDS_LAYOUT})")
            if not 0 <= r.class_id < n:
                raise ValueError(f"{path}: segment {r.annotation_id} has class_id {r.class_id}, outside the "
                                 f"{n} classes (num_classes={n})")
            if r.class_name:
                names.setdefault(r.class_id, r.class_name)
        segments = EpicSegments(audio, rows)
        if not len(segments):
            raise ValueError(f"{path}: none of its {len(rows)} segments has audio in {audio}")
        return EpicWaves(segments), {"target": np.array([s.class_id for s in segments.segments], np.int64)}

    def build_datasets(self, data: Path | None):
        root = _need_data(data, self.name, self.layout)
        audio = self.audio_file(root)
        seen: dict[int, str] = {}
        train_src, train_y = self._split(root, "EPIC_Sounds_train.csv", audio, seen)
        val_src, val_y = self._split(root, "EPIC_Sounds_validation.csv", audio, seen)
        # Names: the csvs' class column where an id occurs, else the reference's list (44), else class_<k>.
        fallback = self.reference_names() or [f"class_{k}" for k in range(self.config.num_classes)]
        self.labels = _unique_labels([seen.get(k, fallback[k]) for k in range(self.config.num_classes)])
        return self._clips(train_src, train_y, True), self._clips(val_src, val_y, False)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(model(batch["spec"]), batch["target"])

    def evaluate(self, model: nn.Module, loader) -> dict:
        """top1, top5, mean class accuracy (``mca``), mAP and AUC over classes, ``views``, ``items``."""
        (probs,), targets, views, _ = self._predict(model, loader, ["target"])
        y = targets["target"]
        onehot = np.zeros_like(probs, dtype=bool)
        onehot[np.arange(len(y)), y] = True
        m_ap, _ = mean_average_precision(probs, onehot)
        auc = roc_auc_per_class(probs, onehot)
        pca = per_class_accuracy(y, probs.argmax(1), probs.shape[1])
        return {"top1": topk_accuracy(probs, y, 1), "top5": topk_accuracy(probs, y, 5),
                "mca": float(np.nanmean(pca)) if np.isfinite(pca).any() else float("nan"), "mAP": float(m_ap),
                "AUC": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
                "views": views, "items": int(len(y))}
