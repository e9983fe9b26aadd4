"""Sound classes of the synthetic world: one generator per class, each rendered at any sample rate.

Every class is a small parametric synthesiser. Two pairs differ in one generator parameter only, so
that a model must hear fine structure to tell them apart:

* ``chirp-up`` / ``chirp-down``: the same log sweep, played forwards or backwards;
* ``engine-am4`` / ``engine-am7``: the same engine hum, amplitude-modulated at 4 or 7 Hz.

A generator returns a waveform of unit RMS over its whole span; the scene scales it to the
event's SNR. Per-instance variation (pitch ±3 semitones, timing jitter, noise) comes from the
``EventVoice`` it is given, so an event sounds the same at every sample rate up to the
band limit and the noise draw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class EventVoice:
    """What makes one instance of a class unique.

    Attributes:
        duration: seconds the event sounds.
        pitch: frequency factor, 2 ** (semitones / 12).
        seed: seeds the instance's own randomness (jitter, noise, syllables).
    """

    duration: float
    pitch: float
    seed: int


def _time(voice: EventVoice, sample_rate: int) -> np.ndarray:
    """Sample times (n,) in seconds from the event's onset."""
    n = max(1, int(round(voice.duration * sample_rate)))
    return np.arange(n, dtype=np.float64) / sample_rate


def _tone(freq: np.ndarray | float, t: np.ndarray, sample_rate: int) -> np.ndarray:
    """A sine whose instantaneous frequency ``freq`` (Hz, scalar or per sample) is integrated."""
    freq = np.broadcast_to(np.asarray(freq, dtype=np.float64), t.shape)
    phase = TWO_PI * np.cumsum(freq) / sample_rate
    # Silence partials above 0.45 × sample rate instead of letting them alias.
    return np.where(freq < 0.45 * sample_rate, np.sin(phase), 0.0)


def _harmonics(f0: np.ndarray | float, amplitudes, t: np.ndarray, sample_rate: int) -> np.ndarray:
    """Harmonic k of ``f0`` at amplitude ``amplitudes[k-1]``; partials above 0.45 × rate are left out."""
    f0 = np.broadcast_to(np.asarray(f0, dtype=np.float64), t.shape)
    phase = TWO_PI * np.cumsum(f0) / sample_rate
    out = np.zeros_like(t)
    for k, a in enumerate(amplitudes, start=1):
        if a == 0.0:
            continue
        audible = k * f0 < 0.45 * sample_rate
        if not audible.any():
            break
        out += np.where(audible, a * np.sin(k * phase), 0.0)
    return out


def _bandpass_noise(rng: np.random.Generator, n: int, low: float, high: float, sample_rate: int) -> np.ndarray:
    """White noise band-limited to [low, high] Hz by zeroing FFT bins (n,)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    return np.fft.irfft(spectrum, n)


def _organ(v: EventVoice, sr: int) -> np.ndarray:
    t = _time(v, sr)
    f0 = 262.0 * v.pitch * (1.0 + 0.006 * np.sin(TWO_PI * 5.5 * t))
    return _harmonics(f0, [0.7**k for k in range(8)], t, sr)


def _sweep_train(v: EventVoice, sr: int, rising: bool) -> np.ndarray:
    """Repeated log sweeps 600↔2400 Hz (× pitch): 0.35 s sweep, 0.15 s pause."""
    t = _time(v, sr)
    period, sweep = 0.5, 0.35
    local = np.mod(t, period)
    frac = np.clip(local / sweep, 0.0, 1.0)
    if not rising:
        frac = 1.0 - frac
    freq = 600.0 * v.pitch * 4.0**frac
    gate = (local < sweep).astype(np.float64)
    return _harmonics(freq, [1.0, 0.35], t, sr) * gate


def _siren(v: EventVoice, sr: int) -> np.ndarray:
    t = _time(v, sr)
    freq = 950.0 * v.pitch * (1.0 + 0.3 * np.sin(TWO_PI * 0.8 * t))
    return _harmonics(freq, [1.0, 0.4, 0.2], t, sr)


def _engine(v: EventVoice, sr: int, am_rate: float) -> np.ndarray:
    t = _time(v, sr)
    rng = np.random.default_rng(v.seed)
    f0 = 70.0 * v.pitch * (1.0 + 0.01 * np.sin(TWO_PI * 0.3 * t + rng.uniform(0, TWO_PI)))
    hum = _harmonics(f0, [1.0 / k**1.2 for k in range(1, 25)], t, sr)
    am = 1.0 + 0.85 * np.sin(TWO_PI * am_rate * t + rng.uniform(0, TWO_PI))
    return hum * am


def _knock(v: EventVoice, sr: int) -> np.ndarray:
    """Percussive train: damped resonances struck about 5 times a second with jitter."""
    t = _time(v, sr)
    rng = np.random.default_rng(v.seed)
    out = np.zeros_like(t)
    strike = rng.uniform(0.0, 0.05)
    decay = int(0.12 * sr)
    tau = np.arange(decay) / sr
    while strike < v.duration:
        i = int(strike * sr)
        body = np.exp(-tau / 0.025) * (np.sin(TWO_PI * 420.0 * v.pitch * tau) + 0.6 * np.sin(TWO_PI * 1150.0 * v.pitch * tau))
        click = np.exp(-tau / 0.004) * rng.standard_normal(decay) * 0.5
        seg = (body + click)[: len(t) - i]
        out[i : i + len(seg)] += seg * rng.uniform(0.6, 1.0)
        strike += 0.2 + rng.uniform(-0.05, 0.05)
    return out


def _hiss(v: EventVoice, sr: int) -> np.ndarray:
    t = _time(v, sr)
    rng = np.random.default_rng(v.seed)
    return _bandpass_noise(rng, len(t), 2500.0 * v.pitch, min(6000.0 * v.pitch, 0.45 * sr), sr)


_VOWELS = ((700.0, 1200.0), (400.0, 2000.0), (300.0, 870.0), (600.0, 1700.0), (500.0, 1000.0))


def _speech(v: EventVoice, sr: int) -> np.ndarray:
    """Speech-like: a glottal harmonic series shaped by two formants that jump every syllable."""
    t = _time(v, sr)
    rng = np.random.default_rng(v.seed)
    n_syll = int(np.ceil(v.duration / 0.18)) + 1
    bounds = np.cumsum(rng.uniform(0.14, 0.24, n_syll))
    syll = np.minimum(np.searchsorted(bounds, t), n_syll - 1)
    vowels = rng.integers(0, len(_VOWELS), n_syll)
    f1 = np.array([_VOWELS[i][0] for i in vowels])[syll]
    f2 = np.array([_VOWELS[i][1] for i in vowels])[syll]
    f0 = 125.0 * v.pitch * (1.0 + 0.08 * np.sin(TWO_PI * 1.3 * t + rng.uniform(0, TWO_PI)))
    phase0 = TWO_PI * np.cumsum(f0) / sr
    out = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0
        gain = 1.0 / (1.0 + ((fk - f1) / 90.0) ** 2) + 0.6 / (1.0 + ((fk - f2) / 120.0) ** 2)
        out += np.where(fk < 0.45 * sr, gain * np.sin(k * phase0), 0.0)
    start = np.concatenate([[0.0], bounds[:-1]])[syll]
    length = (bounds - np.concatenate([[0.0], bounds[:-1]]))[syll]
    envelope = np.sin(np.pi * np.clip((t - start) / length, 0.0, 1.0)) ** 0.7
    return out * envelope


def _bell(v: EventVoice, sr: int) -> np.ndarray:
    t = _time(v, sr)
    strike_t = np.mod(t, 0.6)
    partials = (1.0, 2.0, 2.76, 5.4)
    out = sum(np.exp(-strike_t / (0.3 / r**0.5)) * _tone(700.0 * v.pitch * r, t, sr) / r for r in partials)
    return out


def _trill(v: EventVoice, sr: int) -> np.ndarray:
    t = _time(v, sr)
    freq = 3200.0 * v.pitch + 400.0 * v.pitch * np.sin(TWO_PI * 14.0 * t)
    gate = (np.mod(t, 0.4) < 0.3).astype(np.float64)
    return _tone(freq, t, sr) * gate


def _beep(v: EventVoice, sr: int) -> np.ndarray:
    t = _time(v, sr)
    gate = (np.mod(t, 1.0 / 3.0) < 1.0 / 6.0).astype(np.float64)
    return _harmonics(1500.0 * v.pitch, [1.0, 0.0, 0.3], t, sr) * gate


@dataclass(frozen=True)
class SoundClass:
    """A sound class with its generator and the (verb, noun) pair EPIC-style data uses."""

    name: str
    verb: str
    noun: str
    generate: Callable[[EventVoice, int], np.ndarray]


SOUND_CLASSES: tuple[SoundClass, ...] = (
    SoundClass("organ", "play", "organ", _organ),
    SoundClass("chirp-up", "whistle", "kettle", lambda v, sr: _sweep_train(v, sr, rising=True)),
    SoundClass("chirp-down", "whistle", "toy", lambda v, sr: _sweep_train(v, sr, rising=False)),
    SoundClass("siren", "wail", "siren", _siren),
    SoundClass("engine-am4", "run", "engine", lambda v, sr: _engine(v, sr, am_rate=4.0)),
    SoundClass("engine-am7", "run", "motor", lambda v, sr: _engine(v, sr, am_rate=7.0)),
    SoundClass("knock", "knock", "door", _knock),
    SoundClass("hiss", "spray", "steam", _hiss),
    SoundClass("speech", "talk", "person", _speech),
    SoundClass("bell", "ring", "bell", _bell),
    SoundClass("trill", "sing", "bird", _trill),
    SoundClass("beep", "beep", "alarm", _beep),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in SOUND_CLASSES)
CLOSE_PAIRS: tuple[tuple[str, str], ...] = (("chirp-up", "chirp-down"), ("engine-am4", "engine-am7"))

FADE_SECONDS = 0.01


def render_event(class_index: int, voice: EventVoice, sample_rate: int) -> np.ndarray:
    """One event's waveform (round(duration × sample_rate),) float64 with unit RMS.

    A 10 ms raised-cosine fade at both ends keeps onsets from clicking.
    """
    wave = SOUND_CLASSES[class_index].generate(voice, sample_rate).astype(np.float64)
    fade = min(int(FADE_SECONDS * sample_rate), len(wave) // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        wave[:fade] *= ramp
        wave[len(wave) - fade :] *= ramp[::-1]
    rms = np.sqrt(np.mean(wave**2))
    return wave / rms if rms > 0 else wave


def lowpass_sos(cutoff: float, sample_rate: int, order: int = 2) -> np.ndarray:
    """Butterworth low-pass sections, cutoff clipped below Nyquist."""
    from scipy.signal import butter  # imported on first use: scipy.signal takes seconds to import

    return butter(order, min(cutoff, 0.45 * sample_rate), btype="low", fs=sample_rate, output="sos")


def bandpass_sos(low: float, high: float, sample_rate: int, order: int = 2) -> np.ndarray:
    """Butterworth band-pass sections, upper edge clipped below Nyquist."""
    from scipy.signal import butter

    return butter(order, [low, min(high, 0.45 * sample_rate)], btype="band", fs=sample_rate, output="sos")
