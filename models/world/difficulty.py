"""How hard the world is: a linear probe on time-averaged log-mel statistics.

A logistic regression on the mean and standard deviation of each log-mel band over a
single-event window. If it scores near 100 % the world is trivial; near chance it is noise.
The same figures show that low SNR hurts and that the close pairs (same generator, one
parameter apart) are hard to tell apart without temporal structure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.world.evalsets import SNR_BINS, EventWindow, render_windows, snr_bin
from models.world.sounds import CLASS_NAMES, CLOSE_PAIRS

# The log-mel of avlive's own bench models: 16 kHz, 25 ms Hann windows every 10 ms, 64 HTK bands.
BENCH_LOGMEL = FrontEndConfig(
    sample_rate=16000, n_fft=512, win_length=400, hop_length=160, center=True, power=2.0,
    n_mels=64, mel_scale="htk", mel_norm=None, log_offset=1e-6,
)


@dataclass(frozen=True)
class Difficulty:
    """The world's difficulty figures (all accuracies in [0, 1])."""

    top1: float
    n_train: int
    n_test: int
    per_snr_bin: dict[str, float]
    pair_confusion: dict[str, float]  # mean of the two cross rates within each close pair
    mean_off_diagonal: float
    confusion: list[list[float]]  # row-normalised, rows = true class in CLASS_NAMES order

    def to_dict(self) -> dict:
        return asdict(self)

    def report(self) -> str:
        lines = [f"logistic regression on log-mel mean+std: top-1 {100 * self.top1:.1f}% ({self.n_test} test windows, {self.n_train} train)"]
        lines.append("  per SNR bin: " + ", ".join(f"{b} dB {100 * a:.1f}%" for b, a in self.per_snr_bin.items()))
        for pair, rate in self.pair_confusion.items():
            lines.append(f"  close pair {pair}: confused {100 * rate:.1f}% = {rate / self.mean_off_diagonal:.1f}× the mean off-diagonal rate ({100 * self.mean_off_diagonal:.2f}%)")
        return "\n".join(lines)


def logmel_statistics(waves: np.ndarray, config: FrontEndConfig = BENCH_LOGMEL, batch: int = 256) -> np.ndarray:
    """Per-band mean and standard deviation of the log-mel over time, (N, 2 × n_mels) float64."""
    front = FrontEnd(config)
    feats = []
    with torch.inference_mode():
        for i in range(0, len(waves), batch):
            logmel = front(torch.from_numpy(np.ascontiguousarray(waves[i : i + batch])))  # (B, T, F)
            feats.append(torch.cat([logmel.mean(1), logmel.std(1)], dim=1).double().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, 2 * config.output_bins))


def measure_difficulty(train: list[EventWindow], test: list[EventWindow]) -> Difficulty:
    """Fit the probe on ``train`` windows, score it on ``test`` windows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sr = BENCH_LOGMEL.sample_rate
    x_train = logmel_statistics(render_windows(train, sr, progress="rendering train windows"))
    x_test = logmel_statistics(render_windows(test, sr, progress="rendering test windows"))
    y_train = np.array([w.class_index for w in train])
    y_test = np.array([w.class_index for w in test])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    probe.fit(x_train, y_train)
    pred = probe.predict(x_test)
    correct = pred == y_test
    bins = np.array([snr_bin(w.snr_db) for w in test])
    per_bin = {f"{lo:g}-{hi:g}": float(correct[bins == f"{lo:g}-{hi:g}"].mean()) for lo, hi in SNR_BINS}
    n = len(CLASS_NAMES)
    confusion = np.zeros((n, n))
    np.add.at(confusion, (y_test, pred), 1.0)
    confusion /= np.maximum(confusion.sum(1, keepdims=True), 1.0)
    off = confusion[~np.eye(n, dtype=bool)]
    pairs = {}
    for a, b in CLOSE_PAIRS:
        i, j = CLASS_NAMES.index(a), CLASS_NAMES.index(b)
        pairs[f"{a}/{b}"] = float((confusion[i, j] + confusion[j, i]) / 2)
    return Difficulty(float(correct.mean()), len(train), len(test), per_bin, pairs, float(off.mean()), confusion.round(4).tolist())
