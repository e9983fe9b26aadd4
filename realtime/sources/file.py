"""Audio and video of one media file through PyAV, as a stream (aiortc MediaPlayer style)."""
from __future__ import annotations

import collections
import logging
import os

import av
import numpy as np

from models.io.media import MediaDecodeError, probe

from .base import Chunk, EndOfStream, Source, SourceError

__all__ = ["FileSource"]

logger = logging.getLogger(__name__)

#: A file that ends this much before its stated duration is reported as truncated.
TRUNCATED_S = 1.0
#: Frames wider than this are scaled down when no size is asked (a 4K file's full frames cost
#: gigabytes in the rings and the recorder, and no model or display here needs them).
MAX_FRAME_WIDTH = 1280


class FileSource(Source):
    """Decodes a file's first audio and first video stream, in packet order.

    Decoding happens in the thread that calls :meth:`read` (the capture thread that owns the
    source), one packet per step, so a chunk is either an audio block or one frame. Audio is
    down-mixed to mono (FFmpeg's resampler, at the file's rate) and resampled to
    ``sample_rate`` with a streaming ``soxr.ResampleStream`` (delay-compensated: sample ``i``
    stays at ``i / sample_rate`` s). Stream time is the file's timeline from its start: audio
    that starts late is preceded by silence, audio before 0 is dropped, encoder padding past
    the audio stream's stated end is dropped. Frames carry ``pts × time_base`` seconds.
    Undecodable packets are skipped and counted (``bad_packets``).

    The capture replays files at real-time pace (``realtime=True``) or as fast as they decode.

    Args:
        path: Media file.
        sample_rate: Output audio rate in Hz.
        size: Optional ``(width, height)`` to scale frames to; None: the file's size, scaled down
            to ``max_width`` (even sizes, aspect kept) when wider.
        max_width: Widest frames delivered without a ``size`` (None: any).
        audio: Deliver the audio stream (if the file has one).
        video: Deliver the video stream (if the file has one).
        quality: soxr quality ("VHQ", "HQ", "MQ", "LQ", "QQ").

    Raises:
        FileNotFoundError: No such file.
        MediaDecodeError: FFmpeg cannot open it.
        ValueError: Neither a wanted audio nor video stream in the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int = 16000,
        *,
        size: tuple[int, int] | None = None,
        audio: bool = True,
        video: bool = True,
        quality: str = "HQ",
        max_width: int | None = MAX_FRAME_WIDTH,
    ) -> None:
        self.path = os.fspath(path)
        info = probe(self.path)
        self.info = info
        self.name = os.path.basename(self.path)
        self._want_audio = audio and info.has_audio
        self._want_video = video and info.has_video
        if not (self._want_audio or self._want_video):
            what = "audio or video" if (audio and video) else ("audio" if audio else "video")
            raise ValueError(f"FileSource: {self.path!r} has no {what} stream")
        if int(sample_rate) <= 0:
            raise ValueError(f"FileSource sample_rate: expected > 0 Hz, found {sample_rate}")
        self.sample_rate = int(sample_rate) if self._want_audio else None
        self.channels = 1 if self._want_audio else 0
        self.fps = float(info.fps) if self._want_video and info.fps else None
        if self._want_video:
            if size is None and max_width is not None and info.width and info.width > max_width:
                size = (max_width // 2 * 2, max(2, round(info.height * max_width / info.width / 2) * 2))
            self.frame_size = (int(size[0]), int(size[1])) if size is not None else (int(info.width), int(info.height))
            if self.fps is None:
                self.fps = 0.0  # unknown rate; frames still carry their pts
        self._size = size
        self._quality = quality
        self.bad_packets = 0
        self._container = None

    # -------------------------------------------------------------------------------- open/close
    def _open(self) -> None:
        try:
            self._container = av.open(self.path, mode="r")
        except FileNotFoundError:
            raise
        except (av.FFmpegError, OSError, ValueError) as e:
            raise MediaDecodeError(self.path, f"{type(e).__name__}: {e}") from e
        c = self._container
        streams = []
        self._vs = self._as = None
        if self._want_video:
            self._vs = c.streams.video[0]
            self._vs.thread_type = "AUTO"
            streams.append(self._vs)
            rate = self._vs.average_rate or self._vs.guessed_rate
            self._frame_dt = 1.0 / float(rate) if rate else 0.0
        if self._want_audio:
            self._as = c.streams.audio[0]
            streams.append(self._as)
            self._in_rate = int(self._as.codec_context.sample_rate or self._as.rate)
            self._mono = av.AudioResampler(format="flt", layout="mono", rate=self._in_rate)
            self._resampler = None
            if self._in_rate != self.sample_rate:
                import soxr

                self._resampler = soxr.ResampleStream(self._in_rate, self.sample_rate, 1, dtype="float32", quality=self._quality)
            self._in_samples = 0  # mono samples at the file's rate handed to the resampler
            self._audio_t0: float | None = None  # file time of the first decoded sample
            self._drop = 0  # leading samples to drop (audio before stream time 0)
            self._delivered = 0
            # encoder padding past the stream's stated end is dropped
            self._audio_limit = None
            if self._as.duration is not None and self._as.time_base is not None:
                end = float((self._as.start_time or 0) * self._as.time_base + self._as.duration * self._as.time_base)
                self._audio_limit = int(round((end - self._origin_of(c)) * self.sample_rate))
        self._origin = self._origin_of(c)
        self._demux = c.demux(*streams)
        self._pending: collections.deque[Chunk] = collections.deque()
        self._frames = 0
        self._last_t: float | None = None
        self._eos = False
        self._out_any = False

    @staticmethod
    def _origin_of(container) -> float:
        st = container.start_time
        return 0.0 if st is None else st / av.time_base

    def _close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._resampler = None  # freed now, not at interpreter exit (soxr's nanobind leak report)

    @property
    def resampler_delay(self) -> int:
        if not self._is_open or self._as is None or self._resampler is None:
            return 0
        return int(round(self._in_samples * self.sample_rate / self._in_rate)) - self._delivered

    # ------------------------------------------------------------------------------------ read
    def read(self, timeout: float | None = None) -> Chunk:
        if not self._is_open:
            raise SourceError(f"{self.name}: read before open()")
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._eos:
                raise EndOfStream(self.name)
            try:
                packet = next(self._demux)
            except StopIteration:
                self._finish()
                continue
            except (av.FFmpegError, EOFError) as e:  # a truncated or corrupt container
                if not self._out_any:
                    raise MediaDecodeError(self.path, f"{type(e).__name__}: {e}") from e
                logger.warning("%s: stream ended early: %s", self.path, e)
                self._finish()
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError as e:  # one bad packet: count, skip, go on
                self.bad_packets += 1
                if self.bad_packets in (1, 10, 100):
                    logger.warning("%s: skipped %d undecodable packet(s); last: %s", self.path, self.bad_packets, e)
                continue
            for f in frames:
                if packet.stream is self._as:
                    self._audio_frame(f)
                else:
                    self._video_frame(f)

    def _video_frame(self, f) -> None:
        if f.time is not None:
            t = float(f.time) - self._origin
        else:
            t = 0.0 if self._last_t is None else self._last_t + self._frame_dt
        self._last_t = t
        if self._size is not None:
            rgb = f.to_ndarray(width=self.frame_size[0], height=self.frame_size[1], format="rgb24")
        else:
            rgb = f.to_ndarray(format="rgb24")
        self._pending.append(Chunk(frame=rgb, frame_time=t, frame_index=self._frames))
        self._frames += 1
        self._out_any = True

    def _audio_frame(self, f) -> None:
        if self._audio_t0 is None:
            t0 = (float(f.time) if f.time is not None else 0.0) - self._origin
            self._audio_t0 = t0
            lead = int(round(t0 * self._in_rate))
            if lead > 0:  # audio starts after stream time 0: silence before it
                self._push_audio(np.zeros(lead, np.float32))
            else:
                self._drop = -lead
        for o in self._mono.resample(f):
            self._push_audio(o.to_ndarray()[0])

    def _push_audio(self, x: np.ndarray, last: bool = False) -> None:
        """Resample (n,) float32 at the file's rate and queue the output as a chunk."""
        if self._drop and not last:
            k = min(self._drop, x.shape[0])
            x = x[k:]
            self._drop -= k
        self._in_samples += x.shape[0]
        if self._resampler is not None:
            y = self._resampler.resample_chunk(x, last=last)
        else:
            y = x
        if self._audio_limit is not None:
            room = self._audio_limit - self._delivered
            if y.shape[0] > room:
                y = y[: max(room, 0)]
        if y.shape[0] == 0:
            return
        self._pending.append(Chunk(audio=np.ascontiguousarray(y, np.float32), audio_start=self._delivered))
        self._delivered += y.shape[0]
        self._out_any = True

    def _finish(self) -> None:
        """End of the container: flush the decoders' and resamplers' tails; say so when it ends
        well before the duration its header states (a truncated or damaged file)."""
        self._eos = True
        reached = max(self._last_t or 0.0, (self._delivered / self.sample_rate) if self._as is not None else 0.0)
        stated = self.info.duration
        if stated and reached < stated - TRUNCATED_S:
            logger.warning("%s: ended at %.1f s of the %.1f s its header states: truncated or damaged?",
                           self.path, reached, stated)
        if self._as is not None:
            for o in self._mono.resample(None) or []:
                self._push_audio(o.to_ndarray()[0])
            self._push_audio(np.zeros(0, np.float32), last=True)
