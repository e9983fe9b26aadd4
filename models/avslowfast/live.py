"""AVSlowFast live: the labeler adapter over any runner (ONNX Runtime, PyTorch, TensorRT).

The model asks the pipeline for a clip (``WindowSpec(frames=N, frame_rate=..., frame_at="end")``):
the scheduler hands it the frames nearest N instants ``1 / frame_rate`` apart, ending at the audio
window's end, matched on the capture's frame timestamps, oldest first. The adapter preprocesses
them as training did (:func:`models.avslowfast.data.preprocess_clip`) and feeds the runner
``frames (1, 3, N, S, S)`` and ``audio (1, samples)`` (each only when the model takes it).
"""
from __future__ import annotations

import numpy as np

from models.avslowfast.data import preprocess_clip
from models.core.live import FRAME_AT_END, WindowSpec
from models.core.metadata import ModelMetadata


class ClipLabeler:
    """A live AVSlowFast labeler on an open runner.

    Args:
        runner: ``infer({"frames"?, "audio"?}) -> {"probs": (1, C)}``.
        metadata: the model's metadata (``extra``: ``frames``, ``frame_rate``, ``image_size``).
    """

    def __init__(self, runner, metadata: ModelMetadata) -> None:
        self._runner = runner
        self.metadata = metadata
        self.labels = tuple(metadata.labels)
        names = [spec.name for spec in metadata.inputs]
        self._frames_input = "frames" in names
        self._audio_input = "audio" in names
        extra = metadata.extra
        frames = int(extra.get("frames", 0)) if self._frames_input else 0
        self._size = int(extra.get("image_size", 0))
        self.window = WindowSpec(metadata.window_seconds, metadata.sample_rate, frames=frames,
                                 frame_rate=float(extra.get("frame_rate", 0.0)) if frames > 1 else 0.0,
                                 frame_at=extra.get("frame_at", FRAME_AT_END))
        self._audio = np.zeros((1, self.window.samples), np.float32)  # reused every call

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """``audio (samples,)`` float32 and ``frame (N, H, W, 3)`` uint8 RGB, oldest first -> ``(C,)`` scores."""
        feed = {}
        if self._audio_input:
            if audio.shape != (self.window.samples,):
                raise ValueError(f"avslowfast labeler: expected audio of shape ({self.window.samples},) at "
                                 f"{self.window.sample_rate} Hz, received {audio.shape}")
            self._audio[0] = audio
            feed["audio"] = self._audio
        if self._frames_input:
            if frame is None or frame.ndim != 4 or frame.shape[0] != self.window.frames:
                raise ValueError(f"avslowfast labeler: expected a clip of {self.window.frames} frames (N, H, W, 3), "
                                 f"received {None if frame is None else frame.shape}")
            feed["frames"] = preprocess_clip(frame, self._size)[None]
        scores = np.asarray(self._runner.infer(feed)["probs"], np.float32).reshape(-1)
        if scores.shape != (len(self.labels),):
            raise ValueError(f"avslowfast labeler output: expected {len(self.labels)} scores, received {scores.shape}")
        return scores
