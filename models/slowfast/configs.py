"""Settings of the Slow-Fast recipes (``key=value`` on the command line), with the reference's
hyper-parameters as defaults."""
from __future__ import annotations

from dataclasses import dataclass

from models.core.train_config import TrainConfig

#: The audio HDF5 name the EPIC recipes look for first.
EPIC_AUDIO_HDF5 = "EPIC-KITCHENS-100_audio.hdf5"


#: Sub-folders of a VGG-Sound ``--data`` folder searched for clips, in order ("" = the folder).
VGGSOUND_CLIP_DIRS = ("audio", "video", "wav", "")


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
    val_fraction: float = 0.1  # validation: this share of each class's train.csv clips, whole YouTube ids (test.csv is never used in training)

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected between 0 and 1, found {self.val_fraction}")
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
