"""SpecAugment as the Slow-Fast Auditory Streams reference applies it (train only).

The reference (``slowfast/datasets/spec_augment.py`` of ekazakos/auditory-slow-fast;
``shared/REFERENCE.md`` 1.3) runs, on each training spectrogram: a time warp with ``W = 5``,
then **2** frequency masks, then **2** time masks. A mask's cells are set to the mean of the
whole spectrogram *as it is at that moment* (the reference recomputes ``spec.mean()`` before
each mask), not to 0. This module reproduces the mask sampling exactly and the warp in a
simpler form:

* **Masks** (per mask, for a mask axis of ``n`` bins/frames and a limit ``L`` -- 27 bins for
  frequency, 25 frames for time): ``f = randrange(L)``; if ``f == 0`` the remaining masks *of
  that axis* are skipped (the reference returns early there); otherwise
  ``f0 = randrange(n - f)`` and the mask covers ``[f0, randrange(f0, f0 + f))``, so a mask is
  at most ``L - 2`` wide (always ``< L``) and may be empty.
* **Time warp** (documented simplification): the reference calls a sparse image warp
  (polyharmonic-spline interpolation) with one control point on the centre frequency row --
  and passes the spectrogram's *value* at a random frame as that point's time coordinate,
  which looks like a bug (a log-mel value of about -5 is not a frame index). We implement the
  evident intent: a centre frame ``c`` drawn from ``[W, T - W)`` and a shift ``w`` from
  ``[-W, W)`` (``randrange(-W, W)``, as the reference draws it); the time axis is resampled
  piecewise-linearly so that output frame ``c + w`` shows input frame ``c`` while the first
  and last frames stay put, with linear interpolation between neighbouring frames. Every
  frequency bin is warped the same way (the reference's spline warp also varies little across
  frequency with a single control point). Spectrograms of ``T <= 2W`` frames are not warped.

Randomness comes only from the ``numpy.random.Generator`` passed in, so the dataset can draw
it from ``(seed, epoch, index)`` and every run, worker and resume gets the same augmentation.

Layout: ``(..., T, F)`` -- time on axis ``-2``, frequency on ``-1`` (the Slow-Fast
``C x T x F`` input). The reference permutes to ``C x F x T`` and back; the result is the same.

Example:
    >>> rng = np.random.default_rng([seed, epoch, index])
    >>> augmented = spec_augment(logmel, rng)              # (1, 400, 128) -> (1, 400, 128)
    >>> augmented, params = spec_augment(logmel, rng, return_params=True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["SpecAugmentConfig", "SpecAugmentParams", "Mask", "REFERENCE_SPECAUGMENT", "spec_augment", "time_warp"]


@dataclass(frozen=True)
class SpecAugmentConfig:
    """What SpecAugment does; the defaults are the reference's ``combined_transforms``.

    Attributes:
        time_warp: ``W``: maximum warp shift in frames (0 disables the warp).
        freq_masks: Number of frequency masks.
        freq_width: Frequency mask limit ``L``: widths are ``< L`` bins (27).
        time_masks: Number of time masks.
        time_width: Time mask limit: widths are ``< L`` frames (25).

    Raises:
        ValueError: A field is negative (or a width limit below 1); the message names it.
    """

    time_warp: int = 5
    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 2
    time_width: int = 25

    def __post_init__(self) -> None:
        for name in ("time_warp", "freq_masks", "time_masks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SpecAugmentConfig.{name}: expected an int >= 0, found {value!r}")
        for name in ("freq_width", "time_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpecAugmentConfig.{name}: expected an int >= 1, found {value!r}")


#: The reference's settings: W = 5, 2 frequency masks < 27 bins, 2 time masks < 25 frames.
REFERENCE_SPECAUGMENT = SpecAugmentConfig()


@dataclass(frozen=True)
class Mask:
    """One applied mask: ``axis`` ``"freq"`` or ``"time"``, cells ``[start, stop)`` set to ``value``."""

    axis: str
    start: int
    stop: int
    value: float

    @property
    def width(self) -> int:
        """``stop - start`` (0 for an empty mask)."""
        return self.stop - self.start


@dataclass(frozen=True)
class SpecAugmentParams:
    """What one call drew (for tests and debugging).

    Attributes:
        warp_centre: The warped frame ``c``, or None when no warp was applied.
        warp_shift: Its shift ``w`` (output frame ``c + w`` shows input frame ``c``).
        masks: The masks in the order applied (frequency masks first).
    """

    warp_centre: int | None = None
    warp_shift: int = 0
    masks: tuple[Mask, ...] = field(default_factory=tuple)


def time_warp(spec: torch.Tensor, centre: int, shift: int) -> torch.Tensor:
    """Piecewise-linear resampling of the time axis (``-2``): output frame ``centre + shift``
    shows input frame ``centre``; the first and last frames stay in place.

    Args:
        spec: ``(..., T, F)`` float tensor.
        centre: Input frame to move, ``0 < centre < T - 1``.
        shift: Frames to move it by; ``0 <= centre + shift <= T - 1``.

    Returns:
        A new tensor of the same shape and dtype.
    """
    frames = spec.shape[-2]
    last = frames - 1
    dest = centre + shift
    if not (0 < centre < last and 0 <= dest <= last):
        raise ValueError(f"time_warp: expected 0 < centre < {last} and 0 <= centre + shift <= {last}, "
                         f"found centre {centre}, shift {shift}")
    t = np.arange(frames, dtype=np.float64)
    if dest == 0:  # frames 0..centre collapse onto frame 0
        source = np.interp(t, [0.0, last], [float(centre), float(last)])
        source[0] = 0.0
    elif dest == last:
        source = np.interp(t, [0.0, last], [0.0, float(centre)])
        source[-1] = float(last)
    else:
        source = np.interp(t, [0.0, float(dest), float(last)], [0.0, float(centre), float(last)])
    lo = np.clip(np.floor(source).astype(np.int64), 0, last)
    hi = np.clip(lo + 1, 0, last)
    frac = torch.from_numpy((source - lo).astype(np.float64)).to(spec.dtype)
    lo_t, hi_t = torch.from_numpy(lo), torch.from_numpy(hi)
    a = spec.index_select(-2, lo_t)
    b = spec.index_select(-2, hi_t)
    return a + (b - a) * frac[:, None]


def _masks(spec: torch.Tensor, rng: np.random.Generator, axis: str, count: int, limit: int,
           applied: list[Mask]) -> None:
    """Apply ``count`` masks along ``axis`` in place, as the reference draws them."""
    dim = -1 if axis == "freq" else -2
    n = spec.shape[dim]
    for _ in range(count):
        f = int(rng.integers(0, limit))  # randrange(0, L)
        if f >= n:  # the reference would fail (randrange of an empty range); clamp instead
            f = n - 1
        if f <= 0:
            return  # the reference returns early when the drawn width is 0
        f0 = int(rng.integers(0, n - f))  # randrange(0, n - f)
        stop = int(rng.integers(f0, f0 + f))  # randrange(f0, f0 + f): the mask's end
        value = float(spec.mean())  # the mean as the spectrogram is now (earlier masks included)
        if dim == -1:
            spec[..., f0:stop] = value
        else:
            spec[..., f0:stop, :] = value
        applied.append(Mask(axis, f0, stop, value))


def spec_augment(spec: torch.Tensor, rng: np.random.Generator, config: SpecAugmentConfig = REFERENCE_SPECAUGMENT,
                 *, return_params: bool = False) -> torch.Tensor | tuple[torch.Tensor, SpecAugmentParams]:
    """Time warp, then frequency masks, then time masks (the reference's order).

    Args:
        spec: ``(..., T, F)`` float log-mel (e.g. ``(1, 400, 128)``); not modified.
        rng: The only source of randomness.
        config: What to apply (:data:`REFERENCE_SPECAUGMENT` by default).
        return_params: Also return what was drawn (:class:`SpecAugmentParams`).

    Returns:
        The augmented spectrogram (a new tensor), and the parameters if asked.

    Raises:
        ValueError: ``spec`` has fewer than 2 dimensions or is empty.
    """
    if not torch.is_tensor(spec) or spec.dim() < 2 or spec.numel() == 0:
        shape = tuple(spec.shape) if hasattr(spec, "shape") else type(spec).__name__
        raise ValueError(f"spec_augment: expected a non-empty (..., T, F) tensor, found {shape}")
    frames = spec.shape[-2]
    out = spec.clone()
    centre, shift = None, 0
    W = config.time_warp
    if W > 0 and frames > 2 * W:
        centre = int(rng.integers(W, frames - W))  # randrange(W, T - W)
        shift = int(rng.integers(-W, W))  # randrange(-W, W)
        if shift != 0:
            out = time_warp(out, centre, shift)
    masks: list[Mask] = []
    _masks(out, rng, "freq", config.freq_masks, config.freq_width, masks)
    _masks(out, rng, "time", config.time_masks, config.time_width, masks)
    if return_params:
        return out, SpecAugmentParams(centre, shift, tuple(masks))
    return out
