"""Reading and writing audio/video files through PyAV (FFmpeg).

Writers:

* :class:`AvFileWriter` -- incremental: video frames and audio chunks of any size, interleaved in
  any order; audio is buffered into fixed-size codec frames. Video pts = frame index in a
  ``1/fps`` time base, audio pts = sample index in a ``1/sample_rate`` time base, so the
  timestamps in the file are exact. The file appears atomically on :meth:`AvFileWriter.close`
  (written to a hidden temporary file in the same folder, then ``os.replace``).
* :func:`write_av_file` -- the whole clip at once, on top of :class:`AvFileWriter`.

Readers:

* :func:`probe` -- a :class:`MediaInfo` summary.
* :func:`read_audio` -- float32 samples, optionally down-mixed to mono and resampled (soxr).
* :func:`read_video_frames` -- RGB uint8 frames with their timestamps in seconds.

Errors: a missing file raises ``FileNotFoundError`` naming the path; a file FFmpeg cannot open or
decode raises :class:`MediaDecodeError` (``.path``, ``.reason``). Single undecodable packets are
skipped (and counted in a log warning) unless ``strict=True``.
"""
from __future__ import annotations

import errno
import logging
import os
import tempfile
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "AvFileWriter",
    "MediaDecodeError",
    "MediaInfo",
    "probe",
    "read_audio",
    "read_video_frames",
    "write_av_file",
]

_AV_ERROR = av.FFmpegError
_CAP_SMALL_LAST_FRAME = 1 << 6  # AV_CODEC_CAP_SMALL_LAST_FRAME
_CAP_VARIABLE_FRAME_SIZE = 1 << 16  # AV_CODEC_CAP_VARIABLE_FRAME_SIZE
_FALLBACK_VIDEO_CODEC = "mpeg4"


class MediaDecodeError(RuntimeError):
    """A media file exists but FFmpeg cannot open or decode it.

    Attributes:
        path: The file, as given.
        reason: What went wrong (FFmpeg's message or a short description).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = str(reason)
        super().__init__(f"cannot decode {self.path!r}: {self.reason}")

    def __reduce__(self):  # picklable across processes (decode_pool sends these back)
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` finds in a media file.

    Attributes:
        duration: Seconds (container duration, else the longest stream); 0.0 if unknown.
        has_audio: Whether the file has an audio stream.
        has_video: Whether the file has a video stream.
        sample_rate: Audio sample rate in Hz of the first audio stream, or None.
        fps: Average frame rate of the first video stream, or None.
        width: Frame width in pixels, or None.
        height: Frame height in pixels, or None.
        n_channels: Audio channel count, or None.
        video_codec: FFmpeg decoder name of the video stream (e.g. "h264"), or None.
        audio_codec: FFmpeg decoder name of the audio stream (e.g. "aac"), or None.
    """

    duration: float
    has_audio: bool
    has_video: bool
    sample_rate: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    n_channels: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None


# ----------------------------------------------------------------------------------------------
# helpers


def _is_url(path: str) -> bool:
    return "://" in path


def _open_input(path: str | os.PathLike[str]):
    """``av.open`` for reading, with FileNotFoundError / MediaDecodeError instead of av errors."""
    p = os.fspath(path)
    if not _is_url(p):
        if not os.path.exists(p):
            raise FileNotFoundError(errno.ENOENT, "no such media file", p)
        if os.path.isdir(p):
            raise MediaDecodeError(p, "is a directory, not a media file")
    try:
        return av.open(p, mode="r")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such media file", p) from None
    except PermissionError:
        raise
    except (_AV_ERROR, UnicodeDecodeError, ValueError, OSError) as e:
        raise MediaDecodeError(p, _av_reason(e)) from e


def _av_reason(e: BaseException) -> str:
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return f"{type(e).__name__}: {msg}"


def _as_fraction(x: "int | float | Fraction", what: str) -> Fraction:
    try:
        f = Fraction(x).limit_denominator(1_000_000) if isinstance(x, float) else Fraction(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a positive number, got {x!r}") from e
    if f <= 0:
        raise ValueError(f"{what} must be positive, got {x!r}")
    return f


def _layout_for(n_channels: int) -> str:
    if n_channels == 1:
        return "mono"
    if n_channels == 2:
        return "stereo"
    return f"{n_channels}c"


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:
        return False
    return True


def _pick_video_codec(name: str) -> str:
    if _has_encoder(name):
        return name
    if name == "libx264" and _has_encoder(_FALLBACK_VIDEO_CODEC):
        logger.warning("libx264 encoder unavailable in this FFmpeg build; writing %s instead", _FALLBACK_VIDEO_CODEC)
        return _FALLBACK_VIDEO_CODEC
    raise ValueError(f"no {name!r} video encoder in this FFmpeg build (PyAV {av.__version__})")


def _video_options(codec: str, crf: int, mpeg4_qscale: int, preset: str) -> dict[str, str]:
    if codec in ("libx264", "libx265"):
        return {"crf": str(int(crf)), "preset": preset}
    if codec in ("libvpx", "libvpx-vp9"):
        return {"crf": str(int(crf)), "b": "0" if codec == "libvpx-vp9" else "2M"}
    if codec in ("mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "msmpeg4", "msmpeg4v2", "h263"):
        # ffmpeg -q:v N == flags +qscale, global_quality = N * FF_QP2LAMBDA (118)
        return {"flags": "+qscale", "global_quality": str(int(mpeg4_qscale) * 118)}
    return {}


# ----------------------------------------------------------------------------------------------
# writing


def _cleanup_temp(container, tmp_path: str) -> None:
    """Finalizer for a writer that was never closed: drop the container and its temp file."""
    if container is not None:
        try:
            container.close()
        except Exception:
            pass
    try:
        os.unlink(tmp_path)
    except OSError:
        pass


class AvFileWriter:
    """Incremental audio/video file writer with exact timestamps and an atomic finish.

    Video frames get pts = frame index in a ``1/fps`` time base (or ``round(t * fps)`` when
    :meth:`write_frame` is given a time); audio gets pts = sample index in a ``1/sample_rate``
    time base. Audio chunks of any length are buffered into fixed-size codec frames (1024
    samples for AAC); the remainder goes out as a short last frame on :meth:`close`. Video and
    audio may be interleaved in any order and chunk size; FFmpeg's muxer interleaves packets.

    The output goes to a hidden temporary file in the target folder and is moved onto ``path``
    with ``os.replace`` on :meth:`close`, so ``path`` never holds a partial file. Use it as a
    context manager: an exception inside the ``with`` block discards the temporary file.
    Not thread-safe: call it from one thread (or hold a lock).

    Args:
        path: Output file; the container format follows its extension (.mp4, .mkv, .avi, ...).
        fps: Video frame rate (int, float or Fraction, e.g. ``Fraction(30000, 1001)``); None for
            a file without video.
        sample_rate: Audio sample rate in Hz; None for a file without audio.
        width: Frame width in pixels (even, for yuv420p); required with ``fps``.
        height: Frame height in pixels (even, for yuv420p); required with ``fps``.
        n_channels: Audio channels (1 = mono, 2 = stereo, ...).
        video_codec: FFmpeg encoder name; "libx264" falls back to "mpeg4" when the FFmpeg build
            has no libx264.
        audio_codec: FFmpeg encoder name ("aac" by default).
        crf: Constant-rate factor for libx264/libx265/libvpx (lower = better; 18 is visually
            near-lossless).
        mpeg4_qscale: Fixed quantizer (2..31, lower = better) for mpeg4-family encoders.
        preset: x264/x265 speed preset.
        audio_bitrate: Audio bit rate in bit/s.
        audio_frame_size: Samples per audio frame for encoders without a fixed frame size
            (PCM); encoders with one (AAC: 1024) use theirs.
        video_options: Extra encoder options (FFmpeg names, string values); override the above.
        pix_fmt: Encoder pixel format.
        container_options: Muxer options, e.g. ``{"movflags": "+faststart"}`` (index at the
            front) or ``{"movflags": "+frag_keyframe+empty_moov"}`` (fragmented MP4: what was
            written stays playable if the process dies before close; the temporary file then
            holds it).
        partial_name: Write to ``<stem>.partial<suffix>`` beside ``path`` (visible, replaced if
            there) instead of a hidden temporary file: with a fragmented MP4, a killed process
            leaves a playable file a user can find.

    Raises:
        ValueError: Bad sizes/rates, neither audio nor video, or no such encoder.
    """

    @staticmethod
    def partial_path(path: str | os.PathLike[str]) -> Path:
        """Where a writer with ``partial_name=True`` writes until it closes."""
        p = Path(path)
        return p.with_name(f"{p.stem}.partial{p.suffix}")

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: int | float | Fraction | None,
        sample_rate: int | None,
        width: int | None = None,
        height: int | None = None,
        *,
        n_channels: int = 1,
        video_codec: str = "libx264",
        audio_codec: str = "aac",
        crf: int = 18,
        mpeg4_qscale: int = 3,
        preset: str = "veryfast",
        audio_bitrate: int = 128_000,
        audio_frame_size: int = 1024,
        video_options: dict[str, str] | None = None,
        pix_fmt: str = "yuv420p",
        container_options: dict[str, str] | None = None,
        partial_name: bool = False,
    ) -> None:
        self.path = Path(path)
        if fps is None and sample_rate is None:
            raise ValueError("AvFileWriter needs video (fps, width, height), audio (sample_rate) or both")
        self.fps: Fraction | None = None
        self.width = self.height = None
        if fps is not None:
            self.fps = _as_fraction(fps, "fps")
            if width is None or height is None:
                raise ValueError("width and height are required for video")
            width, height = int(width), int(height)
            if width <= 0 or height <= 0:
                raise ValueError(f"frame size must be positive, got {width}x{height}")
            if pix_fmt in ("yuv420p", "yuvj420p", "nv12") and (width % 2 or height % 2):
                raise ValueError(f"{pix_fmt} needs even frame sizes, got {width}x{height} (crop or pad one pixel)")
            self.width, self.height = width, height
        self.sample_rate = None if sample_rate is None else int(sample_rate)
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.n_channels = int(n_channels)
        if self.n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")

        self.video_codec = _pick_video_codec(video_codec) if self.fps is not None else None
        if self.sample_rate is not None and not _has_encoder(audio_codec):
            raise ValueError(f"no {audio_codec!r} audio encoder in this FFmpeg build (PyAV {av.__version__})")
        self.audio_codec = audio_codec if self.sample_rate is not None else None

        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise FileNotFoundError(errno.ENOENT, "output folder does not exist", str(folder))
        if partial_name:
            tmp = str(self.partial_path(self.path))
            open(tmp, "wb").close()
        else:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}")
            os.close(fd)
        self._tmp_path = tmp
        self._closed = False
        self._container = None
        try:
            self._container = av.open(tmp, mode="w", options=dict(container_options or {}))
            self._vstream = self._astream = None
            if self.fps is not None:
                opts = _video_options(self.video_codec, crf, mpeg4_qscale, preset)
                opts.update(video_options or {})
                vs = self._container.add_stream(self.video_codec, rate=self.fps, options=opts)
                vs.width, vs.height, vs.pix_fmt = self.width, self.height, pix_fmt
                vs.codec_context.time_base = 1 / self.fps
                self._vstream = vs
            if self.sample_rate is not None:
                a = self._container.add_stream(self.audio_codec, rate=self.sample_rate)
                a.layout = _layout_for(self.n_channels)
                a.codec_context.time_base = Fraction(1, self.sample_rate)
                if audio_bitrate:
                    a.bit_rate = int(audio_bitrate)
                self._astream = a
            self._container.start_encoding()
        except BaseException as e:
            _cleanup_temp(self._container, tmp)
            if isinstance(e, _AV_ERROR):
                raise ValueError(f"cannot set up {self.path.name} ({self.video_codec}/{self.audio_codec}): {e}") from e
            raise
        self._finalizer = weakref.finalize(self, _cleanup_temp, self._container, tmp)

        self._next_pts = 0
        self._n_frames = 0
        self._samples_written = 0  # samples handed to the encoder
        self._pending = np.zeros((0, self.n_channels), np.float32)
        self._audio_resampler = None
        if self._astream is not None:
            cc = self._astream.codec_context
            fixed = cc.frame_size and not (cc.codec.capabilities & _CAP_VARIABLE_FRAME_SIZE)
            self._frame_size = int(cc.frame_size) if fixed else int(audio_frame_size)
            self._small_last_ok = (not fixed) or bool(cc.codec.capabilities & _CAP_SMALL_LAST_FRAME)
            self._layout = _layout_for(self.n_channels)
            if cc.format.name != "fltp":
                self._audio_resampler = av.AudioResampler(format=cc.format.name, layout=self._layout, rate=self.sample_rate)

    # -- properties

    @property
    def frames_written(self) -> int:
        """Video frames written so far."""
        return self._n_frames

    @property
    def samples_written(self) -> int:
        """Audio samples (per channel) accepted so far, including those still buffered."""
        return self._samples_written + len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- writing

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"AvFileWriter for {self.path} is closed")

    def write_frame(self, rgb: np.ndarray, t: float | None = None) -> None:
        """Encode one video frame.

        Args:
            rgb: uint8 array (height, width, 3), RGB.
            t: Optional presentation time in seconds. Without it the frame gets the next
                index (pts = frames so far); with it pts = ``max(round(t * fps), last pts + 1)``,
                so a live source with dropped frames keeps its timing and jitter never makes
                two frames share a slot.

        Raises:
            ValueError: Writer closed, file without video, or wrong shape.
            TypeError: ``rgb`` is not uint8.
        """
        self._check_open()
        if self._vstream is None:
            raise ValueError("this AvFileWriter has no video stream (fps was None)")
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8:
            raise TypeError(f"frames must be uint8 RGB, got dtype {rgb.dtype}")
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"frame shape {rgb.shape} != (height, width, 3) = {(self.height, self.width, 3)}")
        pts = self._next_pts
        if t is not None:
            pts = max(int(round(float(t) * self.fps)), self._next_pts)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = 1 / self.fps
        self._mux(self._vstream.encode(frame))
        self._next_pts = pts + 1
        self._n_frames += 1

    def write_audio(self, chunk: np.ndarray) -> None:
        """Queue audio samples; full codec frames are encoded at once.

        Args:
            chunk: float array (samples,) for mono or (samples, n_channels), nominally in
                [-1, 1]; any length, including 0.

        Raises:
            ValueError: Writer closed, file without audio, or wrong channel count.
            TypeError: ``chunk`` is not floating point.
        """
        self._check_open()
        if self._astream is None:
            raise ValueError("this AvFileWriter has no audio stream (sample_rate was None)")
        x = np.asarray(chunk)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"audio must be float in [-1, 1], got dtype {x.dtype}")
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"audio chunk shape {np.shape(chunk)} does not fit {self.n_channels} channel(s); "
                             "expected (samples,) for mono or (samples, n_channels)")
        if len(x) == 0:
            return
        buf = np.concatenate([self._pending, x.astype(np.float32, copy=False)], axis=0)
        n_full = len(buf) // self._frame_size * self._frame_size
        for s in range(0, n_full, self._frame_size):
            self._encode_audio(buf[s:s + self._frame_size])
        self._pending = buf[n_full:].copy()

    def _encode_audio(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T), format="fltp", layout=self._layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self._samples_written
        frame.time_base = Fraction(1, self.sample_rate)
        frames = [frame] if self._audio_resampler is None else self._audio_resampler.resample(frame)
        for f in frames:
            self._mux(self._astream.encode(f))
        self._samples_written += len(block)

    def _mux(self, packets) -> None:
        for p in packets:
            self._container.mux(p)

    # -- finishing

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it onto ``path``.

        Returns:
            The final path.
        """
        if self._closed:
            return self.path
        self._closed = True
        try:
            if self._astream is not None:
                if len(self._pending):
                    block = self._pending
                    if not self._small_last_ok:
                        pad = np.zeros((self._frame_size - len(block), self.n_channels), np.float32)
                        block = np.concatenate([block, pad])
                    self._encode_audio(block)
                    self._pending = self._pending[:0]
                if self._audio_resampler is not None:
                    for f in self._audio_resampler.resample(None) or []:
                        self._mux(self._astream.encode(f))
                self._mux(self._astream.encode(None))
            if self._vstream is not None:
                self._mux(self._vstream.encode(None))
            self._container.close()
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(self._tmp_path, 0o666 & ~mask)
            os.replace(self._tmp_path, self.path)
        except BaseException:
            self._finalizer()  # closes the container, removes the temp file
            raise
        self._finalizer.detach()
        return self.path

    def abort(self) -> None:
        """Discard everything written; ``path`` is left as it was."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "AvFileWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_av_file(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray] | None,
    audio: np.ndarray | None,
    fps: int | float | Fraction | None,
    sample_rate: int | None,
    *,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    crf: int = 18,
    mpeg4_qscale: int = 3,
    **writer_kwargs,
) -> Path:
    """Write a whole clip (video, audio or both) atomically.

    Frames and audio are interleaved in time order (after frame k, audio up to (k + 1) / fps).

    Args:
        path: Output file; the container follows the extension.
        frames: Iterable of uint8 RGB arrays (H, W, 3), all the same size, or None for audio only.
        audio: float32 (samples,) mono or (samples, channels) in [-1, 1], or None for video only.
        fps: Frame rate (needed with ``frames``).
        sample_rate: Audio sample rate in Hz (needed with ``audio``).
        video_codec: See :class:`AvFileWriter` ("libx264", falling back to "mpeg4").
        audio_codec: See :class:`AvFileWriter`.
        crf: libx264 quality (lower = better).
        mpeg4_qscale: mpeg4 quantizer (lower = better).
        **writer_kwargs: Further :class:`AvFileWriter` options.

    Returns:
        The written path.

    Raises:
        ValueError: Nothing to write, mismatched frame sizes, missing fps/sample_rate.
    """
    frame_iter: Iterator[np.ndarray] | None = None
    first = None
    if frames is not None:
        frame_iter = iter(frames)
        first = next(frame_iter, None)
        if first is None:
            frame_iter = None
    if audio is not None:
        audio = np.asarray(audio)
        if audio.ndim not in (1, 2):
            raise ValueError(f"audio must be (samples,) or (samples, channels), got shape {audio.shape}")
        if len(audio) == 0:
            audio = None
    if first is None and audio is None:
        raise ValueError("write_av_file: no frames and no audio to write")
    if first is not None and fps is None:
        raise ValueError("write_av_file: frames given without fps")
    if audio is not None and sample_rate is None:
        raise ValueError("write_av_file: audio given without sample_rate")
    first_arr = None if first is None else np.asarray(first)
    if first_arr is not None and (first_arr.ndim != 3 or first_arr.shape[2] != 3):
        raise ValueError(f"frames must be (H, W, 3) RGB, got shape {first_arr.shape}")
    n_channels = 1 if audio is None or audio.ndim == 1 else audio.shape[1]

    writer = AvFileWriter(
        path,
        fps if first_arr is not None else None,
        sample_rate if audio is not None else None,
        None if first_arr is None else first_arr.shape[1],
        None if first_arr is None else first_arr.shape[0],
        n_channels=n_channels,
        video_codec=video_codec,
        audio_codec=audio_codec,
        crf=crf,
        mpeg4_qscale=mpeg4_qscale,
        **writer_kwargs,
    )
    with writer:
        a_pos = 0
        if first_arr is not None:
            fps_f = writer.fps
            k = 0
            for frame in _chain_first(first_arr, frame_iter):
                writer.write_frame(frame)
                k += 1
                if audio is not None:
                    upto = min(len(audio), int(round(k * sample_rate / fps_f)))
                    if upto > a_pos:
                        writer.write_audio(audio[a_pos:upto])
                        a_pos = upto
        if audio is not None and a_pos < len(audio):
            writer.write_audio(audio[a_pos:])
    return writer.path


def _chain_first(first, rest):
    yield first
    if rest is not None:
        yield from rest


# ----------------------------------------------------------------------------------------------
# reading


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Summarize a media file without decoding it.

    Args:
        path: A media file (or URL).

    Returns:
        A :class:`MediaInfo`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MediaDecodeError: FFmpeg cannot open it, or it has neither audio nor video.
    """
    with _open_input(path) as c:
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        if vs is None and aus is None:
            raise MediaDecodeError(path, "no audio or video stream")
        duration = 0.0
        if c.duration is not None and c.duration > 0:
            duration = c.duration / av.time_base
        else:
            for s in (vs, aus):
                if s is not None and s.duration is not None and s.time_base is not None:
                    duration = max(duration, float(s.duration * s.time_base))
        fps = None
        if vs is not None:
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            fps = float(rate) if rate else None
        return MediaInfo(
            duration=float(duration),
            has_audio=aus is not None,
            has_video=vs is not None,
            sample_rate=None if aus is None else int(aus.codec_context.sample_rate or aus.rate or 0) or None,
            fps=fps,
            width=None if vs is None else int(vs.codec_context.width) or None,
            height=None if vs is None else int(vs.codec_context.height) or None,
            n_channels=None if aus is None else len(aus.codec_context.layout.channels) or None,
            video_codec=None if vs is None else vs.codec_context.name,
            audio_codec=None if aus is None else aus.codec_context.name,
        )


def _decode_packets(path, container, stream, strict: bool) -> Iterator:
    """Decoded frames of one stream; bad packets are skipped (or raise when ``strict``).

    A demuxer error after some frames were decoded (a truncated file) ends the stream with a
    warning; before any frame it raises MediaDecodeError.
    """
    n_bad = n_out = 0
    last_err = None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except _AV_ERROR as e:  # one bad packet: skip it, keep going
                if strict:
                    raise MediaDecodeError(path, f"bad packet at pts {packet.pts}: {_av_reason(e)}") from e
                n_bad += 1
                last_err = e
                continue
            for f in frames:
                n_out += 1
                yield f
    except MediaDecodeError:
        raise
    except (_AV_ERROR, EOFError) as e:
        if strict or n_out == 0:
            raise MediaDecodeError(path, _av_reason(e)) from e
        logger.warning("%s: stream ended early after %d frames: %s", os.fspath(path), n_out, _av_reason(e))
    if n_bad:
        if n_out == 0:
            raise MediaDecodeError(path, f"no decodable {stream.type} packets ({n_bad} bad; last: {_av_reason(last_err)})")
        logger.warning("%s: skipped %d undecodable %s packet(s); last: %s", os.fspath(path), n_bad, stream.type, _av_reason(last_err))


def _seek(container, stream, t: float) -> bool:
    try:
        container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        return True
    except (_AV_ERROR, OverflowError, ValueError):
        return False


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    mono: bool = True,
    start: float | None = None,
    stop: float | None = None,
    *,
    strict: bool = False,
) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to float32.

    Frames are converted to planar float with ``av.AudioResampler(format="fltp")`` at the
    stream's own rate and layout; ``mono`` averages the channels; ``sample_rate`` resamples the
    whole signal with soxr (HQ), which is delay-compensated, so sample i stays at time i / rate.
    Sample 0 is the first decoded sample (time ``start`` when given; the stream's first pts,
    normally 0, otherwise). When reading to the end, encoder padding past the stream's stated
    duration (at most one codec frame; the AAC tail) is dropped.

    Args:
        path: Media file.
        sample_rate: Output rate in Hz; None keeps the file's rate.
        mono: Down-mix to mono (mean of channels).
        start: Start time in seconds on the stream's timeline (None = from the beginning).
        stop: End time in seconds, exclusive (None = to the end).
        strict: Raise on any undecodable packet instead of skipping it.

    Returns:
        ``(audio, sample_rate)``: float32 (samples,) when ``mono``, else (samples, channels);
        and the rate in Hz.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MediaDecodeError: Not openable, no audio stream, or nothing decodable.
        ValueError: ``stop`` before ``start`` or a non-positive ``sample_rate``.
    """
    if start is not None and stop is not None and stop < start:
        raise ValueError(f"stop ({stop}) < start ({start})")
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    with _open_input(path) as c:
        if not c.streams.audio:
            raise MediaDecodeError(path, "no audio stream")
        s = c.streams.audio[0]
        s.thread_type = "AUTO"
        sr_in = int(s.codec_context.sample_rate or s.rate or 0)
        if start is not None and start > 0:
            _seek(c, s, max(0.0, start - 0.2))  # a little pre-roll for the codec's overlap
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        t0: float | None = None  # time of the first sample in chunks
        n = 0
        max_frame = 0
        for f in _decode_packets(path, c, s, strict):
            if t0 is None:
                sr_in = int(f.sample_rate) or sr_in
                t0 = float(f.time) if f.time is not None else 0.0
            max_frame = max(max_frame, f.samples)
            for o in resampler.resample(f):
                a = o.to_ndarray()
                chunks.append(a)
                n += a.shape[1]
            if stop is not None and t0 + n / sr_in >= stop + 0.05:
                break
        else:
            for o in resampler.resample(None) or []:
                a = o.to_ndarray()
                chunks.append(a)
                n += a.shape[1]
        if not chunks:
            raise MediaDecodeError(path, "audio stream has no samples" if start is None else f"no audio after {start} s")
        x = np.concatenate(chunks, axis=1).T  # (samples, channels)
        # drop codec padding past the stated stream end
        if s.duration is not None and s.time_base is not None and (stop is None or t0 + len(x) / sr_in < stop + 0.05):
            end = float((s.start_time or 0) * s.time_base + s.duration * s.time_base)
            n_end = int(round((end - t0) * sr_in))
            if 0 < n_end < len(x) and len(x) - n_end <= max_frame:
                x = x[:n_end]
        i0 = 0 if start is None else max(0, int(round((start - t0) * sr_in)))
        i1 = len(x) if stop is None else max(i0, int(round((stop - t0) * sr_in)))
        x = x[i0:i1]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if mono:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0].copy()
    sr_out = sr_in
    if sample_rate is not None and int(sample_rate) != sr_in:
        import soxr

        sr_out = int(sample_rate)
        x = soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    return x, sr_out


def read_video_frames(
    path: str | os.PathLike[str],
    start: float | None = None,
    stop: float | None = None,
    max_frames: int | None = None,
    *,
    size: tuple[int, int] | None = None,
    strict: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode frames of the first video stream to RGB.

    Args:
        path: Media file.
        start: First time in seconds to keep (on the stream's timeline; seeks to the keyframe
            before it and decodes forward).
        stop: Stop before this time in seconds (exclusive).
        max_frames: Keep at most this many frames.
        size: Optional ``(width, height)`` to scale frames to (swscale).
        strict: Raise on any undecodable packet instead of skipping it.

    Returns:
        ``(frames, timestamps)``: uint8 (N, H, W, 3) RGB and float64 (N,) seconds, each
        ``pts * time_base`` (for frames without pts: the previous time + 1 / fps).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MediaDecodeError: Not openable, no video stream, or nothing decodable.
    """
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    with _open_input(path) as c:
        if not c.streams.video:
            raise MediaDecodeError(path, "no video stream")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        w, h = (int(size[0]), int(size[1])) if size is not None else (s.codec_context.width, s.codec_context.height)
        rate = s.average_rate or s.guessed_rate or s.base_rate
        dt = 1.0 / float(rate) if rate else 0.0
        if start is not None and start > 0:
            _seek(c, s, start)
        frames: list[np.ndarray] = []
        times: list[float] = []
        t_prev: float | None = None
        if max_frames != 0:
            for f in _decode_packets(path, c, s, strict):
                t = float(f.time) if f.time is not None else (0.0 if t_prev is None else t_prev + dt)
                t_prev = t
                if start is not None and t < start - 1e-6:
                    continue
                if stop is not None and t >= stop - 1e-9:
                    break
                if size is not None:
                    img = f.to_ndarray(width=w, height=h, format="rgb24")
                else:
                    img = f.to_ndarray(format="rgb24")
                    h, w = img.shape[:2]
                frames.append(img)
                times.append(t)
                if max_frames is not None and len(frames) >= max_frames:
                    break
    if not frames:
        return np.zeros((0, h or 0, w or 0, 3), np.uint8), np.zeros(0, np.float64)
    return np.stack(frames), np.asarray(times, np.float64)
