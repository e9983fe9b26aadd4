"""DropPathway and hierarchical audio-visual synchronisation (AVS), the two training aids of
AVSlowFast (facts in ``shared/REFERENCE.md`` section 4).

**DropPathway.** Audio learns faster than vision; to keep the visual pathways from leaning on
it early, every training iteration draws once: with probability ``rate`` (0.8 by default) every
A->FS lateral is switched off for that iteration (its output multiplied by 0). The Audio
pathway still runs and still feeds the head.

**AVS.** After res3, res4 and res5 a pair of small heads maps the visual features (Slow with
F->S, before audio is added) and the audio side (the A->FS lateral's output; at res5 the Audio
pathway's map) to ``sync_dim``-d embeddings, L2-normalised and scaled by 0.5. A contrastive
loss pulls aligned audio to its clip's visual embedding and pushes misaligned audio past a
margin::

    L = ( sum_i m+_i ||v_i - a+_i||^2 + sum_i m-_i max(0, margin - ||v_i - a-_i||)^2 ) / (2 N)

* negatives: *easy* ones are another clip's audio (the batch rotated), *hard* ones come from
  the same clip at least 0.5 s away (the dataset supplies them); before ``mix_epoch`` all are
  easy, then a fraction ``easy_ratio`` (0.75) is easy and the rest hard;
* masks: a pair whose audio is silent (log-mel variance below ``silent_var``) counts in
  neither term, and a negative that duplicates its positive (cosine above ``duplicate_cos``)
  is dropped;
* the rule of the earliest fusion: a stage's term counts only when no audio has reached the
  visual pathways before it in this forward — with laterals after res3 and res4, only the res3
  term counts, except on DropPathway iterations, when all three do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from models.avslowfast.network import SYNC_STAGES, Taps

__all__ = [
    "DropPathway",
    "SyncConfig",
    "choose_negatives",
    "contrastive_terms",
    "duplicate_mask",
    "silent_mask",
    "stage_weights",
]


class DropPathway:
    """Draws, once per training iteration, whether the A->FS laterals are switched off.

    Args:
        rate: probability of switching them off (the authors' ``DROPPATHWAY_RATE`` 0.8); 0 never.
        seed: seeds the draws (a run's iterations draw the same sequence every time).
    """

    def __init__(self, rate: float = 0.8, seed: int = 0) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"DropPathway.rate: expected a probability in [0, 1], found {rate!r}")
        self.rate = float(rate)
        self._generator = torch.Generator().manual_seed(int(seed))

    def audio_laterals(self) -> bool:
        """This iteration's draw: True keeps the audio laterals, False drops them."""
        if self.rate == 0.0:
            return True
        return bool(torch.rand((), generator=self._generator).item() >= self.rate)


@dataclass(frozen=True)
class SyncConfig:
    """The AVS loss's settings (defaults: the authors' ``AVS_*`` config).

    Raises:
        ValueError: a field out of range (named in the message).
    """

    weight: float = 1.0  # added to the classification loss with this weight
    margin: float = 0.99  # misaligned pairs are pushed at least this far apart (embeddings lie within 1)
    easy_ratio: float = 0.75  # EASY_NEG_RATIO: share of easy negatives once hard ones are mixed in
    mix_epoch: int = 96  # MIX_NEG_EPOCH: epochs of easy negatives only
    silent_var: float = 0.01  # a log-mel whose variance is below this is silent
    duplicate_cos: float = 0.99999  # a negative this similar to its positive is not a negative

    def __post_init__(self) -> None:
        for name in ("weight", "margin", "silent_var"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"SyncConfig.{name}: expected a finite number >= 0, found {v!r}")
        for name in ("easy_ratio", "duplicate_cos"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SyncConfig.{name}: expected a number in [0, 1], found {getattr(self, name)!r}")
        if self.mix_epoch < 0:
            raise ValueError(f"SyncConfig.mix_epoch: expected an epoch >= 0, found {self.mix_epoch!r}")


def silent_mask(logmel: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(N, 1, T, F)`` log-mel -> ``(N,)`` bool: True where the clip is silent (variance < threshold)."""
    return logmel.flatten(1).var(dim=1) < threshold


def duplicate_mask(a: torch.Tensor, b: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(N, ...)`` pairs -> ``(N,)`` bool: True where ``a`` and ``b`` are near-duplicates (cosine > threshold)."""
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1) > threshold


def stage_weights(active_fusion: int | None) -> tuple[float, ...]:
    """Weight of each AVS stage's term: 1 where no audio reached the visual pathways before the
    stage's tap, else 0. ``active_fusion``: the earliest fusion point that added audio (0..3) or None.

    >>> stage_weights(2), stage_weights(None)
    ((1.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    """
    return tuple(1.0 if active_fusion is None or stage <= active_fusion else 0.0 for stage in SYNC_STAGES)


def contrastive_terms(v: torch.Tensor, a_pos: torch.Tensor, a_neg: torch.Tensor, pos_valid: torch.Tensor,
                      neg_valid: torch.Tensor, margin: float) -> torch.Tensor:
    """One stage's loss (a scalar) from ``(N, D)`` embeddings and ``(N,)`` bool masks (see the module docstring)."""
    n = v.shape[0]
    pos = (v - a_pos).pow(2).sum(dim=1)  # (N,) squared distance
    neg = torch.clamp(margin - (v - a_neg).pow(2).sum(dim=1).clamp_min(1e-12).sqrt(), min=0.0).pow(2)
    return (pos * pos_valid.float()).sum() / (2 * n) + (neg * neg_valid.float()).sum() / (2 * n)


def choose_negatives(logmel: torch.Tensor, hard: torch.Tensor, epoch: int, config: SyncConfig,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Misaligned audio for each clip of a batch.

    Args:
        logmel: ``(N, 1, T, F)`` the clips' aligned audio.
        hard: ``(N, 1, T, F)`` audio from the same clips at least 0.5 s away (the dataset's).
        epoch: the training epoch (before ``config.mix_epoch``: easy negatives only).
        config: the schedule.
        generator: draws the batch rotation and which items get hard negatives.

    Returns:
        ``(N, 1, T, F)`` negatives and ``(N,)`` bool, True where the negative is hard.
    """
    n = logmel.shape[0]
    shift = int(torch.randint(1, max(2, n), (), generator=generator)) if n > 1 else 0
    easy = torch.roll(logmel, shifts=shift, dims=0)  # another clip of the batch (when N > 1)
    if epoch < config.mix_epoch or n == 1:
        is_hard = torch.zeros(n, dtype=torch.bool) if n > 1 else torch.ones(n, dtype=torch.bool)
    else:
        is_hard = torch.rand(n, generator=generator) >= config.easy_ratio
    is_hard = is_hard.to(logmel.device)
    return torch.where(is_hard[:, None, None, None], hard, easy), is_hard


def sync_loss(model, taps: Taps, logmel: torch.Tensor, negatives: torch.Tensor, config: SyncConfig) -> torch.Tensor:
    """The AVS loss of one batch (a scalar, before ``config.weight``).

    Args:
        model: the :class:`models.avslowfast.network.AVSlowFast` (with ``sync_heads``).
        taps: what its forward on the aligned batch tapped (``forward_maps(taps=True)``).
        logmel: ``(N, 1, T, F)`` aligned audio (for the masks).
        negatives: ``(N, 1, T, F)`` misaligned audio (:func:`choose_negatives`).
        config: margin and masks.
    """
    vs, a_pos = model.sync_embeddings(taps)
    neg_taps = Taps(taps.visual, model.audio_taps(negatives), taps.active_fusion)
    _, a_neg = model.sync_embeddings(neg_taps)
    pos_valid = ~silent_mask(logmel, config.silent_var)
    neg_valid = pos_valid & ~silent_mask(negatives, config.silent_var) & ~duplicate_mask(logmel, negatives,
                                                                                          config.duplicate_cos)
    total = logmel.new_zeros(())
    for weight, v, ap, an in zip(stage_weights(taps.active_fusion), vs, a_pos, a_neg):
        if weight:
            total = total + weight * contrastive_terms(v, ap, an, pos_valid, neg_valid, config.margin)
    return total
