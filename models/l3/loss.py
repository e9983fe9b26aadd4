"""The L3 objective: pair logits and the contrastive loss over positives, other-source and
same-source negatives."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.l3.network import L3Net


def pair_logits(model: L3Net, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """The correspondence logit of every (frame, audio) combination of a batch, one pass per subnet.

    Args:
        model: the network (concat or avol head).
        frames: ``(B, 3, S, S)`` preprocessed frames.
        audio: ``(B, 48000)``.

    Returns:
        ``(B, B)``: entry ``[i, j]`` is ``logit_yes − logit_no`` of frame ``i`` with audio ``j``;
        the diagonal equals the AVC logits of :meth:`~models.l3.network.L3Net.forward` (so its sigmoid
        is the AVC probability).
    """
    vision_map = model.vision_map(frames)  # (B, Cv, h, w)
    a = model.embed_audio(audio)  # (B, Ca)
    head = model.fusion
    if model.config.fusion == "concat":
        v = vision_map.amax(dim=(2, 3))  # (B, Cv)
        w_v, w_a = head.fc1.weight[:, : head.vision_dim], head.fc1.weight[:, head.vision_dim :]
        hidden = F.relu((v @ w_v.T)[:, None, :] + (a @ w_a.T + head.fc1.bias)[None, :, :])  # (B, B, hidden)
        logits = hidden @ head.fc2.weight.T + head.fc2.bias  # (B, B, 2)
        return logits[..., 1] - logits[..., 0]
    pv, pa = head.project(vision_map, a)  # (B, D, h, w), (B, D)
    z = head.scale * torch.einsum("idhw,jd->ijhw", pv, pa) + head.bias  # (B, B, h, w)
    return z.flatten(2).amax(dim=2)


def contrastive_loss(z: torch.Tensor, label: torch.Tensor, frame_source: torch.Tensor,
                     may_correspond: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch's positive pairs: each positive frame must pick its own
    audio among the batch's positive audios, and each audio its own frame.

    A softmax over the batch gives every positive a gradient against all of the batch's other
    sources at once, which breaks the binary AVC loss's long initial plateau on the world
    (loss at chance for hundreds of steps). Pairs of two positives from the same source (which
    may well correspond) are left out of the softmax.

    Args:
        z: ``(B, B)`` pair logits (:func:`pair_logits`).
        label: ``(B,)`` bool, the items that are positive pairs.
        frame_source: ``(B,)`` int64 source of each item's frame.
        may_correspond: ``(B, B)`` bool, off-diagonal pairs to leave out instead of every
            same-source pair (the recipe's ``scene_groups`` keeps same-source pairs far apart in time).

    Returns:
        A scalar; 0 (with a gradient path) with fewer than two positives.
    """
    pos = torch.nonzero(label).squeeze(1)
    if len(pos) < 2:
        return z.sum() * 0
    zz = z[pos][:, pos]  # (P, P): positive frames × positive audios
    if may_correspond is None:
        src = frame_source[pos]
        same = src[:, None] == src[None, :]
    else:
        same = may_correspond[pos][:, pos]
    same = same & ~torch.eye(len(pos), dtype=torch.bool, device=z.device)
    zz = zz.masked_fill(same, float("-inf"))
    target = torch.arange(len(pos), device=z.device)
    return 0.5 * (F.cross_entropy(zz, target) + F.cross_entropy(zz.T, target))
