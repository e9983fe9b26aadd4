"""Slow-Fast ``.pyth`` checkpoints (the reference's format), label files and the live factory.

A ``.pyth`` file is ``torch.save`` of ``{"epoch": int, "model_state": OrderedDict[str,
Tensor], "optimizer_state": SGD state_dict, "cfg": YAML str}`` (``slowfast/utils/checkpoint.py``
of ekazakos/auditory-slow-fast; ``shared/REFERENCE.md`` 1.5). Keys are the network's module
names, which :class:`models.slowfast.network.SlowFast` reproduces, so released weights
(``SLOWFAST_VGG.pyth``, ``SLOWFAST_EPIC.pyth``, ``SLOWFAST_EPIC_SOUNDS.pyth`` ...) load as
they are.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only,
never pickled code. Unlike the reference, which silently skips every key whose name or
shape differs, loading here is strict: a different head raises :class:`CheckpointMismatch`
with both class counts (``finetune=True`` re-initialises the head instead), and any other
missing, unexpected or mis-shaped key raises with its name.

Example::

    ckpt = read_pyth("SLOWFAST_EPIC.pyth")
    print(ckpt.variant)            # SlowFastVariant(arch='slowfast', num_classes=(97, 300), ...)
    model = build_model(ckpt)      # SlowFast with the weights, eval mode
    save_pyth("copy.pyth", model, epoch=ckpt.epoch)
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from models.core.atomic import atomic_torch_save
from models.audio.frontend import FrontEndConfig
from models.slowfast.network import STAGE_DEPTHS, SlowFast, SlowFastConfig, clip_spec_for

__all__ = [
    "CheckpointMismatch", "UnsafeCheckpointError", "SlowFastVariant", "PythCheckpoint", "LoadReport",
    "LABEL_SETS", "DATASET_CLASSES", "load_labels", "labels_for", "infer_variant", "strip_ddp_prefix",
    "read_pyth", "load_state", "build_model", "reference_cfg", "save_pyth",
]

_LABEL_DIR = Path(__file__).resolve().parent / "labels"

#: Label file names (``models/labels/<name>.txt``) and their class counts.
LABEL_SETS = {"vggsound": 309, "epic100_verbs": 97, "epic100_nouns": 300, "epic_sounds": 44}

#: Head sizes of the reference's datasets -> dataset name.
DATASET_CLASSES = {(309,): "vggsound", (97, 300): "epic100", (44,): "epic_sounds"}


class CheckpointMismatch(ValueError):
    """The checkpoint's tensors do not fit the model (head size, missing/unexpected keys, shapes)."""


class UnsafeCheckpointError(ValueError):
    """The file holds pickled objects other than tensors and plain containers."""


# ---------------------------------------------------------------------------------- labels


def load_labels(name: str) -> tuple[str, ...]:
    """Class names of a label set, in output order.

    Args:
        name: one of :data:`LABEL_SETS` (``"vggsound"``, ``"epic100_verbs"``,
            ``"epic100_nouns"``, ``"epic_sounds"``); ``"epic100"`` gives the verbs then the
            nouns, prefixed ``verb:`` / ``noun:`` (the two heads' scores, concatenated).

    Raises:
        ValueError: unknown name, or a file whose class count is off.
    """
    if name == "epic100":
        return (tuple(f"verb:{v}" for v in load_labels("epic100_verbs"))
                + tuple(f"noun:{n}" for n in load_labels("epic100_nouns")))
    if name not in LABEL_SETS:
        raise ValueError(f"load_labels: expected one of {sorted(LABEL_SETS) + ['epic100']}, found {name!r}")
    path = _LABEL_DIR / f"{name}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    labels = tuple(line for line in lines if line and not line.startswith("#"))
    if len(labels) != LABEL_SETS[name]:
        raise ValueError(f"{path}: expected {LABEL_SETS[name]} labels, found {len(labels)}")
    return labels


def labels_for(num_classes: tuple[int, ...]) -> tuple[str, ...]:
    """Labels for a head of the reference's datasets: (309,) VGG-Sound, (97, 300) EPIC-100
    (``verb:``/``noun:`` prefixed), (44,) EPIC-SOUNDS.

    Raises:
        ValueError: another head size (pass labels explicitly).
    """
    dataset = DATASET_CLASSES.get(tuple(num_classes))
    if dataset is None:
        raise ValueError(f"labels_for: expected heads {sorted(DATASET_CLASSES)} (VGG-Sound, EPIC-100, EPIC-SOUNDS), "
                         f"found {tuple(num_classes)}; pass the labels explicitly")
    return load_labels(dataset)


# ---------------------------------------------------------------------------------- variant


@dataclass(frozen=True)
class SlowFastVariant:
    """What a state dict says about its network.

    Attributes:
        arch: ``"slowfast"``, ``"slow"`` or ``"fast"``.
        num_classes: head sizes, ``(K,)`` or ``(verbs, nouns)``.
        width: Slow base width as :class:`SlowFastConfig` counts it (Fast-only: 8 x its stem).
        depth: 50 or 101 (from the blocks in res4), or None for another block layout.
        blocks: blocks in res2..res5.
        dataset: ``"vggsound"``, ``"epic100"``, ``"epic_sounds"`` from the head size, or None.
    """

    arch: str
    num_classes: tuple[int, ...]
    width: int
    depth: int | None
    blocks: tuple[int, int, int, int]
    dataset: str | None

    def config(self, **overrides: Any) -> SlowFastConfig:
        """A :class:`SlowFastConfig` for this variant (reference defaults elsewhere; the trained
        frame count from the dataset's clip); ``overrides`` replace fields."""
        fields: dict[str, Any] = dict(arch=self.arch, num_classes=self.num_classes, width=self.width)
        if self.depth is not None:
            fields["depth"] = self.depth
        else:
            fields["blocks"] = self.blocks
        if self.dataset is not None:
            fields["num_frames"] = clip_spec_for(self.dataset, self.arch).num_frames
        fields.update(overrides)
        return SlowFastConfig(**fields)


def strip_ddp_prefix(state: Mapping[str, Any]) -> "OrderedDict[str, Any]":
    """Drop a ``module.`` prefix (DistributedDataParallel) from every key, if all keys have it."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return OrderedDict((k[len("module."):], v) for k, v in state.items())
    return OrderedDict(state)


def _shape(state: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointMismatch(f"not a Slow-Fast state dict: expected key {key!r}, found keys "
                                 f"{sorted(state)[:5]}{' ...' if len(state) > 5 else ''}")
    return tuple(state[key].shape)


def infer_variant(state_dict: Mapping[str, Any]) -> SlowFastVariant:
    """Which Slow-Fast network a state dict belongs to, from its keys and shapes.

    Two pathways if ``s1.pathway1_stem`` exists; alone, Slow (conv1 temporal kernel 1) or Fast
    (kernel 5); widths from the stems; blocks from ``s{2..5}.pathway0_res{i}``; heads from
    ``head.projection`` or ``head.projection_verb`` / ``head.projection_noun``.

    Raises:
        CheckpointMismatch: the keys are not a Slow-Fast state dict's.
    """
    state = strip_ddp_prefix(state_dict)
    stem0 = _shape(state, "s1.pathway0_stem.conv.weight")  # (C, 1, Tk, 7)
    if len(stem0) != 4:
        raise CheckpointMismatch(f"s1.pathway0_stem.conv.weight: expected a 4-D (C, 1, Tk, 7) conv weight, "
                                 f"found shape {stem0} (a 3-D visual SlowFast checkpoint has 5-D weights)")
    if "s1.pathway1_stem.conv.weight" in state:
        arch, width = "slowfast", stem0[0]
    elif stem0[2] == 1:
        arch, width = "slow", stem0[0]
    else:
        arch, width = "fast", stem0[0] * SlowFastConfig().beta_inv
    blocks = []
    for stage in range(2, 6):
        n = 0
        while f"s{stage}.pathway0_res{n}.branch2.a.weight" in state:
            n += 1
        if n == 0:
            raise CheckpointMismatch(f"not a Slow-Fast state dict: expected s{stage}.pathway0_res0.branch2.a.weight")
        blocks.append(n)
    depth = next((d for d, b in STAGE_DEPTHS.items() if tuple(blocks) == b), None)
    if "head.projection.weight" in state:
        num_classes: tuple[int, ...] = (_shape(state, "head.projection.weight")[0],)
    elif "head.projection_verb.weight" in state:
        num_classes = (_shape(state, "head.projection_verb.weight")[0], _shape(state, "head.projection_noun.weight")[0])
    else:
        raise CheckpointMismatch("not a Slow-Fast state dict: expected head.projection.weight or "
                                 "head.projection_verb.weight / head.projection_noun.weight")
    return SlowFastVariant(arch, num_classes, int(width), depth, tuple(blocks),  # type: ignore[arg-type]
                           DATASET_CLASSES.get(num_classes))


# ---------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class PythCheckpoint:
    """A ``.pyth`` file's contents.

    Attributes:
        path: where it was read from.
        epoch: the ``epoch`` entry.
        model_state: the weights (``module.`` prefix removed), in file order.
        optimizer_state: the SGD ``state_dict`` (empty dict if the file has none).
        cfg: the config YAML string (``cfg.dump()``; empty if absent).
        cfg_dict: ``cfg`` parsed with ``yaml.safe_load`` (None if absent or unparsable).
        variant: :func:`infer_variant` of ``model_state``.
    """

    path: Path
    epoch: int
    model_state: "OrderedDict[str, torch.Tensor]"
    optimizer_state: dict
    cfg: str
    cfg_dict: dict | None
    variant: SlowFastVariant


def _unsafe_type(message: str) -> str:
    found = re.search(r"GLOBAL\s+([\w.]+)", message) or re.search(r"Unsupported global:?\s*([\w.]+)", message)
    return found.group(1) if found else "an object that is not a tensor or plain container"


def read_pyth(path: str | os.PathLike) -> PythCheckpoint:
    """Read a ``.pyth`` file safely (``torch.load(map_location="cpu", weights_only=True)``).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file pickles a type outside the weights-only allowlist;
            the message names it and says how to convert the file.
        CheckpointMismatch: the file is not a Slow-Fast checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .pyth checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, ... depending on the content
        message = str(exc)
        if "weights_only" not in message and "GLOBAL" not in message and "global" not in message:
            raise
        kind = _unsafe_type(message)
        raise UnsafeCheckpointError(
            f"{path}: holds a pickled {kind}, which a weights-only load refuses (loading it would run code "
            f"from the file). To convert it, load it once in an environment you trust and re-save the weights "
            f"as plain tensors: read it with PyTorch's full unpickler (weights_only off), then torch.save a dict "
            f"{{'epoch': int, 'model_state': {{name: tensor}}, 'optimizer_state': {{}}, 'cfg': str}} to a new file") from None
    if not isinstance(data, Mapping) or "model_state" not in data:
        found = sorted(map(str, data))[:8] if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointMismatch(f"{path}: expected a .pyth dict with epoch, model_state, optimizer_state and cfg, "
                                 f"found {found}")
    state = data["model_state"]
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointMismatch(f"{path}: expected model_state to map names to tensors")
    state = strip_ddp_prefix(state)
    cfg = data.get("cfg") or ""
    if not isinstance(cfg, str):
        cfg = str(cfg)
    try:
        cfg_dict = yaml.safe_load(cfg) if cfg else None
    except yaml.YAMLError:
        cfg_dict = None
    epoch = data.get("epoch", -1)
    return PythCheckpoint(path=path, epoch=int(epoch) if isinstance(epoch, (int, float)) else -1, model_state=state,
                          optimizer_state=dict(data.get("optimizer_state") or {}), cfg=cfg,
                          cfg_dict=cfg_dict if isinstance(cfg_dict, dict) else None, variant=infer_variant(state))


# ---------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_state` did.

    Attributes:
        loaded: keys copied from the checkpoint.
        reinitialised: head keys re-initialised instead (``finetune=True``).
    """

    loaded: tuple[str, ...]
    reinitialised: tuple[str, ...]


def _describe_head(state: Mapping[str, Any]) -> tuple[str, tuple[int, ...]]:
    if "head.projection.weight" in state:
        return "head.projection", (int(state["head.projection.weight"].shape[0]),)
    if "head.projection_verb.weight" in state and "head.projection_noun.weight" in state:
        return ("head.projection_verb/noun", (int(state["head.projection_verb.weight"].shape[0]),
                                              int(state["head.projection_noun.weight"].shape[0])))
    return "head", ()


def _classes_text(classes: tuple[int, ...]) -> str:
    if len(classes) == 1:
        return f"{classes[0]} classes"
    if len(classes) == 2:
        return f"verb+noun heads of {classes[0]}+{classes[1]} classes"
    return "no recognisable head"


def load_state(model: SlowFast, state_dict: Mapping[str, torch.Tensor], *, finetune: bool = False) -> LoadReport:
    """Copy a reference state dict into ``model``, strictly.

    Args:
        model: the network to fill.
        state_dict: reference keys (a ``module.`` prefix is removed).
        finetune: re-initialise the head (N(0, fc_init_std), bias 0) instead of loading it,
            whatever its size; the rest must still match.

    Returns:
        A :class:`LoadReport`.

    Raises:
        CheckpointMismatch: head sizes differ (message: ``head.projection: checkpoint has 309
            classes, model expects 44``) and not ``finetune``; or any other key is missing,
            unexpected or of another shape (named in the message).
    """
    state = strip_ddp_prefix(state_dict)
    expected = model.state_dict()
    is_head = lambda k: k.startswith("head.")  # noqa: E731
    if not finetune:
        ck_name, ck_classes = _describe_head(state)
        md_name, md_classes = _describe_head(expected)
        if ck_classes != md_classes:
            raise CheckpointMismatch(f"{md_name if ck_name == md_name else 'head'}: checkpoint has "
                                     f"{_classes_text(ck_classes)}, model expects {_classes_text(md_classes)} "
                                     f"(load with finetune=True to re-initialise the head)")
    body = [k for k in state if not (finetune and is_head(k))]
    missing = [k for k in expected if k not in state and not (finetune and is_head(k))]
    unexpected = [k for k in body if k not in expected]
    mis_shaped = [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
                  for k in body if k in expected and state[k].shape != expected[k].shape]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped)):
        if keys:
            shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
            problems.append(f"{what}: {shown}")
    if problems:
        try:
            variant = infer_variant(state)
            hint = f" (the checkpoint is {variant.arch}, heads {variant.num_classes}, width {variant.width}, " \
                   f"blocks {variant.blocks})"
        except CheckpointMismatch:
            hint = ""
        raise CheckpointMismatch(f"checkpoint does not fit the model: {'; '.join(problems)}{hint}")
    with torch.no_grad():
        for k in body:
            expected[k].copy_(state[k])
    reinit: tuple[str, ...] = ()
    if finetune:
        model.reset_head()
        reinit = tuple(k for k in expected if is_head(k))
    return LoadReport(loaded=tuple(body), reinitialised=reinit)


def build_model(checkpoint: PythCheckpoint | str | os.PathLike, *, finetune: bool = False,
                **overrides: Any) -> SlowFast:
    """A :class:`SlowFast` for the checkpoint's variant, with its weights, in eval mode.

    Args:
        checkpoint: a :class:`PythCheckpoint` or a ``.pyth`` path.
        finetune: see :func:`load_state` (useful with ``num_classes=...`` in ``overrides``).
        overrides: :class:`SlowFastConfig` fields to change (e.g. ``head_pooling``).
    """
    ckpt = checkpoint if isinstance(checkpoint, PythCheckpoint) else read_pyth(checkpoint)
    model = SlowFast(ckpt.variant.config(**overrides))
    load_state(model, ckpt.model_state, finetune=finetune)
    return model.eval()


# ---------------------------------------------------------------------------------- saving


def reference_cfg(config: SlowFastConfig, frontend: FrontEndConfig | None = None,
                  clip_samples: int | None = None) -> dict[str, Any]:
    """The reference's config keys for a network (what ``cfg.dump()`` holds), as a nested dict.

    ``MODEL`` (ARCH, MODEL_NAME, NUM_CLASSES ...), ``RESNET``, ``SLOWFAST``, ``DATA`` and
    ``AUDIO_DATA`` (SAMPLING_RATE, CLIP_SECS, NUM_FRAMES, NUM_FREQUENCIES, WINDOW_LENGTH and
    HOP_LENGTH in ms) as the reference spells them; ``AVLIVE`` holds what the reference has no
    key for (the whole front end, head pooling, custom blocks).
    """
    if frontend is None:
        dataset = DATASET_CLASSES.get(config.num_classes)
        spec = clip_spec_for(dataset or "vggsound", config.arch)
        frontend = spec.frontend
        clip_samples = spec.clip_samples if clip_samples is None else clip_samples
    sr = frontend.sample_rate
    audio: dict[str, Any] = {
        "SAMPLING_RATE": sr,
        "NUM_FRAMES": config.num_frames,
        "NUM_FREQUENCIES": config.num_frequencies,
        "WINDOW_LENGTH": round(1000 * frontend.win_length / sr, 6),
        "HOP_LENGTH": round(1000 * frontend.hop_length / sr, 6),
    }
    if clip_samples is not None:
        audio["CLIP_SECS"] = round((clip_samples + 1) / sr, 6)  # the reference slices CLIP_SECS * sr - 1 samples
    two = config.arch == "slowfast"
    cfg: dict[str, Any] = {
        "MODEL": {"ARCH": config.arch, "MODEL_NAME": "SlowFast" if two else "ResNet",
                  "NUM_CLASSES": list(config.num_classes), "DROPOUT_RATE": config.dropout, "HEAD_ACT": "softmax",
                  "FC_INIT_STD": config.fc_init_std, "LOSS_FUNC": "cross_entropy"},
        "RESNET": {"DEPTH": config.depth, "WIDTH_PER_GROUP": config.width if config.arch != "fast"
                   else config.width // config.beta_inv, "NUM_GROUPS": 1, "TRANS_FUNC": "bottleneck_transform",
                   "STRIDE_1X1": False, "ZERO_INIT_FINAL_BN": config.zero_init_final_bn,
                   "NUM_BLOCK_TEMP_KERNEL": [[b] * len(config.pathways) for b in config.stage_blocks],
                   "FREQUENCY_STRIDES": [[s] * len(config.pathways) for s in (1, 2, 2, 2)],
                   "FREQUENCY_DILATIONS": [[1] * len(config.pathways)] * 4},
        "DATA": {"INPUT_CHANNEL_NUM": [1] * len(config.pathways)},
        "AUDIO_DATA": audio,
        "BN": {"EPSILON": config.bn_eps, "MOMENTUM": config.bn_momentum},
        "AVLIVE": {"frontend": frontend.to_dict(), "head_pooling": config.head_pooling,
                   "blocks": list(config.blocks) if config.blocks is not None else None},
    }
    if two:
        cfg["SLOWFAST"] = {"ALPHA": config.alpha, "BETA_INV": config.beta_inv,
                           "FUSION_CONV_CHANNEL_RATIO": config.fusion_channel_ratio,
                           "FUSION_KERNEL_SZ": config.fusion_kernel}
    return cfg


def save_pyth(path: str | os.PathLike, model: SlowFast, *, epoch: int = 0, optimizer_state: Mapping | None = None,
              cfg: str | Mapping[str, Any] | None = None, frontend: FrontEndConfig | None = None) -> Path:
    """Write ``model`` as a reference ``.pyth`` file, atomically (:func:`models.core.atomic.atomic_torch_save`).

    Args:
        path: destination (its directory must exist).
        model: the network; its weights are saved as CPU tensors under the reference keys.
        epoch: the ``epoch`` entry (the reference stores the 0-based epoch just finished).
        optimizer_state: an optimizer ``state_dict()`` (default: an empty SGD-style one).
        cfg: YAML string or nested dict for ``cfg``; default :func:`reference_cfg` of the model.
        frontend: the features, for the default ``cfg``.

    Returns:
        ``Path(path)``.
    """
    if not isinstance(model, SlowFast):
        raise ValueError(f"save_pyth: expected a SlowFast model, found {type(model).__name__}")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ValueError(f"save_pyth: expected an int epoch, found {epoch!r}")
    if cfg is None:
        cfg = reference_cfg(model.config, frontend)
    cfg_text = cfg if isinstance(cfg, str) else yaml.safe_dump(dict(cfg), sort_keys=True)
    state = OrderedDict((k, v.detach().to("cpu").clone()) for k, v in model.state_dict().items())
    payload = {"epoch": epoch, "model_state": state,
               "optimizer_state": dict(optimizer_state) if optimizer_state is not None
               else {"state": {}, "param_groups": []},
               "cfg": cfg_text}
    atomic_torch_save(payload, path)
    return Path(path)
