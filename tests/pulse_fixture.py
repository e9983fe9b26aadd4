"""A private PulseAudio daemon with a virtual microphone, for tests that capture real audio.

The daemon (``apps.virtual_devices.PrivatePulse``) gets its own runtime folder, socket and HOME,
so it never touches another PulseAudio on the machine. It has a null sink ``vsink`` (48 kHz
mono) and a source ``vmic`` remapped from the sink's monitor: whatever is played into ``vsink``
comes out of the microphone. PortAudio reaches it through ALSA's ``pulse`` device
(shared/notes/virtual-microphone.md).

tests/conftest.py registers this module as a plugin, so a test names ``pulse_mic`` as an
argument and nothing more.
"""
from __future__ import annotations

import pytest

from apps.virtual_devices import PrivatePulse, write_wav_int16
from conftest import PORTAUDIO, PULSEAUDIO, require_system

__all__ = ["pulse_mic", "write_wav_int16"]


@pytest.fixture(scope="module")
def pulse_mic() -> PrivatePulse:
    """A running private PulseAudio (``device``: the PortAudio input that records it, ``rate``,
    ``play(wav)``, ``env`` for pulse clients); stopped afterwards.

    Needs pulseaudio, pulseaudio-utils (pactl, paplay) and libportaudio2: skips without them,
    naming the apt-get line, and fails under CI=true (conftest.require_system).
    """
    require_system(PULSEAUDIO, PORTAUDIO)
    with PrivatePulse() as pulse:
        yield pulse
