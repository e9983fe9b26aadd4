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
:func:`models.slowfast.pyth.load_labels` and :class:`models.slowfast.network.SlowFastLabeler`),
sample rate, window (the clip), the front end, inputs and outputs. The export module takes the
**waveform** (``(batch, clip samples)``) and returns eval-mode probabilities, with the front end
inside the graph: the 2048-point STFT exports as an ONNX ``STFT`` op (opset 18) and costs far
less than the network, so a log-mel input was not needed. Two heads are concatenated (verb
softmax then noun softmax).

Example::

    python -m models.train --recipe slowfast-vggsound --data /data/vggsound --out runs/sf-vgg
    python -m models.train --recipe slowfast-epic100 --data /data/epic --out runs/sf-epic \
        init_checkpoint=runs/SLOWFAST_VGG.pyth
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from models.audio.frontend import FrontEnd
from models.audio.specaugment import REFERENCE_SPECAUGMENT
from models.core.metadata import ModelMetadata, TensorSpec
from models.core.recipe import Recipe
from models.slowfast.clips import SlowFastClips, WaveSource
from models.slowfast.configs import SlowFastTrainConfig
from models.slowfast.network import (
    VGGSOUND_CLIP,
    ClipSpec,
    SlowFast,
    SlowFastConfig,
    pad_frames_edge,
    pad_or_crop_frames,
)

logger = logging.getLogger(__name__)


#: BatchNorm layers that keep updating their statistics when BN is frozen (the reference's
#: ``freeze_fn('bn_statistics')`` exempts the stems and the first lateral).
UNFROZEN_BN = ("s1.pathway0_stem.bn", "s1.pathway1_stem.bn", "s1_fuse.bn")


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


def resolve_under(root: Path, name: str) -> Path:
    """``name`` as given when absolute, else under ``root`` (paths in the recipes' settings)."""
    path = Path(name)
    return path if path.is_absolute() else root / path


def need_file(path: Path, layout: str) -> Path:
    """``path``, or FileNotFoundError naming it and the ``--data`` layout expected."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected --data to hold {layout}")
    return path


def need_data_folder(data: Path | None, recipe: str, layout: str) -> Path:
    """The ``--data`` folder, or an error that names the recipe and the layout it expects."""
    if data is None:
        raise ValueError(f"recipe {recipe!r} needs --data: a folder holding {layout}")
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder; expected a folder holding {layout}")
    return data


def unique_labels(names: Sequence[str]) -> tuple[str, ...]:
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
        return self.from_features(self.frontend(audio))

    def from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The part after the front end: log-mel ``(B, T, F)`` -> probabilities ``(B, K)`` (what a
        features-in export runs, ``models.export.frontend_outside``)."""
        feats = pad_frames_edge(feats, self.num_frames)  # (B, T, F)
        feats = pad_or_crop_frames(feats, self.model.frame_multiple)
        out = self.model(feats[:, None])
        return torch.cat(out, dim=1) if isinstance(out, tuple) else out


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
