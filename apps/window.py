"""The avlive window (PySide6 + pyqtgraph): what a person looks at while avlive runs.

::

    ┌──────────────────────────────┬───────────────────────────┐
    │ camera + sound-source heatmap│ top classes, score bars   │
    │ (peak ringed; faded when the │ (smoothed, every hop)     │
    │  score is below threshold)   │                           │
    ├──────────────────────────────┴───────────────────────────┤
    │ event timeline: one row per class, onset → offset bars   │
    ├──────────────────────────────────────────────────────────┤
    │ log-mel spectrogram, the labeler's window marked         │
    ├──────────────────────────────────────────────────────────┤
    │ status: latencies, rates, dropped/late, backend, device  │
    └──────────────────────────────────────────────────────────┘

**Threads.** Everything here runs on the Qt (main) thread, driven by one ``QTimer`` that takes
the newest of everything from a :class:`realtime.live_view.LiveView`: the newest camera frame
(only when its index changed), the newest hop result and the spectrogram columns (computed on
the inference thread; here they are only copied into a preallocated image and blitted). No
model or signal processing runs on this thread. The pipeline runs on its own threads
(:class:`realtime.live_view.PipelineThread`); a missed hop or frame is simply never drawn.

**Keys.** space pauses the display (capture and inference go on), ``s`` saves a screenshot
(PNG), ``r`` starts / stops recording through the pipeline's mp4 recorder, ``c`` cycles the
heatmap's colour map, ``[`` / ``]`` lower / raise its opacity, ``q`` (or Esc) quits.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

__all__ = ["COLORMAPS", "AvliveWindow", "WindowConfig", "application", "models_line", "run_window"]

#: Heatmap colour maps ``c`` cycles through (each brightens with the value).
COLORMAPS = ("inferno", "magma", "plasma", "viridis", "turbo")

_ACTIVE = (255, 190, 60)
_IDLE = (70, 150, 170)
_PEAK = (0, 255, 255)
_PEAK_NO_SOURCE = (150, 150, 150)
_AXIS_WIDTH = 96  # pixels; the same for every plot, so the time axes line up


@dataclass(frozen=True)
class WindowConfig:
    """How the window looks and behaves.

    Attributes:
        colormap: heatmap colour map, one of :data:`COLORMAPS`.
        opacity: heatmap opacity at value 1 (a pixel's alpha grows with its value).
        faded: factor on the opacity while the heatmap's score is below its threshold.
        top_k: classes in the score bars.
        history_s: seconds the timeline and the spectrogram show (at most the view's history).
        analysis_window_s: the labeler's window, marked on the spectrogram (0: no mark).
        spectrogram_levels: the dB range (re a full-scale sine) spread over the spectrogram's colours.
        tick_ms: the draw timer's period.
        status_every_s: how often the status line is rewritten.
        save_dir: where ``s`` and ``r`` write their files.
        size: initial ``(width, height)`` in pixels.
    """

    colormap: str = "inferno"
    opacity: float = 0.7
    faded: float = 0.3
    top_k: int = 5
    history_s: float = 45.0
    analysis_window_s: float = 0.0
    spectrogram_levels: tuple[float, float] = (-80.0, -20.0)
    tick_ms: int = 8
    status_every_s: float = 0.25
    save_dir: Path = Path(".")
    size: tuple[int, int] = (1280, 860)

    def __post_init__(self) -> None:
        if self.colormap not in COLORMAPS:
            raise ValueError(f"WindowConfig.colormap: expected one of {', '.join(COLORMAPS)}, found {self.colormap!r}")
        for name in ("opacity", "faded"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WindowConfig.{name}: expected a value in [0, 1], found {getattr(self, name)!r}")
        if not self.history_s > 0:
            raise ValueError(f"WindowConfig.history_s: expected seconds > 0, found {self.history_s!r}")
        if not self.spectrogram_levels[0] < self.spectrogram_levels[1]:
            raise ValueError(f"WindowConfig.spectrogram_levels: expected (low, high) with low < high, "
                             f"found {self.spectrogram_levels!r}")


def heatmap_lut(name: str) -> np.ndarray:
    """(256, 4) uint8 RGBA: the colour map with alpha rising from 0 to 255 with the value, so
    cold cells leave the camera image alone (as ``realtime.overlay`` blends)."""
    rgb = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False)
    return np.concatenate([rgb[:, :3], np.arange(256, dtype=np.uint8)[:, None]], axis=1)


class _FrameItem(pg.ImageItem):
    """The camera image. Counts distinct frames actually painted (a repaint of the same frame
    does not count)."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self.frame_index = -1  # index of the frame set last
        self.painted_index = -1
        self.frames_painted = 0

    def set_frame(self, frame: np.ndarray, index: int) -> None:
        """Show ``frame`` ((H, W, 3) uint8, kept by reference), the source's frame ``index``."""
        self.setImage(frame, autoLevels=False)
        self.frame_index = index

    def paint(self, painter, *args) -> None:
        super().paint(painter, *args)
        if self.painted_index != self.frame_index:
            self.painted_index = self.frame_index
            self.frames_painted += 1


class _Rate:
    """A counter's increase per second, measured over at least ``min_s`` seconds."""

    def __init__(self, min_s: float = 0.2) -> None:
        self._min_s = min_s
        self._count = 0
        self._time = time.monotonic()
        self.value = 0.0

    def read(self, count: int) -> float:
        """The rate up to ``count`` now (the previous value when read again too soon)."""
        now = time.monotonic()
        if now - self._time >= self._min_s:
            self.value = (count - self._count) / (now - self._time)
            self._count, self._time = count, now
        return self.value


class AvliveWindow(QtWidgets.QWidget):
    """The window over a running :class:`realtime.live_view.LiveView`.

    Args:
        view: the pipeline's view (opened: its frame size and labels are known).
        config: looks and behaviour.
        info: one line naming the backend, device and models, for the status.
        pipeline: the :class:`realtime.live_view.PipelineThread` (None: nothing to watch); the
            window closes itself when it fails.

    Attributes:
        paused: the display is frozen (capture goes on).
        frames_shown: distinct camera frames handed to the image.
        shown_result: the hop result drawn last.
        shown_columns: the spectrogram's column count drawn last.
        saved: files written by ``s`` (screenshots), in order.
        rows: class → its timeline row (0 at the top).
        class_colours: the timeline bars' colour of every row.
    """

    closed = QtCore.Signal()

    def __init__(self, view, config: WindowConfig = WindowConfig(), *, info: str = "", pipeline=None) -> None:
        super().__init__()
        self.view = view
        self.config = config
        self.info = info
        self.pipeline = pipeline
        self.paused = False
        self.frames_shown = 0
        self.frames_skipped = 0  # captured but never handed to the image while not paused
        self.shown_result = None
        self.shown_columns = 0
        self.saved: list[Path] = []
        self._heatmap = None
        self._colormap = COLORMAPS.index(config.colormap)
        self._opacity = config.opacity
        self._record_path: Path | None = None
        self._recordings_seen = 0
        self._resumed = False
        self._message = ""
        self._quit = False
        self._latency: dict[str, float] = {}
        self._hop_rate, self._frame_rate, self._paint_rate, self._capture_rate = _Rate(), _Rate(), _Rate(), _Rate()
        self._last_status = 0.0
        classes = dict.fromkeys(label for labels in view.labels.values() for label in labels)
        self.rows = {label: i for i, label in enumerate(classes)}  # timeline row of every class, top first
        self._build()
        self.setWindowTitle(f"avlive — {view.source_name}")
        self.resize(*config.size)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._timer.start(config.tick_ms)

    # ---------------------------------------------------------------- layout

    def _build(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.status = QtWidgets.QLabel()
        self.status.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.status.setStyleSheet("QLabel { background: #111; color: #ddd; padding: 4px; }")
        self.status.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.status.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.status)
        self._build_camera()
        self._build_labels()
        self._build_timeline()
        self._build_spectrogram()
        grid = self.graphics.ci.layout
        for row, stretch in enumerate((9, 5, 4)):
            grid.setRowStretchFactor(row, stretch)
        grid.setColumnStretchFactor(0, 1)
        grid.setColumnStretchFactor(1, 1)

    def _build_camera(self) -> None:
        self.camera_view = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMouse=False)
        self.camera_view.setMenuEnabled(False)
        self.camera_item = _FrameItem()
        self.heatmap_item = pg.ImageItem(axisOrder="row-major")
        self.heatmap_item.setLookupTable(heatmap_lut(COLORMAPS[self._colormap]))
        self.heatmap_item.setOpacity(self._opacity)
        self.peak_item = pg.ScatterPlotItem(size=22, symbol="o", brush=None, pen=pg.mkPen(_PEAK, width=2))
        self.heatmap_text = pg.TextItem(anchor=(0, 1), color=(255, 255, 255), fill=pg.mkBrush(0, 0, 0, 140))
        for item in (self.camera_item, self.heatmap_item, self.peak_item, self.heatmap_text):
            self.camera_view.addItem(item)
        size = self.view.frame_size
        h, w = size if size is not None else (224, 224)
        self._frame = np.zeros((h, w, 3), np.uint8)  # the displayed frame, reused
        self.camera_item.set_frame(self._frame, -1)
        self.heatmap_text.setPos(2, h - 2)
        self.camera_view.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        if size is None:
            self.heatmap_text.setText("no camera")

    def _plot(self, row: int, col: int, colspan: int = 1, title: str | None = None) -> pg.PlotItem:
        """A plot the user cannot pan or zoom (the timer sets its ranges), its left axis as wide as
        every other plot's so their time axes line up."""
        p = self.graphics.addPlot(row=row, col=col, colspan=colspan, title=title)
        p.setMouseEnabled(False, False)
        p.hideButtons()
        p.setMenuEnabled(False)
        p.getAxis("left").setWidth(_AXIS_WIDTH)
        return p

    def _build_labels(self) -> None:
        self.labels_plot = p = self._plot(0, 1, title="top classes (smoothed scores)")
        p.setXRange(0.0, 1.0, padding=0.02)
        p.setYRange(-0.5, self.config.top_k - 0.5, padding=0.02)
        p.invertY(True)
        self.labels_bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[])
        p.addItem(self.labels_bars)

    def _build_timeline(self) -> None:
        n = max(1, len(self.rows))
        self.timeline_plot = p = self._plot(1, 0, colspan=2, title="events")
        p.setYRange(-0.5, n - 0.5, padding=0)
        p.invertY(True)
        p.getAxis("left").setTicks([[(i, label) for label, i in self.rows.items()]])
        self.class_colours = [pg.intColor(i, hues=n, values=1, maxValue=255, minValue=200) for i in range(n)]
        self._class_brushes = [pg.mkBrush(c) for c in self.class_colours]
        self.timeline_bars = pg.BarGraphItem(x0=[], x1=[], y=[], height=0.7, pen=None)
        p.addItem(self.timeline_bars)

    def _build_spectrogram(self) -> None:
        self.spectrogram_plot = p = self._plot(2, 0, colspan=2)
        p.setLabel("bottom", "stream time", units="s")
        self.timeline_plot.setXLink(p)
        spec = self.view.spectrogram
        self._spectrogram = np.full((spec.capacity, spec.n_mels), spec.floor, np.float32)  # (columns, bands), reused
        self.spectrogram_item = pg.ImageItem(self._spectrogram, levels=self.config.spectrogram_levels)
        self.spectrogram_item.setLookupTable(pg.colormap.get("viridis").getLookupTable(0.0, 1.0, 256, alpha=False))
        p.addItem(self.spectrogram_item)
        p.setYRange(0, spec.n_mels, padding=0)
        p.getAxis("left").setTicks([_band_ticks(spec.band_hz())])
        p.getAxis("left").setLabel("Hz")
        self.window_region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 255, 255, 40),
                                                 pen=pg.mkPen(255, 255, 255, 160))
        self.window_region.setVisible(self.config.analysis_window_s > 0)
        p.addItem(self.window_region)
        self._set_time_range(0.0)

    # ---------------------------------------------------------------- drawing (timer)

    def _tick(self) -> None:
        if self._quit or self._pipeline_failed():
            self.close()
            return
        if not self.paused:
            self._take_frame()
            result = self.view.latest()
            if result is not None and result is not self.shown_result:
                self._show_result(result)
        now = time.monotonic()
        if now - self._last_status >= self.config.status_every_s:
            self._last_status = now
            self._show_status()

    def _pipeline_failed(self) -> bool:
        p = self.pipeline
        return p is not None and not p.is_alive() and p.error is not None

    def _take_frame(self) -> None:
        previous = self.camera_item.frame_index
        got = self.view.frame(self._frame, after=previous)
        if got is None:
            return
        index = got[1]
        if previous >= 0 and not self._resumed:
            self.frames_skipped += max(0, index - previous - 1)
        self._resumed = False
        self.camera_item.set_frame(self._frame, index)
        self.frames_shown += 1

    def _show_result(self, result) -> None:
        self.shown_result = result
        for stage, ms in result.latency_ms.items():
            old = self._latency.get(stage)
            self._latency[stage] = ms if old is None else 0.8 * old + 0.2 * ms
        if result.heatmap is not self._heatmap:
            self._heatmap = result.heatmap
            self._show_heatmap(result.heatmap)
        self._show_labels(result)
        self._show_timeline(result)
        self._show_spectrogram()
        self._set_time_range(result.stream_time)

    def _show_heatmap(self, heatmap) -> None:
        if heatmap is None:
            self.heatmap_item.clear()
            self.peak_item.setData([])
            self.heatmap_text.setText("")
            return
        h, w = self._frame.shape[:2]
        m = np.asarray(heatmap.map, np.float32)
        self.heatmap_item.setImage(m, levels=(0.0, 1.0))
        self.heatmap_item.setRect(QtCore.QRectF(0, 0, w, h))
        px = (heatmap.peak[0] + 0.5) * w / m.shape[1]
        py = (heatmap.peak[1] + 0.5) * h / m.shape[0]
        self._apply_opacity()
        colour = _PEAK if heatmap.has_source else _PEAK_NO_SOURCE
        self.peak_item.setData([px], [py], pen=pg.mkPen(colour, width=2))
        if heatmap.has_source:
            self.heatmap_text.setText(f"source {heatmap.score:.2f} ≥ {heatmap.threshold:.2f}")
        else:
            self.heatmap_text.setText(f"no source on screen ({heatmap.score:.2f} < {heatmap.threshold:.2f})")

    def _apply_opacity(self) -> None:
        faded = self._heatmap is not None and not self._heatmap.has_source
        self.heatmap_item.setOpacity(self._opacity * (self.config.faded if faded else 1.0))

    def _show_labels(self, result) -> None:
        scored = [(float(s), label, name) for name, scores in result.smoothed.items()
                  for label, s in zip(self.view.labels.get(name, ()), scores)]
        scored.sort(key=lambda x: -x[0])
        top = scored[: self.config.top_k]
        active = {e.label for e in result.active}
        brushes = [pg.mkBrush(_ACTIVE if label in active else _IDLE) for _, label, _ in top]
        self.labels_bars.setOpts(x0=np.zeros(len(top)), y=np.arange(len(top)), width=[s for s, _, _ in top],
                                 height=0.7, brushes=brushes)
        self.labels_plot.getAxis("left").setTicks([[(i, label) for i, (_, label, _) in enumerate(top)]])

    def _show_timeline(self, result) -> None:
        bars = [(e.onset, e.offset, e.label) for e in self.view.events()]
        bars += [(e.onset, result.stream_time, e.label) for e in result.active]
        bars = [b for b in bars if b[2] in self.rows]
        rows = [self.rows[label] for _, _, label in bars]
        self.timeline_bars.setOpts(x0=[b[0] for b in bars], x1=[b[1] for b in bars], y=rows, height=0.7,
                                   brushes=[self._class_brushes[r] for r in rows])

    def _show_spectrogram(self) -> None:
        spec = self.view.spectrogram
        n = spec.copy_to(self._spectrogram)
        self.shown_columns = n
        self.spectrogram_item.setImage(self._spectrogram, autoLevels=False, levels=self.config.spectrogram_levels)
        self.spectrogram_item.setRect(QtCore.QRectF((n - spec.capacity) * spec.column_s, 0.0,
                                                    spec.capacity * spec.column_s, spec.n_mels))

    def _set_time_range(self, t: float) -> None:
        span = min(self.config.history_s, self.view.spectrogram.capacity * self.view.spectrogram.column_s)
        self.spectrogram_plot.setXRange(t - span, t, padding=0)
        w = self.config.analysis_window_s
        if w > 0:
            self.window_region.setRegion((t - w, t))

    def _show_status(self) -> None:
        result = self.view.latest()  # the pipeline's counters go on while the display is paused
        captured = self.view.frames_captured
        lines = [self._rates_line(result, captured), self._latency_line(result), self._counters_line(result),
                 self.info]
        self._poll_recorder()
        state = []
        if self.paused:
            state.append("PAUSED (capture goes on)")
        state.append(self._recording_state())
        if self.view.finished:
            state.append("stream ended")
        if self._message:
            state.append(self._message)
        state.append("keys: space pause · s screenshot · r record · c colours · [ ] opacity · q quit")
        lines.append(" | ".join(s for s in state if s))
        self.status.setText("\n".join(line for line in lines if line))

    def _rates_line(self, result, captured: int) -> str:
        t = f"{result.stream_time:8.2f} s" if result is not None else "   --    "
        hops = result.counters.hops if result is not None else 0
        return (f"{self.view.source_name}  t {t} | display {self._frame_rate.read(self.frames_shown):5.1f} fps "
                f"(painted {self._paint_rate.read(self.camera_item.frames_painted):5.1f}) | "
                f"capture {self._capture_rate.read(captured):5.1f} fps, {captured} frames | "
                f"updates {self._hop_rate.read(hops):4.1f} hops/s")

    def _latency_line(self, result) -> str:
        parts = [f"{stage} {ms:.1f}" for stage, ms in self._latency.items()]
        lag = f" | lag {result.lag_ms:.0f} ms" if result is not None else ""
        return "latency ms (mean of recent hops): " + ("  ".join(parts) or "--") + lag

    def _counters_line(self, result) -> str:
        if result is None:
            return "waiting for the first hop"
        c = result.counters
        lost = f"LOST: {', '.join(result.lost)} (reconnecting) · " if result.lost else ""
        devices = (f"devices lost {c.device_losses}, back {c.device_recoveries} · "
                   if c.device_losses else "")
        return (f"{lost}dropped/late: hops skipped {c.skips} · late reads {c.late_reads} · frame overwrites "
                f"{c.frame_overwrites} · missing frames {c.missing_frames} · resyncs {c.resyncs} · "
                f"{devices}audio gaps {c.gap_samples} samples · input overflows {c.input_overflows} · "
                f"frames not displayed {self.frames_skipped} · spectrogram columns dropped "
                f"{self.view.spectrogram.dropped}")

    def _poll_recorder(self) -> None:
        """Turn what the recorder did since the last look into the status message."""
        rec = self.view.recorder
        if rec is None:
            return
        error = rec.take_error()  # shown here, so the run does not end on it again
        if error is not None:
            self._record_path = None
            self._message = f"recording failed: {error}"
        if len(rec.recordings) > self._recordings_seen:
            self._recordings_seen = len(rec.recordings)
            self._message = f"saved {rec.recordings[-1]}"

    def _recording_state(self) -> str:
        rec = self.view.recorder
        if rec is None:
            return ""
        if rec.recording:
            return f"● REC {self._record_path or ''}".rstrip()
        if self._record_path is not None:
            return f"● REC starting {self._record_path}"
        return ""

    # ---------------------------------------------------------------- keys

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        key = event.key()
        Key = QtCore.Qt.Key
        actions = {Key.Key_Space: self.toggle_pause, Key.Key_S: self.save_screenshot, Key.Key_R: self.toggle_recording,
                   Key.Key_Q: self.close, Key.Key_Escape: self.close, Key.Key_C: self.next_colormap,
                   Key.Key_BracketLeft: lambda: self.change_opacity(-0.1),
                   Key.Key_BracketRight: lambda: self.change_opacity(0.1)}
        action = actions.get(key)
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        self._show_status()

    def toggle_pause(self) -> None:
        """Freeze or resume the display; capture and inference go on either way."""
        self.paused = not self.paused
        self._resumed = not self.paused  # frames that came while paused were not dropped by the display

    def save_screenshot(self) -> Path | None:
        """Write the window as a PNG into ``save_dir``; returns the path (None on failure)."""
        path = _free_path(self.config.save_dir, "png")
        if not self.grab().save(str(path), "PNG"):
            self._message = f"could not write {path}"
            return None
        self.saved.append(path)
        self._message = f"saved {path}"
        return path

    def toggle_recording(self) -> None:
        """Start recording into a new mp4 in ``save_dir``, or finish the one going (the inference
        thread does the writing; this returns at once)."""
        rec = self.view.recorder
        if rec is None:
            self._message = "no recorder in this run"
            return
        if self._record_path is None and not rec.recording:
            self._record_path = _free_path(self.config.save_dir, "mp4")
            rec.start_recording(self._record_path)
            self._message = ""
        else:
            rec.request_stop()
            self._record_path = None

    def next_colormap(self) -> None:
        self._colormap = (self._colormap + 1) % len(COLORMAPS)
        self.heatmap_item.setLookupTable(heatmap_lut(COLORMAPS[self._colormap]))
        self._message = f"colour map {COLORMAPS[self._colormap]}"

    def change_opacity(self, delta: float) -> None:
        self._opacity = float(np.clip(self._opacity + delta, 0.0, 1.0))
        self._apply_opacity()
        self._message = f"heatmap opacity {self._opacity:.1f}"

    def request_quit(self) -> None:
        """Close at the next timer tick (safe from a signal handler)."""
        self._quit = True

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self._timer.stop()
        super().closeEvent(event)
        self.closed.emit()


def models_line(models, backend: str, device: str) -> str:
    """``backend device: kind name (family), ...`` of a ``realtime.models.LiveModels``, for the status."""
    names = []
    for m in models.all:
        family = m.metadata.family if m.metadata is not None else m.source.kind
        names.append(f"{m.kind} {m.name} ({family})")
    return f"{backend} {device}: " + ", ".join(names)


def _band_ticks(band_hz: np.ndarray) -> list[tuple[float, str]]:
    """Left-axis ticks of the spectrogram: round frequencies at their (fractional) band position."""
    ticks = []
    for hz in (100, 250, 500, 1000, 2000, 4000, 8000, 16000):
        if band_hz[0] <= hz <= band_hz[-1]:
            pos = float(np.interp(hz, band_hz, np.arange(band_hz.size))) + 0.5
            ticks.append((pos, f"{hz // 1000}k" if hz >= 1000 else str(hz)))
    return ticks


def _free_path(folder: Path, suffix: str) -> Path:
    """``folder/avlive-YYYYmmdd-HHMMSS[-n].suffix`` that does not exist yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"avlive-{stamp}.{suffix}"
    n = 2
    while path.exists():
        path = folder / f"avlive-{stamp}-{n}.{suffix}"
        n += 1
    return path


def application() -> QtWidgets.QApplication:
    """The process's QApplication (made on first use)."""
    app = QtWidgets.QApplication.instance()
    return app if app is not None else QtWidgets.QApplication(["avlive"])


def run_window(view, pipeline, config: WindowConfig = WindowConfig(), info: str = "",
               open_timeout: float = 60.0) -> None:
    """Show the window over a running pipeline and return once it is closed (``q``, Esc, the
    window manager, Ctrl-C / SIGTERM, or the pipeline failing).

    Args:
        view: the pipeline's :class:`realtime.live_view.LiveView`.
        pipeline: the :class:`realtime.live_view.PipelineThread` feeding it (started).
        config: looks and behaviour.
        info: one line naming the backend, device and models.
        open_timeout: seconds to wait for the pipeline to open its sinks (it gave up or failed
            before: no window, the caller reports the pipeline's error).
    """
    application()
    deadline = time.monotonic() + open_timeout
    while not view.wait_open(0.05):
        if not pipeline.is_alive() or time.monotonic() > deadline:
            return
    window = AvliveWindow(view, config, info=info, pipeline=pipeline)
    loop = QtCore.QEventLoop()
    window.closed.connect(loop.quit)
    previous = _quit_on_signals(window)
    try:
        window.show()
        window.setFocus()
        loop.exec()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _quit_on_signals(window: AvliveWindow) -> dict:
    """Ctrl-C and SIGTERM close the window (the draw timer keeps Python running to notice)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: window.request_quit())
    return previous
