"""A private PulseAudio daemon with a virtual microphone, for tests that capture real audio.

The daemon gets its own runtime folder, socket and HOME, so it never touches another
PulseAudio on the machine. It has a null sink ``vsink`` (48 kHz mono) and a source ``vmic``
remapped from the sink's monitor: whatever is played into ``vsink`` comes out of the
microphone. PortAudio reaches it through ALSA's ``pulse`` device (shared/notes/virtual-microphone.md).

Use it by importing the fixture into a test module::

    from pulse_fixture import pulse_mic  # noqa: F401  (pytest finds the fixture by name)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import PORTAUDIO, PULSEAUDIO, require_system

SINK_RATE = 48000


@dataclass
class PulseMic:
    """The running virtual microphone.

    Attributes:
        env: Environment for pulse clients (paplay, pactl) that talk to this daemon.
        sink: Sink to play into.
        device: The sounddevice/PortAudio input device that records it.
        rate: The sink's sample rate in Hz.
    """

    env: dict[str, str]
    sink: str = "vsink"
    device: str = "pulse"
    rate: int = SINK_RATE

    def play(self, wav_path: str | os.PathLike[str]) -> subprocess.Popen:
        """Start ``paplay`` of a WAV file into the sink; returns the running process."""
        return subprocess.Popen(
            ["paplay", f"--device={self.sink}", os.fspath(wav_path)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def write_wav_int16(path: str | os.PathLike[str], x: np.ndarray, rate: int) -> np.ndarray:
    """Write mono float samples as 16-bit PCM; returns what a float reader gets back (int16 / 32768)."""
    q = np.clip(np.round(np.asarray(x, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(q.tobytes())
    return q.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def pulse_mic():
    """Start a private PulseAudio daemon with a virtual mic; stop it afterwards.

    Needs pulseaudio, pulseaudio-utils (pactl, paplay) and libportaudio2: skips without them,
    naming the apt-get line, and fails under CI=true (conftest.require_system).
    """
    require_system(PULSEAUDIO, PORTAUDIO)
    exe = shutil.which("pulseaudio")
    # A short path: the socket path must fit in sockaddr_un (108 bytes).
    runtime = Path(tempfile.mkdtemp(prefix="avlive-pulse-"))
    (runtime / "pulse").mkdir()
    socket = runtime / "pulse" / "native"
    env = dict(os.environ)
    env.update(XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER=f"unix:{socket}", HOME=str(runtime))
    env.pop("PULSE_COOKIE", None)
    log = runtime / "pulse.log"
    subprocess.run(
        [
            exe, "--daemonize=yes", "--exit-idle-time=-1", "-n", "--use-pid-file=yes",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket}",
            f"--load=module-null-sink sink_name=vsink rate={SINK_RATE} channels=1",
            "--load=module-remap-source source_name=vmic master=vsink.monitor",
            f"--log-target=file:{log}",
        ],
        env=env, check=True, timeout=30, capture_output=True,
    )
    try:
        for _ in range(100):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"private pulseaudio did not come up; its log:\n{log.read_text() if log.exists() else '(none)'}")
        subprocess.run(["pactl", "set-default-sink", "vsink"], env=env, check=True, capture_output=True)
        subprocess.run(["pactl", "set-default-source", "vmic"], env=env, check=True, capture_output=True)
        # This process's ALSA pulse plugin (inside PortAudio) finds the daemon through these.
        saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
        os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
        os.environ["PULSE_SERVER"] = env["PULSE_SERVER"]
        from realtime.devices import refresh_audio_devices

        refresh_audio_devices()  # PortAudio lists devices at init; the pulse PCM is new
        try:
            yield PulseMic(env=env)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        subprocess.run([exe, "--kill"], env=env, capture_output=True, timeout=30)
        shutil.rmtree(runtime, ignore_errors=True)
