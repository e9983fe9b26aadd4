"""What each model gets from a source's audio: its whole band, an upsampled part of it, or nothing.

A model declares its band in its metadata: ``sample_rate`` (and ``frontend.fmin`` /
``frontend.fmax``, on the mel scale its front end uses when ``frontend.n_mels`` is set). Audio
recorded at a lower rate carries nothing above half its rate, so resampled up to the model's
rate it leaves the top of that band empty. How much is left empty is measured on the model's
own frequency axis (mel bands for a mel front end, STFT bins otherwise), where it matters:

* at least :data:`FULL_SHARE` filled: the model gets its band (44.1 kHz audio for a 48 kHz
  model leaves 8 % of its bins empty, as any anti-alias filter does);
* at least :data:`USABLE_SHARE` filled: it runs on the upsampled audio, with a warning;
* less: a model the run chose by default is left out, with a line saying how to run it anyway
  (name it); a model the user named runs, with the warning.

Each model gets one line saying which of these it is (:meth:`BandFit.line`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

__all__ = ["FULL_SHARE", "USABLE_SHARE", "BandFit", "band_share", "fit_band"]

#: A model whose band is filled this much gets "its whole band" (no warning).
FULL_SHARE = 0.9
#: Below this share of its band filled, a model chosen by default is left out.
USABLE_SHARE = 0.5


def _htk(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


def _slaney(f: float) -> float:
    """The Slaney (Auditory Toolbox) mel scale: linear to 1 kHz, logarithmic above."""
    return 3.0 * f / 200.0 if f < 1000.0 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def _scale(frontend: Mapping) -> tuple[str, callable]:
    if frontend.get("n_mels"):
        kind = frontend.get("mel_scale") or "htk"
        return f"{kind} mel", _slaney if kind == "slaney" else _htk
    return "linear", float


def band_share(frontend: Mapping | None, model_rate: int, audio_rate: int) -> tuple[float, float, float, str]:
    """The share of a model's band that audio at ``audio_rate`` fills.

    Args:
        frontend: the model's metadata ``frontend`` (``n_mels``, ``mel_scale``, ``fmin``,
            ``fmax``); None or empty: a linear axis from 0 Hz to half ``model_rate``.
        model_rate: the model's ``sample_rate`` in Hz.
        audio_rate: the source's rate in Hz.

    Returns:
        ``(share, low_hz, high_hz, scale)``: the filled share in [0, 1] on the model's axis,
        the band's edges, and the axis's name ("htk mel", "slaney mel" or "linear").
    """
    frontend = frontend or {}
    low = float(frontend.get("fmin") or 0.0)
    high = float(frontend.get("fmax") or model_rate / 2.0)
    name, to_axis = _scale(frontend)
    top = min(audio_rate / 2.0, high)
    if top <= low:
        return 0.0, low, high, name
    share = (to_axis(top) - to_axis(low)) / (to_axis(high) - to_axis(low))
    return max(0.0, min(1.0, share)), low, high, name


def _khz(hz: float) -> str:
    return f"{hz / 1000:.3g} kHz"


@dataclass(frozen=True)
class BandFit:
    """What one model gets from the source's audio.

    Attributes:
        kind: "labeler" or "localizer".
        name: the model's name.
        model_rate: its ``sample_rate``.
        audio_rate: the source's rate.
        share: the filled share of its band (:func:`band_share`).
        low_hz, high_hz: its band.
        scale: the axis the share is measured on.
        named: the user named it (``--labeler``, ``--localizer``, ``--models``), else the run
            chose it by default.
        flag: the option that names a model of its kind (for the line's advice).
    """

    kind: str
    name: str
    model_rate: int
    audio_rate: int
    share: float
    low_hz: float
    high_hz: float
    scale: str
    named: bool
    flag: str

    @property
    def verdict(self) -> str:
        """"full", "upsampled" (runs, with a warning) or "left out"."""
        if self.share >= FULL_SHARE:
            return "full"
        if self.share >= USABLE_SHARE or self.named:
            return "upsampled"
        return "left out"

    def line(self) -> str:
        """One line for stderr (without the ``avlive:`` prefix)."""
        who = f"{self.kind} {self.name}"
        band = f"{self.low_hz / 1000:.3g}-{_khz(self.high_hz)}"
        filled = f"{self.share:.0%} of its {band} band ({self.scale})"
        verdict = self.verdict
        if verdict == "full":
            how = ("as it is" if self.audio_rate == self.model_rate else
                   f"resampled to {self.model_rate} Hz" if self.audio_rate > self.model_rate else
                   f"upsampled to {self.model_rate} Hz")
            return f"{who} gets the {self.audio_rate} Hz audio {how}: its whole {band} band"
        if verdict == "upsampled":
            why = "" if self.share >= USABLE_SHARE else f", below the {USABLE_SHARE:.0%} a default model needs, but named"
            return (f"warning: {who} gets the {self.audio_rate} Hz audio upsampled to {self.model_rate} Hz: nothing "
                    f"above {_khz(self.audio_rate / 2)}, it fills {filled}{why}; expect lower scores")
        return (f"{who} left out: the {self.audio_rate} Hz audio fills {filled}, below the {USABLE_SHARE:.0%} it needs; "
                f"to run it on upsampled audio anyway name it ({self.flag} PATH), or give a {self.kind} made for "
                f"{self.audio_rate} Hz or less ({self.flag} PATH; {self.flag} none: no {self.kind})")


def fit_band(kind: str, name: str, model_rate: int, frontend: Mapping | None, audio_rate: int, *,
             named: bool) -> BandFit:
    """What a model of ``model_rate`` (and ``frontend``) gets from audio at ``audio_rate``."""
    share, low, high, scale = band_share(frontend, model_rate, audio_rate)
    flag = "--labeler" if kind == "labeler" else "--localizer"
    return BandFit(kind, name, int(model_rate), int(audio_rate), share, low, high, scale, named, flag)
