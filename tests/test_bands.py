"""realtime.bands: how much of a model's declared band a source's audio fills, and what follows."""
from __future__ import annotations

import math

import pytest

from realtime.bands import FULL_SHARE, USABLE_SHARE, band_share, fit_band

HTK = {"n_mels": 64, "mel_scale": "htk", "fmin": 0.0, "fmax": None}
SLANEY = {"n_mels": 64, "mel_scale": "slaney", "fmin": 0.0, "fmax": None}
LINEAR = {"n_mels": None, "fmin": 0.0, "fmax": None}


@pytest.mark.parametrize("frontend", [HTK, SLANEY, LINEAR, None])
def test_the_share_grows_with_the_rate_and_is_whole_at_the_models_rate(frontend):
    shares = [band_share(frontend, 48000, r)[0] for r in (4000, 8000, 11025, 16000, 22050, 32000, 44100, 48000)]
    assert shares == sorted(shares) and shares[-1] == 1.0 and 0.0 < shares[0] < 1.0
    assert band_share(frontend, 16000, 96000)[0] == 1.0  # more than the model needs is its whole band


def test_the_share_is_measured_on_the_models_own_axis():
    # 11.025 kHz audio reaches 5.5 kHz: most of a 0-8 kHz mel axis, a little over two thirds of a linear one
    htk = lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0)  # noqa: E731 - the HTK mel scale, written out
    assert band_share(HTK, 16000, 11025)[0] == pytest.approx(htk(5512.5) / htk(8000.0))  # 0.866
    assert band_share(LINEAR, 16000, 11025)[0] == pytest.approx(5512.5 / 8000)
    assert band_share(LINEAR, 48000, 22050)[0] == pytest.approx(11025 / 24000)
    # a front end that stops at fmax needs audio only up to fmax
    assert band_share({**HTK, "fmax": 5000.0}, 16000, 11025)[0] == 1.0
    share, low, high, scale = band_share({**SLANEY, "fmin": 50.0}, 32000, 16000)
    assert (low, high, scale) == (50.0, 16000.0, "slaney mel") and 0.5 < share < 1.0
    assert band_share({**HTK, "fmin": 6000.0}, 16000, 11025)[0] == 0.0  # the audio ends below the band


def test_verdicts_and_lines():
    full = fit_band("labeler", "crnn", 16000, HTK, 22050, named=False)
    assert full.verdict == "full" and "resampled to 16000 Hz" in full.line() and "whole 0-8 kHz band" in full.line()
    assert fit_band("labeler", "crnn", 16000, HTK, 16000, named=False).line().endswith("as it is: its whole 0-8 kHz band")
    assert fit_band("localizer", "l3", 48000, LINEAR, 44100, named=False).verdict == "full"  # 92 % of its bins
    low = fit_band("labeler", "crnn", 16000, HTK, 11025, named=False)
    assert FULL_SHARE > low.share >= USABLE_SHARE and low.verdict == "upsampled"
    assert low.line().startswith("warning: labeler crnn gets the 11025 Hz audio upsampled to 16000 Hz")
    out = fit_band("localizer", "l3", 48000, LINEAR, 22050, named=False)
    assert out.verdict == "left out"
    assert "localizer l3 left out" in out.line() and "46%" in out.line() and "--localizer PATH" in out.line()
    named = fit_band("localizer", "l3", 48000, LINEAR, 22050, named=True)
    assert named.verdict == "upsampled" and "but named" in named.line()
