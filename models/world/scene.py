"""The synthetic audio-visual world: a deterministic, endless scene with exact ground truth.

A ``Scene`` is a pure function of ``(WorldConfig, seed)``. Everything in it is random-access:
``render_audio(start, n, sample_rate)`` and ``render_frame(index)`` depend only on the span asked
for, never on what was rendered before, so a stream cut into chunks of any size equals the clip
rendered at once (tests/test_world.py checks this bit for bit).

How it is built:

* **Events** come from ``n_event_tracks`` independent renewal processes (a gap, an event, a gap,
  ...), drawn lazily in time order from one random stream per track; at most that many overlap.
  Each event has a class, a duration (log-uniform), a pitch (±semitones), an SNR and, unless it
  is off-screen, an object of its class's look that appears a little before its onset and leaves
  a little after its offset.
* **Distractors**: ``n_distractor_tracks`` silent objects of random sound-making classes, each
  replaced by the next when it leaves, so at least that many objects are always visible and the
  picture alone cannot tell which object sounds.
* **Background noise**: two coloured noises (low rumble, broadband) mixed with a slowly wandering
  weight, under a slowly wandering level (±``background_level_db``). The noise is made in 1 s
  blocks; block k is filtered from zero state over the white noise of block k preceded by the last
  0.25 s of block k−1 (ample for the filters to settle), so any block is computed the same way
  whoever asks.
* **SNR**: an event's gain makes its RMS over its span ``snr_db`` above the background's RMS over
  the same span (the expected background RMS, from the level curve), at every sample rate.

Times are seconds from the start of the stream; audio sample n is at n / sample_rate and video
frame k at k / fps exactly.
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from models.world.sounds import SOUND_CLASSES, EventVoice, bandpass_sos, lowpass_sos, render_event
from models.world.visuals import OBJECT_LOOKS, draw_object

# Stream identifiers mixed into seeds so that each random quantity has its own stream.
_TRACK, _DISTRACTOR, _BG_NOISE, _BG_LEVEL, _BG_MIX, _PICTURE, _PIXEL_NOISE = range(1, 8)


def _sosfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """scipy.signal.sosfilt, imported on first use (scipy.signal takes seconds to import, and
    every command-line start imports this module)."""
    from scipy.signal import sosfilt

    return sosfilt(sos, x)


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the synthetic world. ``BENCH`` (models/world/presets.py) is the frozen preset."""

    # Picture
    frame_width: int = 224
    frame_height: int = 224
    fps: int = 30
    object_size: tuple[float, float] = (0.17, 0.26)  # box height as a fraction of the frame height
    object_speed_hz: tuple[float, float] = (0.06, 0.2)  # frequency of each object's sway
    pixel_noise: float = 3.0  # std of per-frame sensor noise, grey levels
    # Events
    n_event_tracks: int = 3  # independent event tracks = the most events that overlap
    track_mean_gap: tuple[float, ...] = (1.5, 7.0, 14.0)  # mean silent gap per track, seconds
    min_gap: float = 0.2
    event_duration: tuple[float, float] = (0.3, 5.0)  # log-uniform, seconds
    pitch_semitones: float = 3.0  # per-instance pitch shift, uniform ±
    snr_db: tuple[float, float] = (0.0, 20.0)  # uniform
    offscreen_probability: float = 0.15  # the event's object is not in the picture
    object_lead: tuple[float, float] = (0.0, 1.5)  # object appears this long before the onset
    object_lag: tuple[float, float] = (0.0, 1.5)  # and leaves this long after the offset
    # Silent distractor objects
    n_distractor_tracks: int = 3
    distractor_lifetime: tuple[float, float] = (2.0, 8.0)
    # Background
    background_rms: float = 0.01  # mean level of the background noise (full scale 1.0)
    background_level_db: float = 6.0  # the level wanders uniformly within ± this
    background_level_knot: float = 1.5  # seconds between level knots
    background_mix_knot: float = 3.0  # seconds between colour-mix knots

    def __post_init__(self) -> None:
        if len(self.track_mean_gap) != self.n_event_tracks:
            raise ValueError(f"track_mean_gap: expected {self.n_event_tracks} values (one per event track), found {len(self.track_mean_gap)}")
        if not 0 < self.event_duration[0] <= self.event_duration[1]:
            raise ValueError(f"event_duration: expected 0 < min <= max, found {self.event_duration}")
        if self.frame_width < 64 or self.frame_height < 64:
            raise ValueError(f"frame size: expected at least 64×64, found {self.frame_width}×{self.frame_height}")

    @property
    def max_event_duration(self) -> float:
        return self.event_duration[1]


@dataclass(frozen=True)
class SceneObject:
    """An object on screen from ``appear`` to ``vanish``, swaying around a centre.

    Attributes:
        uid: unique within the scene (also its value in id maps; 0 means background).
        class_index: the sound class whose look it has.
        event_uid: the event it makes sound for, or None for a silent distractor.
    """

    uid: int
    class_index: int
    appear: float
    vanish: float
    width: int
    height: int
    centre: tuple[float, float]
    sway: tuple[float, float]  # amplitude in pixels, x and y
    sway_hz: tuple[float, float]
    sway_phase: tuple[float, float]
    event_uid: int | None = None

    def visible_at(self, t: float) -> bool:
        return self.appear <= t < self.vanish

    def box_at(self, t: float) -> tuple[int, int, int, int]:
        """Integer box (x0, y0, x1, y1) at time t, x1/y1 exclusive."""
        dt = t - self.appear
        cx = self.centre[0] + self.sway[0] * np.sin(2 * np.pi * self.sway_hz[0] * dt + self.sway_phase[0])
        cy = self.centre[1] + self.sway[1] * np.sin(2 * np.pi * self.sway_hz[1] * dt + self.sway_phase[1])
        x0 = int(round(cx - self.width / 2))
        y0 = int(round(cy - self.height / 2))
        return (x0, y0, x0 + self.width, y0 + self.height)


@dataclass(frozen=True)
class WorldEvent:
    """A sound event with its ground truth. ``obj`` is None when its object is off-screen."""

    uid: int
    class_index: int
    onset: float
    offset: float
    voice: EventVoice
    snr_db: float
    gain: float
    obj: SceneObject | None

    @property
    def label(self) -> str:
        return SOUND_CLASSES[self.class_index].name

    def active_at(self, t: float) -> bool:
        return self.onset <= t < self.offset


@dataclass(frozen=True)
class FrameObject:
    """Ground truth for one object in one frame."""

    object_uid: int
    class_index: int
    box: tuple[int, int, int, int]  # clipped to the frame, x1/y1 exclusive
    sounding: bool
    event_uid: int | None


@dataclass
class _Track:
    rng: np.random.Generator
    items: list = field(default_factory=list)
    starts: list = field(default_factory=list)  # onset (events) or appear (distractors), sorted
    cursor: float = 0.0  # end of the last item drawn


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


def _knot_values(seed: int, stream: int, knots: np.ndarray, low: float, high: float, cache: dict) -> np.ndarray:
    """Uniform values on integer knots, each knot from its own seed: any knot, any order."""
    out = np.empty(len(knots))
    for i, k in enumerate(knots):
        key = (stream, int(k))
        if key not in cache:
            cache[key] = _rng(seed, stream, k + 1).uniform()
        out[i] = low + (high - low) * cache[key]
    return out


def _smooth_curve(seed: int, stream: int, t: np.ndarray, spacing: float, low: float, high: float, cache: dict) -> np.ndarray:
    """A smooth random curve through knots every ``spacing`` seconds (cosine interpolation)."""
    if len(t) == 0:
        return np.zeros(0)
    pos = t / spacing
    k0 = np.floor(pos).astype(np.int64)
    knots = np.arange(k0.min(), k0.max() + 2)
    values = _knot_values(seed, stream, knots, low, high, cache)
    a = values[k0 - knots[0]]
    b = values[k0 + 1 - knots[0]]
    w = 0.5 - 0.5 * np.cos(np.pi * (pos - k0))
    return a + (b - a) * w


class Scene:
    """One endless scene of the world, determined by ``(config, seed)``.

    Example:
        >>> scene = Scene(BENCH, seed=3001)
        >>> audio = scene.render_audio(0, 16000, 16000)   # first second at 16 kHz, (16000,) float32
        >>> rgb, ids = scene.render_frame(0)               # (224, 224, 3) uint8, (224, 224) int32
        >>> truth = scene.frame_objects(0)                 # boxes, classes, who sounds
    """

    def __init__(self, config: WorldConfig, seed: int, *, event_cache: int = 64):
        if seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, found {seed}")
        self.config = config
        self.seed = int(seed)
        self._event_tracks = [_Track(_rng(seed, _TRACK, i)) for i in range(config.n_event_tracks)]
        self._distractor_tracks = [_Track(_rng(seed, _DISTRACTOR, i)) for i in range(config.n_distractor_tracks)]
        self._next_uid = 1
        self._event_cache: OrderedDict = OrderedDict()
        self._event_cache_size = event_cache  # rendered event waveforms kept (LRU)
        self._noise_cache: OrderedDict = OrderedDict()
        self._filters: dict[int, list[tuple[np.ndarray, float]]] = {}
        self._knots: dict[tuple[int, int], float] = {}  # (stream, knot) → uniform draw in [0, 1)

    # ----------------------------------------------------------------- schedule
    def _uid(self, track_kind: int, track: int, index: int) -> int:
        # Stable ids that do not depend on the order tracks were extended in.
        return (track_kind * 16 + track) * 1_000_000 + index + 1

    def _object_geometry(self, rng: np.random.Generator, class_index: int) -> dict:
        c = self.config
        look = OBJECT_LOOKS[class_index]
        height = int(round(rng.uniform(*c.object_size) * c.frame_height))
        width = max(8, int(round(height * look.aspect)))
        room_x = (c.frame_width - width) / 2
        room_y = (c.frame_height - height) / 2
        sway = (rng.uniform(0.1, 0.6) * room_x, rng.uniform(0.1, 0.6) * room_y)
        centre = (
            rng.uniform(width / 2 + sway[0], c.frame_width - width / 2 - sway[0]),
            rng.uniform(height / 2 + sway[1], c.frame_height - height / 2 - sway[1]),
        )
        return dict(
            width=width,
            height=height,
            centre=centre,
            sway=sway,
            sway_hz=(rng.uniform(*c.object_speed_hz), rng.uniform(*c.object_speed_hz)),
            sway_phase=(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)),
        )

    def _draw_event(self, track_index: int) -> None:
        c = self.config
        track = self._event_tracks[track_index]
        rng = track.rng
        onset = track.cursor + c.min_gap + rng.exponential(c.track_mean_gap[track_index])
        lo, hi = np.log(c.event_duration[0]), np.log(c.event_duration[1])
        duration = float(np.exp(rng.uniform(lo, hi)))
        class_index = int(rng.integers(len(SOUND_CLASSES)))
        pitch = float(2.0 ** (rng.uniform(-c.pitch_semitones, c.pitch_semitones) / 12.0))
        snr_db = float(rng.uniform(*c.snr_db))
        voice_seed = int(rng.integers(2**31))
        offscreen = bool(rng.random() < c.offscreen_probability)
        lead, lag = rng.uniform(*c.object_lead), rng.uniform(*c.object_lag)
        geometry = self._object_geometry(rng, class_index)  # drawn even when off-screen: keeps streams aligned
        uid = self._uid(1, track_index, len(track.items))
        offset = onset + duration
        obj = None
        if not offscreen:
            obj = SceneObject(uid=uid, class_index=class_index, appear=onset - lead, vanish=offset + lag, event_uid=uid, **geometry)
        gain = self.background_rms_between(onset, offset) * 10.0 ** (snr_db / 20.0)
        event = WorldEvent(uid, class_index, float(onset), float(offset), EventVoice(duration, pitch, voice_seed), snr_db, float(gain), obj)
        track.items.append(event)
        track.starts.append(event.onset)
        track.cursor = offset

    def _draw_distractor(self, track_index: int) -> None:
        c = self.config
        track = self._distractor_tracks[track_index]
        rng = track.rng
        appear = track.cursor
        vanish = appear + rng.uniform(*c.distractor_lifetime)
        class_index = int(rng.integers(len(SOUND_CLASSES)))
        uid = self._uid(2, track_index, len(track.items))
        obj = SceneObject(uid=uid, class_index=class_index, appear=appear, vanish=vanish, **self._object_geometry(rng, class_index))
        track.items.append(obj)
        track.starts.append(appear)
        track.cursor = vanish

    def _extend_to(self, t: float) -> None:
        """Draw events and distractors until every track has passed ``t``."""
        for i, track in enumerate(self._event_tracks):
            while track.cursor <= t:
                self._draw_event(i)
        for i, track in enumerate(self._distractor_tracks):
            while track.cursor <= t:
                self._draw_distractor(i)

    def events_between(self, t0: float, t1: float) -> list[WorldEvent]:
        """Events overlapping [t0, t1), sorted by onset."""
        self._extend_to(t1 + self.config.max_event_duration)
        found = []
        for track in self._event_tracks:
            # Events in one track never overlap, so those before ``t0 − max duration`` cannot reach t0.
            lo = bisect.bisect_left(track.starts, t0 - self.config.max_event_duration)
            hi = bisect.bisect_left(track.starts, t1)
            found.extend(e for e in track.items[lo:hi] if e.offset > t0)
        return sorted(found, key=lambda e: (e.onset, e.uid))

    def objects_at(self, t: float) -> list[SceneObject]:
        """Objects visible at time t, oldest first (the drawing order)."""
        c = self.config
        reach = c.max_event_duration + c.object_lead[1] + c.object_lag[1]
        objs = [e.obj for e in self.events_between(t - reach, t + c.object_lead[1] + 1e-9) if e.obj is not None and e.obj.visible_at(t)]
        for track in self._distractor_tracks:
            i = bisect.bisect_right(track.starts, t) - 1
            if i >= 0 and track.items[i].visible_at(t):
                objs.append(track.items[i])
        return sorted(objs, key=lambda o: (o.appear, o.uid))

    # --------------------------------------------------------------- background
    def background_level(self, t: np.ndarray) -> np.ndarray:
        """Background RMS (as a linear factor of full scale) at times t (n,)."""
        c = self.config
        level_db = _smooth_curve(self.seed, _BG_LEVEL, t, c.background_level_knot, -c.background_level_db, c.background_level_db, self._knots)
        return c.background_rms * 10.0 ** (level_db / 20.0)

    def background_rms_between(self, t0: float, t1: float) -> float:
        """Expected background RMS over [t0, t1), from the level curve on a 200 Hz grid."""
        grid = np.arange(t0, t1, 1 / 200.0) if t1 - t0 > 1 / 200.0 else np.array([t0])
        return float(np.sqrt(np.mean(self.background_level(grid) ** 2)))

    def _noise_filters(self, sample_rate: int) -> list[tuple[np.ndarray, float]]:
        """Second-order sections of the two noise colours, with the gain that makes each unit-variance."""
        if sample_rate in self._filters:
            return self._filters[sample_rate]
        filters = self._filters[sample_rate] = []
        for sos in (lowpass_sos(350.0, sample_rate), bandpass_sos(200.0, 5000.0, sample_rate)):
            impulse = np.zeros(sample_rate)
            impulse[0] = 1.0
            response = _sosfilt(sos, impulse)
            filters.append((sos, 1.0 / np.sqrt(np.sum(response**2))))
        return filters

    def _noise_block(self, k: int, sample_rate: int) -> np.ndarray:
        """Block k (2, sample_rate) of the two unit-variance noise colours."""
        key = (k, sample_rate)
        if key in self._noise_cache:
            self._noise_cache.move_to_end(key)
            return self._noise_cache[key]
        warmup = sample_rate // 4
        previous = _rng(self.seed, _BG_NOISE, sample_rate, k).standard_normal((2, sample_rate))[:, -warmup:]
        white = np.concatenate([previous, _rng(self.seed, _BG_NOISE, sample_rate, k + 1).standard_normal((2, sample_rate))], axis=1)
        block = np.stack([_sosfilt(sos, white[i])[warmup:] * g for i, (sos, g) in enumerate(self._noise_filters(sample_rate))])
        self._noise_cache[key] = block
        if len(self._noise_cache) > 8:
            self._noise_cache.popitem(last=False)
        return block

    def render_background(self, start: int, n: int, sample_rate: int) -> np.ndarray:
        """Background noise for samples [start, start + n) at ``sample_rate``, (n,) float64."""
        c = self.config
        colours = np.empty((2, n))
        pos = start
        while pos < start + n:
            k, off = divmod(pos, sample_rate)
            take = min(sample_rate - off, start + n - pos)
            colours[:, pos - start : pos - start + take] = self._noise_block(k, sample_rate)[:, off : off + take]
            pos += take
        t = (start + np.arange(n)) / sample_rate
        mix = _smooth_curve(self.seed, _BG_MIX, t, c.background_mix_knot, 0.0, np.pi / 2, self._knots)
        return (np.cos(mix) * colours[0] + np.sin(mix) * colours[1]) * self.background_level(t)

    # -------------------------------------------------------------------- audio
    def event_waveform(self, event: WorldEvent, sample_rate: int) -> np.ndarray:
        """The event as heard in the mix (gain applied), (round(duration × sample_rate),) float64."""
        key = (event.uid, sample_rate)
        if key not in self._event_cache:
            self._event_cache[key] = render_event(event.class_index, event.voice, sample_rate) * event.gain
            if len(self._event_cache) > self._event_cache_size:
                self._event_cache.popitem(last=False)
        self._event_cache.move_to_end(key)
        return self._event_cache[key]

    def render_audio(self, start: int, n: int, sample_rate: int, *, background: bool = True) -> np.ndarray:
        """The mix for samples [start, start + n) at ``sample_rate``, (n,) float32.

        Random access: the result depends only on the span, so chunked rendering equals one-shot.
        """
        if start < 0 or n < 0:
            raise ValueError(f"render_audio: expected start >= 0 and n >= 0, found start={start}, n={n}")
        out = self.render_background(start, n, sample_rate) if background else np.zeros(n)
        for event in self.events_between(start / sample_rate, (start + n) / sample_rate):
            wave = self.event_waveform(event, sample_rate)
            first = int(round(event.onset * sample_rate))
            lo, hi = max(start, first), min(start + n, first + len(wave))
            if hi > lo:
                out[lo - start : hi - start] += wave[lo - first : hi - first]
        return out.astype(np.float32)

    # -------------------------------------------------------------------- video
    @cached_property
    def _backdrop(self) -> np.ndarray:
        """Per-scene gradient backdrop (H, W, 3) float32."""
        c = self.config
        rng = _rng(self.seed, _PICTURE)
        top, bottom = rng.uniform(30, 110, 3), rng.uniform(30, 110, 3)
        ramp = np.linspace(0.0, 1.0, c.frame_height)[:, None, None]
        return np.broadcast_to(top + (bottom - top) * ramp, (c.frame_height, c.frame_width, 3)).astype(np.float32)

    def frame_time(self, index: int) -> float:
        return index / self.config.fps

    def render_frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``index`` (at index / fps s): RGB (H, W, 3) uint8 and the object-id map (H, W) int32.

        The id map holds, per pixel, the uid of the topmost object drawn there (0 = backdrop).
        """
        c = self.config
        t = self.frame_time(index)
        lighting = 1.0 + 0.12 * np.sin(2 * np.pi * 0.05 * t + (self.seed % 97))
        noise = _rng(self.seed, _PIXEL_NOISE, index + 1).standard_normal((c.frame_height, c.frame_width, 1)).astype(np.float32)
        frame = np.clip(self._backdrop * lighting + noise * c.pixel_noise, 0, 255).astype(np.uint8)
        id_map = np.zeros((c.frame_height, c.frame_width), np.int32)
        for obj in self.objects_at(t):
            draw_object(frame, id_map, OBJECT_LOOKS[obj.class_index], obj.box_at(t), obj.uid)
        return frame, id_map

    def frame_objects(self, index: int) -> list[FrameObject]:
        """Ground truth of frame ``index``: every visible object, its clipped box and whether it sounds."""
        c = self.config
        t = self.frame_time(index)
        active = {e.uid for e in self.events_between(t, t + 1e-9) if e.active_at(t)}
        out = []
        for obj in self.objects_at(t):
            x0, y0, x1, y1 = obj.box_at(t)
            box = (max(x0, 0), max(y0, 0), min(x1, c.frame_width), min(y1, c.frame_height))
            out.append(FrameObject(obj.uid, obj.class_index, box, obj.event_uid in active, obj.event_uid))
        return out
