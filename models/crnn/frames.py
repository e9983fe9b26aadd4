"""The CRNN's frame grid: where each output frame lies in time, and frame-level targets.

With a ``center=False`` front end, mel frame ``j`` of a clip covers samples
``[j * hop, j * hop + n_fft)`` (centre ``j * hop + n_fft / 2``), and encoder frame ``k`` pools
mel frames ``k * s ... k * s + s - 1`` (``s`` = the encoder's time stride), so its centre lies at
``((k * s + (s - 1) / 2) * hop + n_fft / 2) / sample_rate`` seconds from the clip's start. A class
is a target of a frame when one of its events covers that centre.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from models.audio.frontend import FrontEndConfig
from models.core.events import LabeledEvent


@dataclass(frozen=True)
class FrameGrid:
    """The output frames of a CRNN on a ``center=False`` front end.

    Attributes:
        frontend: the front end (``center`` must be False).
        time_stride: mel frames per output frame.
    """

    frontend: FrontEndConfig
    time_stride: int

    def __post_init__(self) -> None:
        if self.frontend.center:
            raise ValueError("FrameGrid: the CRNN's front end runs with center=False")

    @property
    def frame_seconds(self) -> float:
        """Seconds between output frames."""
        return self.frontend.hop_length * self.time_stride / self.frontend.sample_rate

    def mel_frames(self, samples: int) -> int:
        """Mel frames the network uses from ``samples`` samples (a multiple of the stride)."""
        n = self.frontend.num_frames(samples)
        return n - n % self.time_stride

    def frames(self, samples: int) -> int:
        """Output frames from ``samples`` samples."""
        return self.mel_frames(samples) // self.time_stride

    def centres(self, frames: int) -> np.ndarray:
        """``(frames,)`` float64 seconds from the clip's start to each output frame's centre."""
        fe, s = self.frontend, self.time_stride
        k = np.arange(frames, dtype=np.float64)
        return ((k * s + (s - 1) / 2.0) * fe.hop_length + fe.n_fft / 2.0) / fe.sample_rate

    def targets(self, events: Iterable[LabeledEvent], frames: int, classes: Sequence[str]) -> np.ndarray:
        """``(frames, C)`` float32: 1 where an event of the class covers the frame's centre.

        Args:
            events: events with clip-relative onsets and offsets (seconds); labels outside
                ``classes`` raise ValueError.
            frames: output frames of the clip.
            classes: class names in output order.
        """
        index = {c: i for i, c in enumerate(classes)}
        centres = self.centres(frames)
        out = np.zeros((frames, len(classes)), np.float32)
        for e in events:
            if e.label not in index:
                raise ValueError(f"event label {e.label!r} of {e.filename!r} is not one of the {len(classes)} classes")
            out[(centres >= e.onset) & (centres < e.offset), index[e.label]] = 1.0
        return out
