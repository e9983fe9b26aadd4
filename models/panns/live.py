"""The PANNs live adapter: taggers score their window; decision-level models give frame scores.

A tagger (``Cnn14``, ``Cnn10``) is an ordinary waveform-in labeler
(:func:`models.core.live.runner_labeler`, its ``probs`` output). A decision-level model
(``Cnn14_DecisionLevelMax`` / ``Att``; its metadata has ``extra["segments"]``) returns a
:class:`models.core.live.FrameScores` of its ``segment_probs``: one row per segment of
``ratio`` STFT frames (0.32 s at 32 kHz, hop 320, ratio 32), each stamped with the centre of
the frames it pools, relative to the window's end: segment ``j`` of an ``N``-sample window at
``(j * ratio + (ratio - 1) / 2) * hop / sr - N / sr`` seconds (STFT frame ``t`` is centred on
sample ``t * hop``). For the 2 s window (N = 64000): T = 201 frames, T' = 6 segments centred at
-1.845, -1.525, ... -0.245 s; the last 9 frames (0.09 s) fall in no whole segment, so the
newest score lags the window's end by a quarter second.

The authors' ``framewise_output`` repeats each segment 32 times (and the last one to the end):
the same information at a finer grid; giving the segments themselves keeps the rolling labels'
frame count honest.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from models.core.live import FrameScores, WindowSpec, runner_labeler
from models.core.metadata import ModelMetadata

__all__ = ["SegmentLabeler", "panns_live"]


class SegmentLabeler:
    """A live :class:`models.core.live.Labeler` over a decision-level PANNs runner.

    Args:
        runner: an open ``engines`` runner (input ``audio`` ``(1, N)``; outputs ``probs``,
            ``segment_probs`` ``(1, T', K)``).
        metadata: its metadata, with ``extra["segments"]`` (``ratio``, ``hop_length``).
    """

    def __init__(self, runner: Any, metadata: ModelMetadata) -> None:
        segments = metadata.extra.get("segments")
        if not isinstance(segments, dict):
            raise ValueError("a decision-level PANNs model's metadata needs extra['segments'] (export it again)")
        self.runner, self.metadata = runner, metadata
        self.labels = tuple(metadata.labels)
        self.window = WindowSpec(metadata.window_seconds, metadata.sample_rate)
        ratio, hop = int(segments["ratio"]), int(segments["hop_length"])
        n = self.window.samples
        count = (1 + n // hop) // ratio
        if count < 1:
            raise ValueError(f"a {metadata.window_seconds:g} s window gives no {ratio * hop / metadata.sample_rate:g} s "
                             f"segment; expected at least {(ratio - 1) * hop} samples")
        centres = (np.arange(count) * ratio + (ratio - 1) / 2) * hop  # samples from the window's start
        self.times = (centres - n) / metadata.sample_rate  # (T',) seconds, relative to the window's end
        self._audio = np.zeros((1, n), np.float32)

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> FrameScores:
        if audio.shape != (self.window.samples,):
            raise ValueError(f"labeler input: expected audio of shape ({self.window.samples},) at "
                             f"{self.window.sample_rate} Hz, received {audio.shape}")
        self._audio[0] = audio
        scores = np.asarray(self.runner.infer({"audio": self._audio})["segment_probs"], np.float32)[0]  # (T', K)
        if scores.shape != (self.times.size, len(self.labels)):
            raise ValueError(f"labeler output: expected segment scores of shape ({self.times.size}, "
                             f"{len(self.labels)}), received {scores.shape}")
        return FrameScores(scores, self.times)


def panns_live(runner: Any, metadata: ModelMetadata):
    """The family's live adapter (``Family.live``)."""
    if "segments" in metadata.extra:
        return SegmentLabeler(runner, metadata)
    return runner_labeler(runner, metadata)
