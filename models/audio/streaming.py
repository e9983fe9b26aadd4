"""The front end for consecutive windows of one stream, computing only the frames that are new.

A live labeler sees overlapping windows: every hop the window moves on by the hop and all but a
hop's worth of its frames were already computed for the previous window. :class:`StreamingFrontEnd`
gives exactly :class:`models.audio.frontend.FrontEnd`'s features of each window (same config,
float64 arithmetic, float32 out) but keeps the previous window's frames and reuses every frame
whose samples are the same:

* A frame depends only on the ``win_length`` samples under its window (the rest of its ``n_fft``
  frame is zeros, and the magnitude of a spectrum does not depend on where in the frame those
  samples sit). A frame whose samples all lie inside the window is *interior*; the first and
  last few (with ``center``, those reaching into the zero padding) are *edge* frames and are
  computed every call.
* The new window is matched against the previous one: it must start a whole number ``j`` of
  ``hop_length`` s later (windows that end on the frame grid: ``WindowSpec.align``) and the
  overlapping samples must be equal (checked, so a gap or a restarted stream is never reused
  across). Then new frame ``t`` is old frame ``t + j`` wherever both are interior.
* Otherwise every frame is computed (``recomputed`` counts those calls).

The FFT is numpy's (only the ``win_length`` windowed samples, zero-filled to ``n_fft``), the mel
projection a sparse (banded) matrix product on the new frames only (:func:`banded_projection`).
Cost per call: the new frames (a hop's worth) plus the edge frames, instead of the whole window.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.audio.frontend import FrontEndConfig, hann_window, mel_filterbank
from models.core.live import WindowSpec, as_scores, scores_output

__all__ = ["StreamingFrontEnd", "StreamingLabeler", "banded_projection"]

#: Samples compared first when looking for where the new window starts in the previous one.
_PROBE = 16


def banded_projection(filterbank: np.ndarray):
    """``(n_mels, n_freqs)`` filterbank -> its transpose as a sparse ``(n_freqs, n_mels)`` matrix,
    for ``spectrum (R, n_freqs) @ projection``.

    A mel filter is nonzero on a narrow band of bins (EPIC's 2048-point FFT, 128 bands: 2,022 of
    131,200 weights), so the sparse product does ~2 multiply-adds per bin where the dense one does
    128. It also keeps the hop off BLAS: numpy's OpenBLAS runs a product of this size on every core
    and its threads then busy-wait for ~0.1 s, taking the cores from the ONNX Runtime session that
    runs next (paper-size Slow-Fast EPIC INT8 after a hop: 22.7 ms with the dense product, 16.9 ms
    with this one; README, "Benchmarks: one command").
    """
    from scipy import sparse

    return sparse.csr_matrix(np.asarray(filterbank, np.float64).T)


class StreamingFrontEnd:
    """Features ``(T, F)`` of windows of ``window_samples`` samples, reusing the previous
    window's frames (see the module docstring).

    Args:
        config: the feature definition (any :class:`FrontEndConfig`; ``stft_dtype`` is
            irrelevant: this computes in float64 and returns float32).
        window_samples: ``N``, the length of every window it is given.

    Attributes:
        frames: ``T``, frames per window (``config.num_frames(N)``).
        calls, frames_computed, frames_reused, recomputed: counters since the start.
    """

    def __init__(self, config: FrontEndConfig, window_samples: int) -> None:
        if not isinstance(config, FrontEndConfig):
            raise ValueError(f"StreamingFrontEnd: expected a FrontEndConfig, found {type(config).__name__}")
        n = int(window_samples)
        self.config = config
        self.window_samples = n
        self.frames = config.num_frames(n)
        if self.frames < 1:
            raise ValueError(f"StreamingFrontEnd: {n} samples give no frame (n_fft {config.n_fft}, "
                             f"padding {config.padding})")
        full = hann_window(config.win_length, config.n_fft)  # (n_fft,), the nonzero part centred
        nonzero = np.flatnonzero(full)
        self._a, self._b = int(nonzero[0]), int(nonzero[-1]) + 1  # support inside the n_fft frame
        self._taper = full[self._a:self._b].copy()  # (S,) S = support length
        before, after = config.padding
        self._before = before
        self._padded = np.zeros(before + n + after, np.float64)  # reused every call
        hop = config.hop_length
        starts = np.arange(self.frames) * hop - before + self._a  # first sample of each frame's support
        self._interior = (starts >= 0) & (starts + (self._b - self._a) <= n)  # (T,) bool
        self._mel_rows = None  # (n_mels, n_freqs) CSR: the projection's rows, so a hop multiplies without
        # building a transposed sparse matrix first, as ``spectrum @ projection`` would every call
        if config.n_mels:
            self._mel_rows = banded_projection(mel_filterbank(
                config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, config.mel_scale,
                config.mel_norm)).T.tocsr()
        self._features = np.zeros((self.frames, config.output_bins), np.float32)
        self._previous = np.zeros(n, np.float32)
        self._has_previous = False
        self._last_shift = 0
        self.calls = self.frames_computed = self.frames_reused = self.recomputed = 0

    def reset(self) -> None:
        """Forget the previous window (the next call computes every frame)."""
        self._has_previous = False

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """``wave (N,)`` float32 → ``(T, F)`` float32 features (a buffer reused by the next call:
        copy what you keep)."""
        n = self.window_samples
        if wave.shape != (n,):
            raise ValueError(f"StreamingFrontEnd: expected a window of shape ({n},), received {wave.shape}")
        self.calls += 1
        shift = self._find_shift(wave) if self._has_previous else None
        todo = np.ones(self.frames, bool)
        if shift is None:
            self.recomputed += 1
        else:
            j = shift // self.config.hop_length
            keep = self._interior[: self.frames - j] & self._interior[j:]  # interior in both windows
            kept = np.flatnonzero(keep)
            self._features[kept] = self._features[kept + j]  # ascending: each source read before overwritten
            todo[kept] = False
            self.frames_reused += kept.size
        self._compute(wave, np.flatnonzero(todo))
        self._previous[:] = wave
        self._has_previous = True
        return self._features

    def _find_shift(self, wave: np.ndarray) -> int | None:
        """``k``, a multiple of ``hop_length`` in ``[0, N)``, with ``wave[:N-k] == previous[k:]``; or
        None."""
        n, hop, prev = self.window_samples, self.config.hop_length, self._previous
        probe = min(_PROBE, n)
        candidates = [self._last_shift] if self._last_shift < n - probe else []
        if not (candidates and np.array_equal(prev[candidates[0]:candidates[0] + probe], wave[:probe])):
            starts = sliding_window_view(prev, probe)[::hop]  # (n - probe) // hop + 1 rows: at 0, hop, 2 hop ...
            candidates = (np.flatnonzero((starts == wave[:probe]).all(axis=1)) * hop).tolist()
        for k in candidates:
            if np.array_equal(wave[: n - k], prev[k:]):
                self._last_shift = k
                return k
        return None

    def _compute(self, wave: np.ndarray, rows: np.ndarray) -> None:
        """Compute frames ``rows`` of ``wave`` into the feature buffer."""
        if rows.size == 0:
            return
        cfg = self.config
        padded = self._padded
        padded[self._before:self._before + self.window_samples] = wave
        support = self._b - self._a
        view = sliding_window_view(padded, support)[self._a::cfg.hop_length]  # (>= T, S), frame t at row t
        segments = view[rows] * self._taper  # (R, S) float64
        spectrum = np.fft.rfft(segments, n=cfg.n_fft, axis=1)  # (R, n_freqs)
        s = spectrum.real ** 2 + spectrum.imag ** 2
        if cfg.power == 1.0:  # else power 2: |X|^2 as it is (FrontEndConfig allows 1 and 2)
            s = np.sqrt(s)
        if self._mel_rows is not None:
            s = (self._mel_rows @ s.T).T  # (R, n_mels); the same sums in the same order as s @ projection
        if cfg.log:
            s = np.log(s + cfg.log_offset)
        self._features[rows] = s
        self.frames_computed += rows.size


class StreamingLabeler:
    """A live labeler on a features-in export (``models.export.frontend_outside``): the streaming
    front end computes each hop's new frames, the runner runs the network on the window's
    features. Its windows end on the front end's frame grid (``WindowSpec.align = hop_length``),
    so consecutive windows share their frames; ``reset()`` (called by the scheduler after a gap)
    forgets them.

    Args:
        runner: an open runner whose input is ``(batch, T, F)`` features.
        metadata: its metadata: ``frontend`` (the feature definition), ``inputs[0]`` of shape
            ``("batch", T, F)``, the scores output as :func:`models.core.live.scores_output` finds it.
    """

    def __init__(self, runner, metadata) -> None:
        config = FrontEndConfig.from_dict(metadata.frontend)
        self.metadata = metadata
        self.labels = tuple(metadata.labels)
        self.window = WindowSpec(metadata.window_seconds, metadata.sample_rate, align=config.hop_length)
        self.frontend = StreamingFrontEnd(config, self.window.samples)
        spec = metadata.inputs[0]
        want = (self.frontend.frames, config.output_bins)
        if tuple(spec.shape[1:]) != want:
            raise ValueError(f"{spec.name}: expected features of shape (batch, {want[0]}, {want[1]}) for "
                             f"{self.window.samples} samples with this front end, the metadata says {spec.shape}")
        self._runner = runner
        self._input = spec.name
        self._output, self._how = scores_output(metadata)

    def reset(self) -> None:
        self.frontend.reset()

    def __call__(self, audio: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """``audio (window.samples,)`` float32 -> ``(C,)`` scores."""
        feats = self.frontend(audio)  # (T, F), only the new frames computed
        y = self._runner.infer({self._input: feats[None]})[self._output]
        scores = as_scores(y, self._how).reshape(-1)
        if scores.shape != (len(self.labels),):
            raise ValueError(f"labeler output: expected {len(self.labels)} scores, received {scores.shape}")
        return scores
