"""Figures for models scored on the world's single-event windows (shared by every recipe)."""
from __future__ import annotations

import numpy as np

from models.evaluation.metrics import mean_average_precision, topk_accuracy
from models.world.evalsets import SNR_BINS, snr_bin
from models.world.sounds import CLASS_NAMES, CLOSE_PAIRS


def single_event_figures(scores: np.ndarray, windows) -> dict[str, float]:
    """Top-1/top-5, mAP (one-hot targets), per-SNR-bin top-1 and two-way close-pair accuracy.

    Args:
        scores: (N, C) class scores in CLASS_NAMES order (probabilities or logits).
        windows: the N EventWindow the scores are for.

    The two-way accuracy of a close pair (a, b) counts, over windows of class a or b, how often
    the model scores the right one of the two higher.
    """
    targets = np.array([w.class_index for w in windows])
    onehot = np.eye(scores.shape[1])[targets]
    figures = {
        "top1": topk_accuracy(scores, targets, 1), "top5": topk_accuracy(scores, targets, 5),
        "mAP": float(mean_average_precision(scores, onehot)[0]), "n": float(len(windows)),
    }
    bins = np.array([snr_bin(w.snr_db) for w in windows])
    correct = scores.argmax(1) == targets
    for lo, hi in SNR_BINS:
        name = f"{lo:g}-{hi:g}"
        figures[f"top1_snr_{name}"] = float(correct[bins == name].mean()) if (bins == name).any() else float("nan")
    for a, b in CLOSE_PAIRS:
        i, j = CLASS_NAMES.index(a), CLASS_NAMES.index(b)
        mask = (targets == i) | (targets == j)
        picked_i = scores[mask, i] >= scores[mask, j]
        figures[f"pair_{a}/{b}"] = float(np.mean(picked_i == (targets[mask] == i))) if mask.any() else float("nan")
    return figures


def format_figures(figures: dict[str, float]) -> str:
    """A short human-readable summary of single_event_figures output."""
    lines = [f"top-1 {100 * figures['top1']:.1f}%  top-5 {100 * figures['top5']:.1f}%  mAP {figures['mAP']:.3f}  ({int(figures['n'])} windows)"]
    lines.append("  per SNR bin: " + ", ".join(f"{k[9:]} dB {100 * v:.1f}%" for k, v in figures.items() if k.startswith("top1_snr_")))
    lines.append("  close pairs (two-way): " + ", ".join(f"{k[5:]} {100 * v:.1f}%" for k, v in figures.items() if k.startswith("pair_")))
    return "\n".join(lines)
