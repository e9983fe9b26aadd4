"""A microphone through sounddevice/PortAudio."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from ..devices import AudioDevice, import_sounddevice, refresh_audio_devices, resolve_input_device
from .base import Chunk, Source, SourceError, SourceLost, SourceTimeout

__all__ = ["MicSource"]

logger = logging.getLogger(__name__)


class MicSource(Source):
    """Live audio from an input device, down-mixed to mono and resampled to ``sample_rate``.

    The device is opened at its own rate and channel count (its default rate unless
    ``device_rate`` is given; at most 2 channels unless ``channels`` is given). The PortAudio
    callback ONLY copies the block into a preallocated staging ring and publishes the new
    write index (no allocation, no blocking, no I/O; sounddevice's ``Stream`` rules). Status
    flags are counted and exceptions are handed to the reader, which raises them. The reader
    (:meth:`read`, in the capture thread) drains the staging ring, down-mixes into a
    preallocated buffer and resamples with ``soxr.ResampleStream`` (delay-compensated; its
    output is the only per-read allocation).

    Audio addressing: sample ``i`` of the output is at ``i / sample_rate`` s after the device's
    first sample; :attr:`start_monotonic` estimates when that sample was recorded on
    ``time.monotonic()`` (from the first callback and PortAudio's ADC time), which the capture
    uses to put a live camera on the same clock. If the reader stalls long enough for the
    staging ring to fill, the newest input is dropped, counted in :attr:`overflows`, and
    replaced by silence of the same length, so sample indices keep matching time.

    Args:
        device: ``--mic`` spec: "default", an index, or a name substring (see
            :func:`realtime.devices.resolve_input_device`), or an already resolved
            :class:`~realtime.devices.AudioDevice`.
        sample_rate: Pipeline rate in Hz.
        device_rate: Open the device at this rate (None: its default, else 48000 / 44100 /
            the pipeline rate, whichever it accepts).
        channels: Device channels to open (None: min(2, what it has)).
        blocksize: Frames per callback (0: whatever the host API likes best).
        latency: PortAudio latency hint ("high", "low" or seconds).
        staging_seconds: Length of the staging ring between callback and reader.
        quality: soxr quality.

    Raises (on open):
        PortAudioNotFound: libportaudio2 is missing.
        DeviceNotFound: The spec matches no input device (the message lists them).
        SourceError: The device refuses every rate tried, or fails to start.
    """

    live = True

    def __init__(
        self,
        device: str | int | AudioDevice = "default",
        sample_rate: int = 16000,
        *,
        device_rate: int | None = None,
        channels: int | None = None,
        blocksize: int = 0,
        latency: str | float = "high",
        staging_seconds: float = 2.0,
        quality: str = "HQ",
    ) -> None:
        if int(sample_rate) <= 0:
            raise ValueError(f"MicSource sample_rate: expected > 0 Hz, found {sample_rate}")
        self.spec = device
        self.name = "mic"
        self.sample_rate = int(sample_rate)
        self.channels = 1
        self._device_rate_wanted = device_rate
        self._channels_wanted = channels
        self._blocksize = int(blocksize)
        self._latency = latency
        self._staging_seconds = float(staging_seconds)
        self._quality = quality
        self.device: AudioDevice | None = None
        self.device_rate: int | None = None
        self.device_channels: int | None = None
        self._stream = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._w = 0  # staging write index (frames), advanced by the callback
        self._r = 0  # staging read index, advanced by the reader
        self._dropped = 0  # input frames dropped in the callback (staging full)
        self._gap_done = 0  # dropped frames the reader has replaced by silence
        self._status_overflows = 0  # PortAudio input-overflow flags
        self._error: BaseException | None = None
        self._start_monotonic: float | None = None
        self._resampler = None
        self._in_samples = 0  # device-rate samples handed to the resampler
        self._delivered = 0  # output samples delivered
        self._overflows_reported = 0

    # -------------------------------------------------------------------------------- open/close
    def _negotiate(self, sd, dev: AudioDevice) -> tuple[int, int]:
        channels = int(self._channels_wanted or min(2, dev.channels))
        if self._device_rate_wanted:
            rates = [int(self._device_rate_wanted)]
        else:
            rates = list(dict.fromkeys([int(dev.sample_rate), 48000, 44100, self.sample_rate]))
        errors = []
        for rate in rates:
            try:
                sd.check_input_settings(device=dev.index, channels=channels, samplerate=rate, dtype="float32")
                return rate, channels
            except Exception as e:  # PortAudioError or ValueError: try the next rate
                errors.append(f"{rate} Hz: {e}")
        raise SourceError(f"microphone {dev} accepts none of the rates tried ({'; '.join(errors)}); pass device_rate=")

    def _open(self) -> None:
        sd = import_sounddevice()
        dev = self.spec if isinstance(self.spec, AudioDevice) else resolve_input_device(self.spec)
        rate, channels = self._negotiate(sd, dev)
        self.device, self.device_rate, self.device_channels = dev, rate, channels
        self.name = f"mic:{dev.name}"
        cap = max(int(self._staging_seconds * rate), 4096)
        self._staging = np.zeros((cap, channels), np.float32)
        self._cap = cap
        self._in = np.zeros((cap, channels), np.float32)  # reader's copy of one drain
        self._mono = np.zeros(cap, np.float32)
        self._zeros = np.zeros(min(cap, rate // 10 + 1), np.float32)
        self._w = self._r = self._dropped = self._gap_done = self._status_overflows = 0
        self._overflows_reported = 0
        self._in_samples = 0
        self._delivered = 0
        self._error = None
        self._start_monotonic = None
        self._ready.clear()
        self._resampler = None
        if rate != self.sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32", quality=self._quality)
        try:
            self._stream = sd.InputStream(
                device=dev.index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=self._blocksize,
                latency=self._latency,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as e:
            self._close()
            raise SourceError(f"cannot start microphone {dev} at {rate} Hz, {channels} ch: {e}") from e

    def reopen(self) -> "MicSource":
        """Close, re-scan the audio devices (PortAudio lists them once; a sound server or USB
        microphone that came back is a new device to it) and open the same ``--mic`` spec."""
        self.close()
        refresh_audio_devices()
        if isinstance(self.spec, AudioDevice):  # resolved once: find it again by name
            self.spec = self.spec.name
        return self.open()

    def _close(self) -> None:
        s, self._stream = self._stream, None
        try:
            if s is not None:
                try:
                    s.abort(ignore_errors=True)
                finally:
                    s.close(ignore_errors=True)
        finally:
            # sounddevice keeps the stream's callback (and so this source) alive after close: let
            # the resampler go now, or it outlives soxr's module at exit ("nanobind: leaked instance")
            self._resampler = None

    # ------------------------------------------------------------------------ PortAudio thread
    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        """Copy ``indata`` (frames, channels) into the staging ring; nothing else."""
        try:
            if status.input_overflow:
                self._status_overflows += 1
            if self._start_monotonic is None:
                lag = time_info.currentTime - time_info.inputBufferAdcTime
                if not 0.0 <= lag < 1.0:
                    lag = frames / self.device_rate
                self._start_monotonic = time.monotonic() - lag
            w = self._w
            free = self._cap - (w - self._r)  # _r only grows, so this is a lower bound
            n = frames if frames <= free else free
            if n < frames:
                self._dropped += frames - n
            i = w % self._cap
            k = min(n, self._cap - i)
            self._staging[i : i + k] = indata[:k]
            if k < n:
                self._staging[: n - k] = indata[k:n]
            with self._lock:
                self._w = w + n
            self._ready.set()
        except BaseException as e:  # never let it die silently in PortAudio's thread
            self._error = e
            self._ready.set()
            raise import_sounddevice().CallbackAbort from e

    # ------------------------------------------------------------------------------- reader
    @property
    def start_monotonic(self) -> float | None:
        return self._start_monotonic

    @property
    def input_latency(self) -> float:
        """PortAudio's input latency of the open stream (0 when closed)."""
        s = self._stream
        return float(s.latency) if s is not None else 0.0

    @property
    def overflows(self) -> int:
        """Staging-ring drops (input frames) plus PortAudio input-overflow callbacks."""
        return self._dropped + self._status_overflows

    @property
    def resampler_delay(self) -> int:
        if self._resampler is None:
            return 0
        return int(round(self._in_samples * self.sample_rate / self.device_rate)) - self._delivered

    def read(self, timeout: float | None = 2.0) -> Chunk:
        if self._stream is None:
            raise SourceError(f"{self.name}: read before open()")
        wait = 2.0 if timeout is None else float(timeout)
        deadline = time.monotonic() + wait
        while True:
            if self._error is not None:
                raise SourceLost(f"microphone {self.device} failed in its callback: {self._error!r}") from self._error
            with self._lock:
                w, r = self._w, self._r
            gap = self._dropped - self._gap_done
            if w > r or gap:
                break
            self._ready.clear()
            with self._lock:
                if self._w > self._r:
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._ready.wait(remaining):
                if not self._stream.active:
                    raise SourceLost(f"microphone {self.device} stopped")
                raise SourceTimeout(
                    f"microphone {self.device} delivered no audio in {wait:g} s "
                    "(muted, unplugged, or the sound server is idle?)"
                )
        if self.overflows > self._overflows_reported:
            self._overflows_reported = self.overflows
            logger.warning(
                "%s: input overflow (%d so far): audio was lost before capture read it; "
                "is the capture thread starved of CPU? (staging_seconds=%g)",
                self.name, self.overflows, self._staging_seconds,
            )
        if w > r:
            n = w - r
            i = r % self._cap
            k = min(n, self._cap - i)
            self._in[:k] = self._staging[i : i + k]
            if k < n:
                self._in[k:n] = self._staging[: n - k]
            with self._lock:
                self._r = w
            x = self._mono[:n]
            if self.device_channels == 1:
                np.copyto(x, self._in[:n, 0])
            else:
                np.mean(self._in[:n], axis=1, out=x)
        else:  # input was dropped while the staging ring was full: silence of the same length
            n = min(gap, self._zeros.shape[0])
            self._gap_done += n
            x = self._zeros[:n]
        self._in_samples += n
        y = x if self._resampler is None else self._resampler.resample_chunk(x)
        chunk = Chunk(audio=y, audio_start=self._delivered)
        self._delivered += y.shape[0]
        return chunk
