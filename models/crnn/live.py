"""The CRNN's live adapter: a streaming labeler that keeps the network's state between hops.

Every call is one hop (``extra["streaming"]["hop_seconds"]`` of new audio, the scheduler runs
the model exactly that often): the runner (any backend) takes the newest audio chunk, the
encoder caches (``state``) and the window's earlier encoder frames (``history``), and returns
the window's frame probabilities, the new encoder frames and the next state. The labeler
returns a :class:`models.core.live.FrameScores` of the hop's new frames, held back by
``lookahead_frames`` (so the backward GRU has seen that much of each frame's future), each
stamped with its centre relative to the window's end. ``reset()`` (which the scheduler calls
when the stream does not continue) zeroes the state and empties the history, as at a stream's
start.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from models.core.live import FrameScores, WindowSpec
from models.core.metadata import ModelMetadata


class StreamingLabeler:
    """A live :class:`models.core.live.Labeler` over a streaming CRNN runner.

    Args:
        runner: an open ``engines`` runner of the exported step (inputs ``audio``, ``state``,
            ``history``; outputs ``probs``, ``frames``, ``next_state``).
        metadata: its metadata, with ``extra["streaming"]`` (see
            :meth:`models.crnn.recipe.CRNNRecipe.streaming_settings`).
        lookahead_frames: overrides the metadata's setting.
    """

    def __init__(self, runner: Any, metadata: ModelMetadata, lookahead_frames: int | None = None):
        s = metadata.extra.get("streaming")
        if not isinstance(s, dict):
            raise ValueError("a CRNN model's metadata needs extra['streaming'] (export it with this version of avlive)")
        self.runner, self.metadata = runner, metadata
        self.labels = tuple(metadata.labels)
        self.window = WindowSpec(metadata.window_seconds, metadata.sample_rate, hop_seconds=float(s["hop_seconds"]),
                                 exact_hops=True)  # the state is the audio before the chunk's last hop
        self.frame_seconds = float(s["frame_seconds"])
        self.new_frames = int(s["new_frames"])
        self.window_frames = int(s["window_frames"])
        self.lookahead = int(s["lookahead_frames"] if lookahead_frames is None else lookahead_frames)
        self.newest_time = float(s["newest_frame_time"])
        self._state = np.zeros((1, int(s["state_size"])), np.float32)
        # history: a placeholder frame (the graph drops it), then a ring of the last
        # window_frames - new_frames encoder frames, newest last
        self._history = np.zeros((1, 1 + max(0, self.window_frames - self.new_frames), int(s["frame_dim"])),
                                 np.float32)
        self._filled = 0
        self._audio = np.zeros((1, self.window.samples), np.float32)

    def reset(self) -> None:
        self._state[:] = 0.0
        self._filled = 0

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> FrameScores:
        if audio.shape != (self.window.samples,):
            raise ValueError(f"labeler input: expected audio of shape ({self.window.samples},) at "
                             f"{self.window.sample_rate} Hz, received {audio.shape}")
        self._audio[0] = audio
        cap = self._history.shape[1] - 1
        out = self.runner.infer({"audio": self._audio, "state": self._state,
                                 "history": self._history[:, cap - self._filled:]})  # placeholder + filled
        probs = np.asarray(out["probs"], np.float32)[0]  # (filled + new, C)
        self._state[:] = out["next_state"]
        frames = np.asarray(out["frames"], np.float32)
        if cap:
            n = frames.shape[1]
            ring = self._history[:, 1:]
            if n >= cap:
                ring[:] = frames[:, -cap:]
            else:
                ring[:, :-n] = ring[:, n:]
                ring[:, -n:] = frames
            self._filled = min(cap, self._filled + n)
        total = probs.shape[0]
        end = total - self.lookahead
        if end <= 0:  # right after a reset, with look-ahead: the oldest frame there is
            end = 1
        start = max(0, end - self.new_frames)
        rows = probs[start:end]
        age = total - end  # frames between the last row given and the newest frame
        last_time = self.newest_time - age * self.frame_seconds
        return FrameScores.spaced(rows, self.frame_seconds, last_time)


def streaming_labeler(runner: Any, metadata: ModelMetadata) -> StreamingLabeler:
    """The family's live adapter (``Family.live``)."""
    return StreamingLabeler(runner, metadata)
