"""The synthetic world as an ordinary source (aiortc AudioStreamTrack / VideoStreamTrack style)."""
from __future__ import annotations

from models.world import Scene, get_preset

from .base import Chunk, EndOfStream, Source

__all__ = ["SyntheticSource"]


class SyntheticSource(Source):
    """Plays a world scene: audio and frames exactly as ``Scene`` renders them.

    Chunk ``k`` holds video frame ``k`` (at ``k / fps`` s) and the audio samples
    ``[k * sample_rate // fps, (k + 1) * sample_rate // fps)``, i.e. one frame period of sound
    (torchaudio's device_avsr reads its camera and microphone the same way). Because the world
    is random-access, the stream equals ``scene.render_audio(0, n, sample_rate)`` and
    ``scene.render_frame(k)`` bit for bit. The stream never ends; the capture's ``duration``
    (or ``seconds`` here) limits it. The capture paces it in real time unless told not to.

    Args:
        seed: Scene seed (the source is named ``synthetic:SEED``, the name the world's
            reference events carry).
        preset: World preset name ("bench", "tiny").
        sample_rate: Audio rate in Hz.
        audio: Deliver audio.
        video: Deliver frames.
        seconds: End the stream after this many seconds (None: endless).
    """

    def __init__(
        self,
        seed: int,
        preset: str = "bench",
        sample_rate: int = 16000,
        *,
        audio: bool = True,
        video: bool = True,
        seconds: float | None = None,
    ) -> None:
        if not (audio or video):
            raise ValueError("SyntheticSource: expected audio, video or both, found neither")
        if int(sample_rate) <= 0:
            raise ValueError(f"SyntheticSource sample_rate: expected > 0 Hz, found {sample_rate}")
        self.config = get_preset(preset)
        self.scene = Scene(self.config, int(seed))
        self.seed = int(seed)
        self.preset = preset
        self.name = f"synthetic:{self.seed}"
        self._fps = int(self.config.fps)
        self.sample_rate = int(sample_rate) if audio else None
        self.channels = 1 if audio else 0
        self.fps = float(self._fps) if video else None
        self.frame_size = (self.config.frame_width, self.config.frame_height) if video else None
        self._rate = int(sample_rate)
        self._end_frame = None if seconds is None else int(round(seconds * self._fps))
        self._k = 0

    @property
    def frames_delivered(self) -> int:
        return self._k

    def _open(self) -> None:
        self._k = 0
        if self.sample_rate is not None:
            # The scene's first render sets up its sounds (about 0.5 s); paid here, before the
            # capture's clock starts, it does not arrive as a burst that makes the first hops late.
            self.scene.render_audio(0, 1, self._rate)

    def _close(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> Chunk:
        k = self._k
        if self._end_frame is not None and k >= self._end_frame:
            raise EndOfStream(self.name)
        self._k = k + 1
        chunk = Chunk()
        if self.sample_rate is not None:
            lo = k * self._rate // self._fps
            hi = (k + 1) * self._rate // self._fps
            chunk.audio = self.scene.render_audio(lo, hi - lo, self._rate)
            chunk.audio_start = lo
        if self.fps is not None:
            chunk.frame, _ = self.scene.render_frame(k)
            chunk.frame_time = k / self._fps
            chunk.frame_index = k
        return chunk
