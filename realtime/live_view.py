"""What a display needs from a running pipeline, without Qt: a newest-result mailbox sink, the
newest camera frame, a scrolling log-mel spectrogram and the recent events.

::

    capture ──▶ FrameRing ──latest(take=False)──────────────────────────────┐
            ──▶ AudioRing ──▶ [inference thread] Scheduler ──write──▶ LiveView   │
                                                  │ newest HopResult            │
                                                  │ ended events (history_s)    ├──▶ display thread
                                                  │ SpectrogramColumns (ring)   │    (takes the newest,
                                                  └ recorder (Mp4RecorderSink) ─┘     never waits)

:class:`LiveView` is an ordinary sink (``run_pipeline(..., view=...)`` puts it first): its
``write`` runs on the inference thread, the one owner of what it stores, and the display thread
only copies out, through short locks, whatever is newest when it looks. A display that misses
hops misses nothing lasting: ended events are kept for ``history_s`` seconds.

**Spectrogram: computed here, not on the display.** The log-mel columns are computed on the
inference thread, in the view's ``write``, from the audio that arrived since the previous hop
(read from the capture ring), with the project's one front end (:class:`models.audio.frontend.FrontEnd`)
in a cheap configuration (a 50 ms window every 40 ms, 64 bands), so the display thread does no
signal processing at all: it copies a ring of columns and blits it. The cost lands in the
``sinks`` latency stage (well under a millisecond per hop on a CPU). The columns are display
only; no model sees them.

:class:`PipelineThread` runs :func:`realtime.pipeline.run_pipeline` on a background thread, so
the thread that must own a GUI (the main thread) stays free for it.
"""
from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from models.core.events import LabeledEvent
from models.audio.frontend import FrontEnd, FrontEndConfig, hann_window, hz_to_mel, mel_to_hz

from .sinks import SinkContext

__all__ = ["LiveView", "LiveViewConfig", "PipelineThread", "SpectrogramColumns"]

_DB_PER_NEPER = 10.0 / math.log(10.0)  # ln power → dB


@dataclass(frozen=True)
class LiveViewConfig:
    """What the view keeps.

    Attributes:
        history_s: seconds of spectrogram and of ended events held (the display's time span).
        column_s: seconds per spectrogram column (the STFT hop).
        window_s: STFT window length in seconds (the FFT size is the next power of two).
        n_mels: mel bands.
        fmin, fmax: band edges in Hz (``fmax`` is clipped to the capture's Nyquist frequency).
    """

    history_s: float = 45.0
    column_s: float = 0.04
    window_s: float = 0.05
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        for name in ("history_s", "column_s", "window_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"LiveViewConfig.{name}: expected seconds > 0, found {value!r}")
        if self.history_s < 2 * self.column_s:
            raise ValueError(f"LiveViewConfig.history_s: expected at least two columns ({2 * self.column_s} s), "
                             f"found {self.history_s!r}")
        if isinstance(self.n_mels, bool) or not isinstance(self.n_mels, int) or self.n_mels < 1:
            raise ValueError(f"LiveViewConfig.n_mels: expected an int >= 1, found {self.n_mels!r}")
        if not 0 <= self.fmin < self.fmax:
            raise ValueError(f"LiveViewConfig.fmin, fmax: expected 0 <= fmin < fmax, found {self.fmin!r}, {self.fmax!r}")

    def frontend(self, sample_rate: int) -> FrontEndConfig:
        """The spectrogram's front end at the capture rate: log power mel (peak-1 triangles, so a
        tone keeps its power whatever the rate), no centring."""
        hop = max(1, int(round(self.column_s * sample_rate)))
        win = max(2, int(round(self.window_s * sample_rate)))
        n_fft = 1 << (win - 1).bit_length()
        nyquist = sample_rate / 2
        return FrontEndConfig(sample_rate=int(sample_rate), n_fft=n_fft, win_length=win, hop_length=hop,
                              center=False, power=2.0, n_mels=self.n_mels, fmin=min(self.fmin, 0.5 * nyquist),
                              fmax=min(self.fmax, nyquist), mel_norm=None, log=True, log_offset=1e-10)


class SpectrogramColumns:
    """Log-mel columns of the captured audio in a ring, written by one thread, copied by another.

    Column ``c`` is the front end's frame over samples ``[(c + 1) * hop - n_fft, (c + 1) * hop)``
    (zeros before the stream start), so it ends at stream time ``(c + 1) * column_s``. Values
    are dB relative to a full-scale sine (a 0 dBFS tone reads about 0 in its band; the bench
    world's audio lies mostly between -75 and -25). The ring holds the newest ``capacity``
    columns; everything is allocated in the constructor.

    Args:
        config: the view's settings.
        sample_rate: the capture rate.
        max_audio: the most samples one :meth:`update` may read (the capture ring's capacity);
            older columns are filled with the silence floor.
    """

    def __init__(self, config: LiveViewConfig, sample_rate: int, max_audio: int) -> None:
        fe = config.frontend(sample_rate)
        self.frontend_config = fe
        self._frontend = FrontEnd(fe).eval()
        self.sample_rate = int(sample_rate)
        self.hop = fe.hop_length
        self.n_fft = fe.n_fft
        self.column_s = self.hop / self.sample_rate
        self.n_mels = fe.n_mels
        self.capacity = max(2, int(round(config.history_s / self.column_s)))
        self._ref = 2.0 * math.log(float(hann_window(fe.win_length, fe.n_fft).sum()) / 2.0)  # ln power of a unit sine
        self.floor = (math.log(fe.log_offset) - self._ref) * _DB_PER_NEPER  # digital silence
        self._max_new = max(1, (int(max_audio) - self.n_fft) // self.hop + 1)
        self._audio = np.zeros(self.n_fft + (self._max_new - 1) * self.hop, np.float32)  # one update's samples
        self._ring = np.full((self.capacity, self.n_mels), self.floor, np.float32)  # (capacity, n_mels)
        self._floor_rows = self._ring.copy()  # silent columns to append from (read only)
        self._columns = 0  # columns written = index of the next column
        self._lock = threading.Lock()
        self.dropped = 0  # columns filled with the floor because their audio was gone

    @property
    def columns(self) -> int:
        """Columns written since the start."""
        return self._columns

    def band_hz(self) -> np.ndarray:
        """(n_mels,) centre frequency of every band in Hz."""
        fe = self.frontend_config
        mels = np.linspace(hz_to_mel(fe.fmin, fe.mel_scale), hz_to_mel(fe.fmax, fe.mel_scale), fe.n_mels + 2)
        return mel_to_hz(mels[1:-1], fe.mel_scale)

    def update(self, audio_ring, end_index: int) -> int:
        """Add every column whose audio ends at or before ``end_index`` (writer thread only).

        Args:
            audio_ring: the capture ring (``read(end_index, n, out)``).
            end_index: stream index one past the newest sample to use.

        Returns:
            The columns added (silent ones included).
        """
        target = int(end_index) // self.hop
        new = target - self._columns
        if new <= 0:
            return 0
        if new > self._max_new:  # the audio of the oldest ones is no longer held
            self._fill_floor(new - self._max_new)
            self.dropped += new - self._max_new
        first = self._columns
        start = (first + 1) * self.hop - self.n_fft
        end = target * self.hop
        n = end - start
        buf = self._audio[:n]
        lead = max(0, -start)  # before the stream start: zeros
        buf[:lead] = 0.0
        if lead < n and not audio_ring.read(end, n - lead, buf[lead:]):
            self._fill_floor(target - first)
            self.dropped += target - first
            return new
        with torch.inference_mode(), _one_torch_thread():
            feats = self._frontend(torch.from_numpy(buf)[None])[0].numpy()  # (target - first, n_mels) ln power
        feats -= self._ref  # → dB re a full-scale sine
        feats *= _DB_PER_NEPER
        self._put(feats)
        return new

    def copy_to(self, out: np.ndarray) -> int:
        """Copy the held columns, oldest first, into ``out`` (any thread).

        Args:
            out: (capacity, n_mels) float32; row ``j`` gets column ``columns - capacity + j``
                (the silence floor before the stream start).

        Returns:
            ``columns`` at the moment of the copy.
        """
        if out.shape != self._ring.shape:
            raise ValueError(f"SpectrogramColumns.copy_to: expected out of shape {self._ring.shape}, found {out.shape}")
        with self._lock:
            n = self._columns
            i = n % self.capacity
            k = self.capacity - i
            out[:k] = self._ring[i:]
            out[k:] = self._ring[:i]
        return n

    def _put(self, rows: np.ndarray, total: int | None = None) -> None:
        """Append ``total`` columns whose newest are ``rows`` (m, n_mels), ``total >= m`` (default m);
        only the newest ``capacity`` are held."""
        cap = self.capacity
        total = rows.shape[0] if total is None else total
        rows = rows[-cap:]
        m = rows.shape[0]
        with self._lock:
            i = (self._columns + total - m) % cap
            k = min(m, cap - i)
            self._ring[i:i + k] = rows[:k]
            self._ring[:m - k] = rows[k:]
            self._columns += total

    def _fill_floor(self, m: int) -> None:
        """Append ``m`` silent columns."""
        self._put(self._floor_rows[: min(m, self.capacity)], total=m)


@contextlib.contextmanager
def _one_torch_thread():
    """Run torch on the calling thread alone for a moment: for a hop's few small FFTs its thread
    pool costs far more than it saves (about 25 ms instead of 0.6 ms per hop on a busy 2-core
    machine). The previous setting is restored (a model running on torch keeps its threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LiveView:
    """A sink that keeps what a display shows, for the display thread to take.

    The inference thread calls ``open`` / ``write`` / ``close`` (the sink protocol); the display
    thread calls the rest, any time, and never waits for inference.

    Attributes:
        config: what is kept.
        recorder: the run's :class:`~realtime.sinks.Mp4RecorderSink` (set by
            ``run_pipeline``): ``start_recording(path)`` and ``request_stop()`` from the display.
    """

    def __init__(self, config: LiveViewConfig = LiveViewConfig()) -> None:
        self.config = config
        self.recorder = None
        self._context: SinkContext | None = None
        self._spectrogram: SpectrogramColumns | None = None
        self._latest = None
        self._events: deque[LabeledEvent] = deque()
        self._lock = threading.Lock()
        self._opened = threading.Event()
        self._closed = threading.Event()

    # ---------------------------------------------------------------- sink (inference thread)

    def open(self, context: SinkContext) -> None:
        ring = context.audio_ring
        self._spectrogram = SpectrogramColumns(self.config, context.sample_rate, ring.capacity)
        self._context = context
        self._opened.set()

    def write(self, result) -> None:
        self._spectrogram.update(self._context.audio_ring, result.end_index)
        if result.ended:
            oldest = result.stream_time - self.config.history_s
            with self._lock:
                self._events.extend(result.ended)
                while self._events and self._events[0].offset < oldest:
                    self._events.popleft()
        self._latest = result  # one reference, replaced whole

    def close(self) -> None:
        self._closed.set()

    # ---------------------------------------------------------------- display side (any thread)

    def wait_open(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline has opened its sinks (the frame size and labels are known)."""
        return self._opened.wait(timeout)

    @property
    def opened(self) -> bool:
        return self._opened.is_set()

    @property
    def finished(self) -> bool:
        """The pipeline stopped (its sinks are closed): nothing new will come."""
        return self._closed.is_set()

    @property
    def source_name(self) -> str:
        return self._context.source_name if self._context is not None else ""

    @property
    def labels(self) -> Mapping[str, tuple[str, ...]]:
        """Labeler name → its labels (empty before ``open``)."""
        return self._context.labels if self._context is not None else {}

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the camera frames, or None without video (or before ``open``)."""
        fr = self._context.frame_ring if self._context is not None else None
        return None if fr is None else (int(fr.height), int(fr.width))

    @property
    def frames_captured(self) -> int:
        """Camera frames captured so far (written to the frame ring)."""
        fr = self._context.frame_ring if self._context is not None else None
        return 0 if fr is None else int(fr.frames_written)

    @property
    def spectrogram(self) -> SpectrogramColumns | None:
        """The spectrogram columns (``copy_to`` them), None before ``open``."""
        return self._spectrogram

    def latest(self):
        """The newest :class:`~realtime.scheduler.HopResult`, or None before the first hop."""
        return self._latest

    def frame(self, out: np.ndarray, after: int = -1) -> tuple[float, int] | None:
        """Copy the newest camera frame into ``out`` ((H, W, 3) uint8) if its index is above
        ``after``; returns its ``(stream time, index)`` or None. The scheduler's counters are
        left alone (``FrameRing.latest(take=False)``)."""
        fr = self._context.frame_ring if self._context is not None else None
        return None if fr is None else fr.latest(out, after, take=False)

    def events(self) -> tuple[LabeledEvent, ...]:
        """The events that ended within the last ``history_s`` seconds, oldest first."""
        with self._lock:
            return tuple(self._events)


class PipelineThread(threading.Thread):
    """:func:`~realtime.pipeline.run_pipeline` on a background thread (``avlive-pipeline``).

    ``stop()`` ends the run as Ctrl-C does (every sink flushed); after ``join()``, ``outcome``
    holds how it ended, or ``error`` what it raised.

    Args:
        config, models, streams: as for ``run_pipeline``.
        view: the display's :class:`LiveView`.
        log: where the pipeline's one-line notes go.
    """

    def __init__(self, config, models, streams, view: LiveView, *, log="stderr") -> None:
        super().__init__(name="avlive-pipeline", daemon=True)
        self._args = (config, models, streams)
        self._view = view
        self._log = log
        self.stop_event = threading.Event()
        self.outcome = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from .pipeline import run_pipeline

        try:
            self.outcome = run_pipeline(*self._args, log=self._log, stop=self.stop_event, view=self._view)
        except BaseException as e:  # handed to whoever joins
            self.error = e
        finally:
            self._view.close()  # also when the run failed before opening its sinks

    def stop(self) -> None:
        self.stop_event.set()
