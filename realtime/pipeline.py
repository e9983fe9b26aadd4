"""The live pipeline, assembled: sources → capture → rings → scheduler → sinks, until the end.

::

    source(s) ──capture thread(s)──▶ AudioRing (the models' highest rate), FrameRing
                                        │
                                  Scheduler (inference thread: windows, models, rolling labels)
                                        │
         JsonLinesSink, EventsTsvSink, ScoresTsvSink, Mp4RecorderSink, SummarySink
                  (+ LiveView, first, when a window watches: realtime.live_view)
                                                   │ bounded queue
                                   recorder thread (overlay + encoding)

**Sources.** ``--source synthetic[:SEED]`` or a media file gives audio and video; ``--mic``
replaces the audio with a microphone, ``--camera`` the video with a camera (``none``: audio
only, labels without a heatmap). Without any of them: ``synthetic:200000`` (the bench preset,
first test seed). A run without audio (a silent video, a camera alone) is *video only*: the
models are fed silence on the same clock, so the recording and the heatmap's "no source" still
come out (with a note on stderr).

**Rings.** Audio at the models' highest rate (lower-rate models get resampled streams in the
scheduler), holding the longest window + its resampling look-back + a hop + 4 s of slack.
Frames: enough slots to look back from the newest frame to the frame a model wants (the window
centre for L³) plus a hop, plus 0.5 s, at the video's frame rate (30 when unknown).

**Running.** Live devices, and files or the world with ``realtime=True``, run threaded:
:class:`~realtime.capture.Capture` paces what has no clock of its own, the scheduler runs on its
own thread and skips hops when it falls behind, and the recorder drops frames when its thread
falls behind (counted in the summary and the JSON lines). With ``realtime=False`` and no live
device the run is *offline*: one thread reads the sources in stream order and runs every hop
exactly when its audio is in (:meth:`Scheduler.step`), as fast as the machine allows, and the
recorder waits for its thread instead of dropping, so results and recordings are
reproducible. A run ends at the end of the stream, after ``duration`` seconds of stream time,
or on Ctrl-C; every sink is closed (flushed) in every case, and the summary goes to stderr.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from .bands import fit_band
from .capture import Capture, RecoveryPolicy
from .devices import resolve_camera, resolve_input_device
from .models import LiveModels
from .rings import AudioRing, FrameRing
from .scheduler import Scheduler, SchedulerConfig
from .sinks import EventsTsvSink, JsonLinesSink, Mp4RecorderSink, RecorderConfig, RunSummary, ScoresTsvSink, SummarySink
from .sources import CameraSource, FileSource, MicSource, SyntheticSource
from .sources.base import Chunk, EndOfStream, Source

__all__ = [
    "DEFAULT_HOP_S",
    "DEFAULT_SEED",
    "DEFAULT_SOURCE",
    "PipelineConfig",
    "PipelineError",
    "RunOutcome",
    "SilenceSource",
    "Streams",
    "build_streams",
    "check_sources",
    "frame_slots",
    "audio_capacity",
    "localizer_every_for",
    "plays_the_world",
    "LOCALIZER_PERIOD_S",
    "run_pipeline",
]

#: The first test seed of the bench preset: the default source.
DEFAULT_SEED = 200000
DEFAULT_SOURCE = f"synthetic:{DEFAULT_SEED}"

#: The pipeline hop when neither the user nor the labeler (``metadata.extra["hop_seconds"]``) sets one.
DEFAULT_HOP_S = 0.25
#: How often the localizer runs when not told, in seconds: every third hop of the default hop.
LOCALIZER_PERIOD_S = 0.75

AUDIO_SLACK_S = 4.0  # audio ring seconds beyond what the windows need (room for a slow hop)
FRAME_SLACK_S = 0.5


class PipelineError(ValueError):
    """A source or option the pipeline cannot use; the message is one line for the user."""


def localizer_every_for(hop_s: float) -> int:
    """Hops between localizer runs so that it runs about every :data:`LOCALIZER_PERIOD_S`
    seconds at a pipeline hop of ``hop_s`` (3 at 0.25 s, 1 at 0.75 s or more)."""
    return max(1, int(round(LOCALIZER_PERIOD_S / hop_s)))


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs besides the models (the command's options).

    Attributes:
        source: ``"synthetic[:SEED[:PRESET]]"`` or a media file; None: the default unless
            ``mic`` or ``camera`` names a device.
        camera: camera index, path or URL; ``"none"`` for no video; None: the source's video.
        mic: ``"default"``, an index or a name substring; None: the source's audio.
        hop_s: seconds between hops.
        localizer_every: the localizer runs every n-th hop.
        realtime: pace files and the world in real time (live devices are never throttled).
        av_offset_ms: added to every frame's stream time (negative when the picture lags).
        duration: stop after this many seconds of stream time (None: at the end / Ctrl-C).
        jsonl: ``"-"`` (stdout), a file, or None for no JSON lines.
        events_out: DCASE strong-label TSV of the events, or None.
        scores_out: the first labeler's raw scores as a score table TSV
            (:class:`~realtime.sinks.ScoresTsvSink`), or None.
        record: mp4 of the camera with the overlay and the audio, or None.
        recorder: the recording's format and queue; ``when_full=None`` drops frames when the
            recorder falls behind in live runs and waits for it in offline runs.
        summary: stream the summary is printed to at the end; ``"stderr"`` (the default):
            ``sys.stderr`` at that moment; None: not printed.
        recovery: what happens when a live microphone or camera stops delivering
            (``realtime.capture.RecoveryPolicy``: counted as lost after ``loss_after_s``, reopened
            with backoff, given up after ``give_up_after_s``, None: never).
    """

    source: str | None = None
    camera: str | None = None
    mic: str | None = None
    hop_s: float = 0.25
    localizer_every: int = 3
    realtime: bool = True
    av_offset_ms: float = 0.0
    duration: float | None = None
    jsonl: str | None = "-"
    events_out: str | None = None
    scores_out: str | None = None
    record: str | None = None
    recorder: RecorderConfig = RecorderConfig()
    summary: TextIO | str | None = field(default="stderr", compare=False)
    recovery: RecoveryPolicy = RecoveryPolicy()

    def __post_init__(self) -> None:
        if not (isinstance(self.hop_s, (int, float)) and math.isfinite(self.hop_s) and self.hop_s > 0):
            raise PipelineError(f"--hop: expected seconds > 0, found {self.hop_s!r}")
        if isinstance(self.localizer_every, bool) or not isinstance(self.localizer_every, int) or self.localizer_every < 1:
            raise PipelineError(f"--localizer-every: expected an int >= 1, found {self.localizer_every!r}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise PipelineError(f"--duration: expected seconds > 0, found {self.duration!r}")
        if not math.isfinite(self.av_offset_ms):
            raise PipelineError(f"--av-offset-ms: expected a finite number of milliseconds, found {self.av_offset_ms!r}")
        if not MIN_HOP_S <= self.hop_s <= MAX_HOP_S:
            raise PipelineError(f"--hop: expected seconds in [{MIN_HOP_S:g}, {MAX_HOP_S:g}] (a hop is how often the "
                                f"labels update), found {self.hop_s!r}")
        if self.duration is not None and self.duration < self.hop_s:
            raise PipelineError(f"--duration {self.duration:g}: shorter than one hop (--hop {self.hop_s:g} s), so "
                                f"nothing would run")
        for flag, path in (("--events-out", self.events_out), ("--scores-out", self.scores_out), ("--record", self.record),
                           ("--jsonl", None if self.jsonl == "-" else self.jsonl)):
            if path is not None:
                _check_output_path(flag, Path(path))
        if self.record is not None and Path(self.record).suffix.lower() not in RECORD_SUFFIXES:
            raise PipelineError(f"--record {self.record}: expected a video file name ending in "
                                f"{', '.join(RECORD_SUFFIXES)}, found {Path(self.record).suffix or 'no suffix'}")


#: Limits of --hop: below 10 ms the per-hop overhead is all there is; above 5 s labels are stale.
MIN_HOP_S, MAX_HOP_S = 0.01, 5.0
#: Containers the recorder writes (PyAV picks the muxer from the suffix).
RECORD_SUFFIXES = (".mp4", ".mkv", ".mov")


def _check_output_path(flag: str, path: Path) -> None:
    """Refuse, before the run, an output that could not be written at its end."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise PipelineError(f"{flag} {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise PipelineError(f"{flag} {path}: is a folder; expected a file name in it")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PipelineError(f"{flag} {path}: not writable here (permissions of {folder if not path.exists() else path})")
    try:  # a folder that says writable but is not (/proc, a read-only mount)
        fd, probe = tempfile.mkstemp(prefix=".avlive-probe-", dir=folder)
    except OSError as e:
        raise PipelineError(f"{flag} {path}: cannot write in {folder} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)


class SilenceSource(Source):
    """Silence on the stream clock, for runs without audio (video only): the hop clock runs and
    the models see an empty scene. Blocks of ``block_s``; ends after ``seconds`` (None: never)."""

    def __init__(self, sample_rate: int, seconds: float | None = None, block_s: float = 0.02) -> None:
        self.name = "silence"
        self.sample_rate = int(sample_rate)
        self.channels = 1
        self._block = np.zeros(max(1, int(round(block_s * sample_rate))), np.float32)
        self._end = None if seconds is None else int(round(seconds * sample_rate))
        self._pos = 0

    def _open(self) -> None:
        self._pos = 0

    def _close(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> Chunk:
        n = self._block.size if self._end is None else min(self._block.size, self._end - self._pos)
        if n <= 0:
            raise EndOfStream(self.name)
        chunk = Chunk(audio=self._block[:n], audio_start=self._pos)
        self._pos += n
        return chunk


@dataclass
class Streams:
    """The sources of a run (not yet opened, except a camera whose frame size had to be learnt).

    Attributes:
        audio: the audio source (a :class:`SilenceSource` for video only).
        video: the video source, or None (audio only).
        name: the run's source name (the events' ``filename``, the JSON lines' ``source``).
        sample_rate: the capture rate.
        frame_size: ``(width, height)`` of the frames, or None.
        fps: the video's nominal rate (30 when unknown), or None.
        live: whether any source is a live device.
        notes: one-line remarks for stderr.
    """

    audio: Source
    video: Source | None
    name: str
    sample_rate: int
    frame_size: tuple[int, int] | None
    fps: float | None
    live: bool
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        for s in {id(s): s for s in (self.audio, self.video) if s is not None}.values():
            s.close()


def check_sources(config: PipelineConfig) -> None:
    """Fail fast, before any model loads, on a device or file that is not there.

    Raises:
        DeviceNotFound: ``--mic`` or ``--camera`` matches nothing (the message lists the devices).
        PortAudioNotFound: ``--mic`` without the PortAudio library (names the Debian package).
        PipelineError: a ``--source`` that is neither ``synthetic[:SEED]`` nor an existing file.
    """
    if config.mic is not None:
        resolve_input_device(config.mic)
    if config.camera not in (None, "none"):
        resolve_camera(config.camera)
    src = config.source
    if src is not None and not _is_synthetic(src) and not os.path.isfile(src):
        raise PipelineError(f"--source {src}: no such file (expected synthetic[:SEED[:PRESET]] or a media file)")


#: ``--source`` forms that name live devices, as ``--mic``/``--camera`` do (several streams name
#: each stream's devices this way).
DEVICE_SOURCE_FORMS = "mic:DEVICE, camera:CAMERA or camera:CAMERA+mic:DEVICE"


def with_device_source(config: PipelineConfig) -> PipelineConfig:
    """``config`` with a ``--source`` that names devices (:data:`DEVICE_SOURCE_FORMS`) turned into
    the ``--mic``/``--camera`` options it stands for; any other config unchanged (an existing file
    whose name starts with ``mic:`` stays a file).

    Raises:
        PipelineError: a malformed device source, or one given beside ``--mic``/``--camera``.
    """
    src = config.source
    if src is None or not src.startswith(("mic:", "camera:")) or os.path.exists(src):
        return config
    devices: dict[str, str] = {}
    for part in src.split("+"):
        kind, _, name = part.partition(":")
        if kind not in ("mic", "camera") or kind in devices or (kind == "camera" and not name):
            raise PipelineError(f"--source {src}: expected {DEVICE_SOURCE_FORMS}")
        devices[kind] = name or "default"
    if config.mic is not None or config.camera not in (None, "none"):
        raise PipelineError(f"--source {src} names its devices itself; leave out --mic/--camera")
    return dataclasses.replace(config, source=None, mic=devices.get("mic"),
                               camera=devices.get("camera", config.camera))


def plays_the_world(config: PipelineConfig) -> bool:
    """Whether the run's sound comes from the synthetic world (``--source synthetic…`` or no
    source at all), not from a microphone, a camera or a file."""
    if config.mic is not None:
        return False
    if config.source is None:
        return config.camera in (None, "none")
    return _is_synthetic(config.source)


def _is_synthetic(text: str) -> bool:
    return text == "synthetic" or text.startswith("synthetic:")


def _synthetic(text: str, sample_rate: int) -> SyntheticSource:
    _, _, rest = text.partition(":")
    seed, _, preset = rest.partition(":")
    if seed and not seed.isdigit():
        raise PipelineError(f"--source {text}: expected synthetic[:SEED[:PRESET]] with an integer seed")
    try:
        return SyntheticSource(int(seed) if seed else DEFAULT_SEED, preset or "bench", sample_rate)
    except ValueError as e:
        raise PipelineError(f"--source {text}: {e}") from None


def build_streams(config: PipelineConfig, models: LiveModels) -> Streams:
    """The run's sources, at the models' capture rate.

    A file's audio below a model's rate is upsampled for it; one note per model says what it
    gets, and a default model the audio cannot serve is left out of ``models``
    (:mod:`realtime.bands`).

    Raises:
        PipelineError: a file without audio or video, a file whose audio no model can use
            (each model's line says why), a camera that gives no frame size.
        DeviceNotFound, PortAudioNotFound, MediaDecodeError: from the devices and files.
    """
    notes: list[str] = []
    want_video = config.camera != "none"
    source = config.source
    if source is None and config.mic is None and config.camera in (None, "none"):
        source = DEFAULT_SOURCE
    if source is not None and not _is_synthetic(source) and config.mic is None:
        notes += _fit_file_audio(source, models, want_video=want_video, camera=config.camera not in (None, "none"))
    rate = models.sample_rate
    main: Source | None = None
    if source is not None:
        if _is_synthetic(source):
            main = _synthetic(source, rate)
        else:
            try:
                main = FileSource(source, rate, audio=config.mic is None, video=want_video and config.camera is None)
            except ValueError as e:
                raise PipelineError(f"--source {source}: {e}") from None
            if not main.has_audio and main.has_video and not main.info.duration and _is_still_image(main.info):
                raise PipelineError(
                    f"--source {source}: a still image ({main.info.video_codec}, no duration), not a stream; for a "
                    f"picture with sound make a video: ffmpeg -loop 1 -i IMAGE -i SOUND.wav -shortest -pix_fmt "
                    f"yuv420p OUT.mp4")
    audio: Source | None = None
    if config.mic is not None:
        audio = MicSource(resolve_input_device(config.mic), rate)
    elif main is not None and main.has_audio:
        audio = main
    video: Source | None = None
    if config.camera not in (None, "none"):
        video = CameraSource(config.camera)
    elif want_video and main is not None and main.has_video:
        video = main
    if isinstance(main, SyntheticSource) and video is None and audio is main:
        main = SyntheticSource(main.seed, main.preset, rate, video=False)
        audio = main
    if isinstance(main, SyntheticSource) and audio is None and video is main:
        main = SyntheticSource(main.seed, main.preset, rate, audio=False)
        video = main
    frame_size = fps = None
    if video is not None:
        if video.frame_size is None:  # a camera tells its size with its first frame
            video.open()
        frame_size = video.frame_size
        if frame_size is None:
            raise PipelineError(f"--camera {config.camera}: no frame size after opening")
        fps = video.fps or 30.0
    live = bool(getattr(audio, "live", False) or getattr(video, "live", False))
    if audio is None:
        seconds = None
        if isinstance(video, (FileSource, CameraSource)) and not video.live:
            from models.io.media import probe

            path = video.path if isinstance(video, FileSource) else str(video.spec)
            seconds = probe(path).duration or None
        audio = SilenceSource(rate, seconds)
        notes.append(f"{video.name} has no audio: video only (the models hear silence)")
    name = audio.name if not isinstance(audio, SilenceSource) else video.name
    return Streams(audio, video, name, rate, frame_size, fps, live, notes)


def _fit_file_audio(path: str, models: LiveModels, *, want_video: bool, camera: bool) -> list[str]:
    """One line per model saying what it gets from the file's audio (``realtime.bands``);
    default models the audio cannot serve are left out of ``models``. ``want_video``: the run
    shows pictures (not ``--camera none``); ``camera``: a camera gives them.

    Raises:
        PipelineError: no model is left.
    """
    from models.io.media import probe

    info = probe(path)
    native = info.sample_rate if info.has_audio else None
    if not native:
        return []
    lines, left_out, running = [], [], 0
    for m in models.all:
        if m.kind == "localizer" and not (want_video and (camera or info.has_video)):
            continue  # no picture: the localizer will not run
        running += 1
        meta = m.metadata
        fit = fit_band(m.kind, m.name, m.model.window.sample_rate, meta.frontend if meta is not None else None,
                       native, named=m.named)
        lines.append(f"{os.path.basename(path)}: {fit.line()}")
        if fit.verdict == "left out":
            left_out.append(m)
    if left_out and len(left_out) == running:
        raise PipelineError(f"--source {path}: no model can use its {native} Hz audio: " + "; ".join(lines))
    for m in left_out:
        models.leave_out(m)
    return lines


#: FFmpeg decoders of single pictures (a file of one of these with no duration is a still image).
_IMAGE_CODECS = {"png", "mjpeg", "jpeg2000", "bmp", "tiff", "webp", "gif", "ppm", "pgm", "pam", "qoi", "jpegls"}


def _is_still_image(info) -> bool:
    return (info.video_codec or "") in _IMAGE_CODECS


def make_rings(streams: Streams, models: LiveModels, hop_s: float) -> tuple[AudioRing, FrameRing | None]:
    """The capture rings of one stream: audio at its capture rate, frames when it has video."""
    rate = streams.sample_rate
    audio_ring = AudioRing(audio_capacity(models, hop_s, rate), rate)
    frame_ring = None
    if streams.video is not None:
        w, h = streams.frame_size
        frame_ring = FrameRing(frame_slots(models, hop_s, streams.fps), h, w)
    return audio_ring, frame_ring


def audio_capacity(models: LiveModels, hop_s: float, sample_rate: int) -> int:
    """Samples the capture ring holds: longest window (+ 0.25 s look-back when resampled) + hop + slack."""
    need = 0.0
    for m in models.all:
        w = m.model.window
        need = max(need, w.seconds + (0.25 if w.sample_rate != sample_rate else 0.0))
    return int(math.ceil((need + hop_s + AUDIO_SLACK_S) * sample_rate))


def frame_slots(models: LiveModels, hop_s: float, fps: float) -> int:
    """Frames the frame ring holds: from the newest frame back to the one a model wants, plus a hop."""
    back = 0.0
    for m in models.all:
        w = m.model.window
        if w.needs_frame or m.kind == "localizer":
            back = max(back, w.frame_lookback_s + 0.05)  # the oldest picture: a clip's first frame
    return max(4, int(math.ceil((back + hop_s + FRAME_SLACK_S) * fps)) + 2)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended.

    Attributes:
        summary: the run summary (also printed to ``config.summary``).
        interrupted: ended by Ctrl-C.
        recordings: mp4 files written.
        json_lines: JSON lines written.
        events: events written to the TSV (or that would have been).
    """

    summary: RunSummary | None
    interrupted: bool
    recordings: tuple[Path, ...]
    json_lines: int
    events: int


def make_sinks(config: PipelineConfig, view=None, offline: bool = False):
    """The run's sinks; a ``view`` comes first (the display sees each result before the slower
    sinks) and always gets a recorder (idle until asked, unless ``config.record``). An offline
    run's recorder waits for room in its queue instead of dropping frames (unless
    ``config.recorder.when_full`` says otherwise): nothing there runs in real time."""
    sinks = []
    jsonl = JsonLinesSink(config.jsonl) if config.jsonl is not None else None
    events = EventsTsvSink(config.events_out) if config.events_out is not None else None
    scores = ScoresTsvSink(config.scores_out) if config.scores_out is not None else None
    recorder = None
    if config.record is not None or view is not None:
        rc = config.recorder
        if rc.when_full is None:
            rc = dataclasses.replace(rc, when_full="wait" if offline else "drop")
        recorder = Mp4RecorderSink(rc, path=config.record)
    summary = SummarySink(stream=sys.stderr if config.summary == "stderr" else config.summary)
    if view is not None:
        view.recorder = recorder
    for s in (view, jsonl, events, scores, recorder, summary):
        if s is not None:
            sinks.append(s)
    return sinks, jsonl, events, recorder, summary


def run_pipeline(config: PipelineConfig, models: LiveModels, streams: Streams | None = None, *,
                 log: TextIO | str | None = "stderr", stop: threading.Event | None = None,
                 view=None) -> RunOutcome:
    """Run until the end of the stream, ``config.duration``, Ctrl-C or ``stop``.

    Args:
        config: the options.
        models: loaded models (closed by the caller).
        streams: the sources (default :func:`build_streams`).
        log: where one-line notes go (``"stderr"``: ``sys.stderr`` now; None: nowhere).
        stop: set it from another thread to end the run as Ctrl-C does.
        view: a :class:`realtime.live_view.LiveView` for a display: it becomes the first sink,
            and its ``recorder`` is set to the run's :class:`Mp4RecorderSink` (one is made,
            idle, when ``config.record`` is None), which the display starts and stops.

    Returns:
        How it ended. Every sink has been closed (flushed), also after Ctrl-C.

    Raises:
        Whatever a source, model or sink raised (after closing every sink and source).
    """
    if config.scores_out is not None and not models.labelers:
        raise PipelineError(f"--scores-out {config.scores_out}: this run has no labeler, so there are no scores to write")
    streams = streams or build_streams(config, models)
    stop = stop or threading.Event()
    log = sys.stderr if log == "stderr" else log

    def note(line: str) -> None:
        if log is not None:
            print(f"avlive: {line}", file=log, flush=True)

    for line in streams.notes:
        note(line)
    audio_ring, frame_ring = make_rings(streams, models, config.hop_s)
    offline = not config.realtime and not streams.live
    sinks, jsonl, events, recorder, summary = make_sinks(config, view, offline)
    slots = models.slots(config.localizer_every)
    if frame_ring is None:
        slots = [s for s in slots if s.resolved_kind != "localizer"]
    try:
        scheduler = Scheduler(audio_ring, frame_ring, slots, sinks, SchedulerConfig(hop_s=config.hop_s),
                              source_name=streams.name)
    except ValueError as e:  # a model hop that is no multiple of --hop, frames without a camera ...
        raise PipelineError(f"{str(e).splitlines()[0]} (pipeline hop --hop {config.hop_s:g} s, "
                            f"camera {'on' if frame_ring is not None else 'none'})") from None
    if not config.realtime and streams.live:
        note("live devices are never throttled: --no-realtime applies to files and the world only")
    note(f"{streams.name} -> {', '.join(m.describe() for m in models.all if frame_ring is not None or m.kind != 'localizer')}; "
         f"hop {config.hop_s:g} s, {'offline (every hop, as fast as possible)' if offline else 'live'}"
         + (f", {config.duration:g} s" if config.duration else ""))
    interrupted = False
    try:
        if offline:
            interrupted = _run_offline(streams, audio_ring, frame_ring, scheduler, config, stop)
        else:
            interrupted = _run_threaded(streams, audio_ring, frame_ring, scheduler, config, stop, note)
    finally:
        streams.close()
    if interrupted:
        note("Interrupted by user: stopped, every output flushed")
    return RunOutcome(summary.summary, interrupted, tuple(recorder.recordings) if recorder else (),
                      jsonl.lines if jsonl else 0, events.count if events else 0)


def _run_threaded(streams: Streams, audio_ring, frame_ring, scheduler: Scheduler, config: PipelineConfig,
                  stop: threading.Event, note) -> bool:
    capture = Capture(streams.audio, streams.video, audio_ring, frame_ring, realtime=config.realtime,
                      av_offset_ms=config.av_offset_ms, duration=config.duration, recovery=config.recovery,
                      on_status=note)
    scheduler.watch_capture(capture.stats)
    interrupted = False
    try:
        capture.start()
        scheduler.start()
        while not stop.is_set():
            if capture.wait(timeout=0.1):  # ended (stream end / duration); raises a source's error
                _drain(scheduler, audio_ring)
                break
            if not scheduler.running:  # the inference thread failed; stop() re-raises its error
                break
        else:
            interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            capture.stop()
        finally:
            _stop_scheduler(scheduler, note)  # final result, every sink flushed and closed
    if stop.is_set():
        interrupted = True
    return interrupted


def _stop_scheduler(scheduler: Scheduler, note, timeout: float = 10.0) -> None:
    """Stop the inference thread and let it finish every output, however long that takes: the
    interpreter must not exit while it is inside native code (an encoder, a model). A second
    Ctrl-C while waiting abandons what is still being written (the process ends at once,
    status 130, without running the interpreter's teardown under a busy thread)."""
    try:
        scheduler.stop(timeout=timeout)
        return
    except TimeoutError:
        note(f"the outputs are still being written after {timeout:g} s (the recorder's queue, a slow model); "
             "waiting for them; Ctrl-C again abandons them")
    try:
        scheduler.stop(timeout=None)
    except KeyboardInterrupt:
        note("abandoned the outputs still being written")
        sys.stderr.flush()
        os._exit(130)


def _drain(scheduler: Scheduler, audio_ring, timeout: float = 5.0) -> None:
    """After capture ended: let the inference thread reach the last whole hop."""
    last = int(audio_ring.total_written) // scheduler.hop_samples
    deadline = time.monotonic() + timeout
    while scheduler.running and time.monotonic() < deadline:
        result = scheduler.latest()
        if result is not None and result.hop >= last:
            return
        time.sleep(0.01)


class _Feed:
    """One source in the offline loop."""

    def __init__(self, source: Source, audio: bool, video: bool) -> None:
        self.source = source
        self.audio = audio
        self.video = video
        self.time = 0.0
        self.done = False


def _run_offline(streams: Streams, audio_ring: AudioRing, frame_ring, scheduler: Scheduler,
                 config: PipelineConfig, stop: threading.Event) -> bool:
    """Read the sources in stream order on this thread and run every hop when its audio is in."""
    a, v = streams.audio, streams.video
    feeds = [_Feed(a, True, v is a)] + ([_Feed(v, False, True)] if v is not None and v is not a else [])
    rate = audio_ring.sample_rate
    hop_n = scheduler.hop_samples
    limit = None if config.duration is None else int(round(config.duration * rate))
    offset = config.av_offset_ms / 1000.0
    next_hop = hop_n
    interrupted = False
    try:
        for f in feeds:
            f.source.open()
        while not stop.is_set():
            live = [f for f in feeds if not f.done]
            if not live or feeds[0].done:  # the audio feed sets the clock: when it ends, the run ends
                break
            f = min(live, key=lambda x: x.time)
            try:
                chunk = f.source.read()
            except EndOfStream:
                f.done = True
                continue
            if f.video and chunk.frame is not None:
                t = chunk.frame_time + offset
                if config.duration is not None and t >= config.duration:
                    if not f.audio:
                        f.done = True
                elif t >= 0:
                    frame_ring.write(chunk.frame, t)
                f.time = max(f.time, t)
            if f.audio and chunk.audio is not None and chunk.audio.shape[0]:
                x = chunk.audio
                pos = audio_ring.total_written
                if chunk.audio_start > pos:  # a source that skipped samples: silence keeps the clock
                    x = np.concatenate([np.zeros(chunk.audio_start - pos, np.float32), x])
                elif chunk.audio_start < pos:
                    x = x[pos - chunk.audio_start:]
                if limit is not None:
                    x = x[: max(0, limit - pos)]
                while x.shape[0]:
                    k = min(x.shape[0], next_hop - audio_ring.total_written)
                    audio_ring.write(x[:k])
                    x = x[k:]
                    if audio_ring.total_written == next_hop:
                        scheduler.step()
                        next_hop += hop_n
                f.time = audio_ring.total_written / rate
                if limit is not None and audio_ring.total_written >= limit:
                    f.done = True
        else:
            interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        scheduler.stop()  # final result, every sink closed (opened by the first step)
    return interrupted
