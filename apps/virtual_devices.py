"""Devices that come and go on purpose: a private PulseAudio microphone and an ffmpeg camera.

For the reliability scenarios (``python -m apps.reliability``) and their tests. Neither touches
anything else on the machine: the PulseAudio daemon gets its own runtime folder, socket and
HOME (shared/notes/virtual-microphone.md); the camera is an ffmpeg process writing MJPEG to a
FIFO or serving it on a 127.0.0.1 port.

    with PrivatePulse() as pulse:          # this process's PortAudio now records its "pulse" device
        player = pulse.play_tone(seconds=60)
        pulse.kill()                        # the microphone is gone ...
        pulse.start()                       # ... and back (same socket, same device name)

Needs the ``pulseaudio``, ``pulseaudio-utils`` (pactl, paplay) and ``ffmpeg`` packages.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

__all__ = ["KINDS", "FfmpegCamera", "PrivatePulse", "write_tone", "write_wav_int16"]

SINK_RATE = 48000
#: How an :class:`FfmpegCamera` delivers its stream.
KINDS = ("fifo", "tcp", "http")


def write_wav_int16(path: str | os.PathLike[str], x: np.ndarray, rate: int) -> np.ndarray:
    """Write mono float samples as 16-bit PCM; returns what a float reader gets back (int16 / 32768)."""
    q = np.clip(np.round(np.asarray(x, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(q.tobytes())
    return q.astype(np.float32) / 32768.0


def write_tone(path: str | os.PathLike[str], seconds: float, rate: int = SINK_RATE, hz: float = 440.0) -> Path:
    """A sine at 0.3 of full scale as 16-bit WAV: something for the virtual microphone to hear."""
    t = np.arange(int(seconds * rate)) / rate
    write_wav_int16(path, 0.3 * np.sin(2 * np.pi * hz * t), rate)
    return Path(path)


class PrivatePulse:
    """A PulseAudio daemon of our own with a null sink ``vsink`` and the microphone ``vmic``
    (its monitor): what is played into the sink comes out of the microphone.

    While it is entered, this process's environment points PulseAudio clients (the ALSA
    ``pulse`` device inside PortAudio) at it.

    A null sink is clocked by a timer that sleeps for the lowest latency any of its clients
    asks for, 2 s when none asks; a recording stream that connects waits out the sleep in
    progress before its first block (measured here: 0.7–1.9 s with ``parec``, 1.4–2.0 s with
    PortAudio, on a sink just loaded). A sound card delivers every period instead. So the
    microphone keeps one low-latency recorder of its own (``parec --latency-msec=CLOCK_MS``,
    output discarded) whenever the sink exists, and a new stream gets its first block within
    a period (0.04 s measured), as from hardware. :meth:`kill` and :meth:`start` take the
    microphone away and bring it back; :meth:`unload_sink` / :meth:`load_sink` do the same
    with the daemon running.

    Raises:
        FileNotFoundError: pulseaudio or pactl is not installed (the message names the packages).
    """

    #: The sink to play into, and the PortAudio (ALSA) device that records the microphone.
    sink = "vsink"
    device = "pulse"
    #: The period the microphone delivers at (the latency its own recorder asks of the sink).
    CLOCK_MS = 50

    def __init__(self, rate: int = SINK_RATE) -> None:
        exe, pactl = shutil.which("pulseaudio"), shutil.which("pactl")
        if exe is None or pactl is None:
            raise FileNotFoundError("the virtual microphone needs PulseAudio: sudo apt-get install pulseaudio "
                                    "pulseaudio-utils libportaudio2")
        self.exe = exe
        self.rate = int(rate)
        self.runtime = Path(tempfile.mkdtemp(prefix="avlive-pulse-"))  # short: the socket path must fit 108 bytes
        (self.runtime / "pulse").mkdir()
        self.socket = self.runtime / "pulse" / "native"
        self.log = self.runtime / "pulse.log"
        env = dict(os.environ)
        env.update(XDG_RUNTIME_DIR=str(self.runtime), PULSE_SERVER=f"unix:{self.socket}", HOME=str(self.runtime))
        env.pop("PULSE_COOKIE", None)
        self.env = env
        self._saved: dict[str, str | None] = {}
        self._players: list[subprocess.Popen] = []
        self._clock: subprocess.Popen | None = None
        #: ``time.monotonic()`` when the sink last came up, and when it first delivered after that.
        self.loaded_at = self.delivering_at = float("nan")

    # ------------------------------------------------------------------ daemon
    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon (again) and wait until it answers."""
        subprocess.run(
            [self.exe, "--daemonize=yes", "--exit-idle-time=-1", "-n", "--use-pid-file=yes",
             f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
             f"--log-target=file:{self.log}"],
            env=self.env, check=True, timeout=30, capture_output=True)
        deadline = time.monotonic() + timeout
        while self.pactl("info").returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"private pulseaudio did not come up; its log: {self.log}")
            time.sleep(0.05)
        self.load_sink()

    def load_sink(self) -> None:
        """(Re)create the sink and the microphone, and make them the defaults; returns once the
        microphone delivers (:attr:`delivering_at`)."""
        self.loaded_at = time.monotonic()
        self.pactl("load-module", "module-null-sink", "sink_name=vsink", f"rate={self.rate}", "channels=1", check=True)
        self.pactl("load-module", "module-remap-source", "source_name=vmic", "master=vsink.monitor", check=True)
        self.pactl("set-default-sink", "vsink", check=True)
        self.pactl("set-default-source", "vmic", check=True)
        self._start_clock()

    def _start_clock(self, timeout: float = 5.0) -> None:
        """Start the microphone's own recorder and wait for its first block: from then on the
        sink runs at ``CLOCK_MS`` (the first block itself waits out the sleep in progress)."""
        self._stop_clock()
        clock = subprocess.Popen(["parec", "--device=vmic", f"--latency-msec={self.CLOCK_MS}", "--raw"],
                                 env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._clock = clock
        first = threading.Event()

        def drain() -> None:
            while clock.stdout.read(4096):
                if not first.is_set():
                    self.delivering_at = time.monotonic()
                    first.set()

        threading.Thread(target=drain, name="pulse-clock", daemon=True).start()
        if not first.wait(timeout):
            raise RuntimeError(f"the virtual microphone delivered nothing for {timeout:g} s; pulse log: {self.log}")

    def _stop_clock(self) -> None:
        if self._clock is not None:
            if self._clock.poll() is None:
                self._clock.kill()
            self._clock.wait()
            self._clock = None

    def unload_sink(self) -> None:
        """Remove the microphone and its sink with the daemon running (a device unplugged)."""
        self._stop_clock()
        self.pactl("unload-module", "module-remap-source")
        self.pactl("unload-module", "module-null-sink")

    def kill(self) -> None:
        """Kill the daemon (SIGKILL, as a crash): every client loses its stream."""
        self._stop_clock()
        pid_file = self.runtime / "pulse" / "pid"
        try:
            os.kill(int(pid_file.read_text().split()[0]), 9)
        except (OSError, ValueError):
            subprocess.run([self.exe, "--kill"], env=self.env, capture_output=True, timeout=30)
        deadline = time.monotonic() + 5.0
        while self.pactl("info").returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)

    def pactl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, timeout=30, check=check)

    # ------------------------------------------------------------------ sound
    def play(self, wav_path: str | os.PathLike[str]) -> subprocess.Popen:
        """``paplay`` a WAV file into the sink; returns the running process."""
        p = subprocess.Popen(["paplay", f"--device={self.sink}", os.fspath(wav_path)], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._players.append(p)
        return p

    # ------------------------------------------------------------------ this process
    def __enter__(self) -> "PrivatePulse":
        self.start()
        self._saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
        os.environ["XDG_RUNTIME_DIR"] = self.env["XDG_RUNTIME_DIR"]
        os.environ["PULSE_SERVER"] = self.env["PULSE_SERVER"]
        from realtime.devices import refresh_audio_devices

        refresh_audio_devices()  # PortAudio lists devices at init; the pulse PCM is new
        return self

    def __exit__(self, *exc) -> None:
        self._stop_clock()
        for p in self._players:
            if p.poll() is None:
                p.kill()
            p.wait()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        subprocess.run([self.exe, "--kill"], env=self.env, capture_output=True, timeout=30)
        shutil.rmtree(self.runtime, ignore_errors=True)


class FfmpegCamera:
    """A fake live camera: ffmpeg encodes a test pattern (MPEG-4 in NUT, which OpenCV opens at
    once and reads at camera pace: shared/notes/video-test-files.md) in real time, into a FIFO
    (``kind="fifo"``) or served on ``tcp://127.0.0.1:PORT`` (``kind="tcp"``) or
    ``http://127.0.0.1:PORT/camera.nut`` (``kind="http"``), ffmpeg listening for one reader.

    :attr:`url` is what ``--camera`` takes. :meth:`start` / :meth:`kill` make it appear and
    disappear (the reader sees the end of its stream).
    """

    def __init__(self, kind: str = "fifo", *, size: tuple[int, int] = (160, 120), fps: int = 10,
                 port: int = 0, folder: str | os.PathLike[str] | None = None) -> None:
        if shutil.which("ffmpeg") is None:
            raise FileNotFoundError("the fake camera needs ffmpeg: sudo apt-get install ffmpeg")
        if kind not in KINDS:
            raise ValueError(f"FfmpegCamera kind: expected one of {', '.join(KINDS)}, found {kind!r}")
        self.kind, self.size, self.fps = kind, size, int(fps)
        self._proc: subprocess.Popen | None = None
        if kind == "fifo":
            self._folder = Path(folder or tempfile.mkdtemp(prefix="avlive-cam-"))
            self.path = self._folder / "camera.nut"
            if not self.path.exists():
                os.mkfifo(self.path)
            self.url = str(self.path)
        else:
            self.port = port or _free_port()
            self.url = f"tcp://127.0.0.1:{self.port}" if kind == "tcp" else f"http://127.0.0.1:{self.port}/camera.nut"

    def start(self) -> None:
        w, h = self.size
        out = {"fifo": [str(getattr(self, "path", ""))], "tcp": [f"{self.url}?listen=1"],
               "http": ["-listen", "1", self.url]}[self.kind]
        self._proc = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
             "-i", f"testsrc2=size={w}x{h}:rate={self.fps}", "-c:v", "mpeg4", "-q:v", "5", "-f", "nut", "-y", *out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.kind != "fifo":  # a reader that connects before ffmpeg listens is refused
            deadline = time.monotonic() + 10.0
            while not _listening(self.port) and time.monotonic() < deadline:
                time.sleep(0.02)

    def kill(self) -> None:
        p, self._proc = self._proc, None
        if p is not None:
            p.kill()
            p.wait()

    def __enter__(self) -> "FfmpegCamera":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (Linux /proc/net/tcp; without probing, which
    would take ffmpeg's only connection)."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        time.sleep(0.5)
        return True
    for row in rows:
        fields = row.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            return True
    return False
