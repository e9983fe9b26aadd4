"""The live-model protocol on the real pipeline and the synthetic world: labelers that take clips of
frames, labelers that score frames (onsets at frame resolution), labelers with their own hop and
state. The labelers here are tiny test models (the thing under test is how they are fed)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from models.core.live import FRAME_AT_CENTRE, FRAME_AT_END, FrameScores, WindowSpec
from models.world import Scene, get_preset
from realtime import schema
from realtime.models import LiveModel, LiveModels, ModelSource
from realtime.pipeline import PipelineConfig, PipelineError, run_pipeline
from realtime.rings import AudioRing, FrameRing
from realtime.rolling import HysteresisConfig
from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig
from realtime.sources.synthetic import SyntheticSource

SR = 16000
SEED = 200000
PRESET = "tiny"  # 96 x 96 at 15 fps
FPS = get_preset(PRESET).fps
LABELS = ("a", "b")
PLAIN = HysteresisConfig(on=0.5, off=0.3, smooth_hops=1)


class Watcher:
    """A first sink, as a display is (``run_pipeline(view=...)``): keeps every result, and the
    newest frame in the frame ring when each hop's result came out (offline nothing is written
    between a hop's models and its sinks)."""

    def __init__(self):
        self.recorder = None  # run_pipeline hands a display the run's recorder
        self.context = None
        self.results, self.newest = [], {}

    def open(self, context):
        self.context = context

    def write(self, result):
        self.results.append(result)
        if self.context.frame_ring is not None and not result.final:
            self.newest[result.hop] = self.context.frame_ring.newest()[1]

    def close(self):
        pass

    def now(self) -> float:
        """Stream time of the newest sample: offline, where the running hop's windows end."""
        return self.context.audio_ring.total_written / self.context.sample_rate

    def runs(self, name: str):
        return [(r, run) for r in self.results if not r.final for run in r.runs if run.name == name]


def live(model, name: str, tmp_path, hysteresis=PLAIN) -> LiveModel:
    return LiveModel(name, "labeler", model, ModelSource(tmp_path, "onnx", "labeler"), "numpy", hysteresis)


def run_world(labelers, seconds: float, tmp_path, **options):
    """The avlive pipeline, offline (every hop, as fast as possible) on the tiny world."""
    watcher = Watcher()
    options = {"realtime": False, "jsonl": None, "summary": None, **options}
    config = PipelineConfig(source=f"synthetic:{SEED}:{PRESET}", duration=seconds, **options)
    outcome = run_pipeline(config, LiveModels(list(labelers), None), log=None, view=watcher)
    return outcome, watcher


class PictureLabeler:
    """Keeps a copy of every picture argument it is given; flat scores."""

    def __init__(self, window: WindowSpec):
        self.window, self.labels = window, LABELS
        self.pictures = []

    def __call__(self, audio, frame=None):
        self.pictures.append(None if frame is None else frame.copy())
        return np.full(len(LABELS), 0.1, np.float32)


def nearest_held(target: float, newest: int, slots: int) -> int:
    held = np.arange(max(0, newest - slots + 1), newest + 1)
    return int(held[np.argmin(np.abs(held / FPS - target))])


# ------------------------------------------------------------------------------ clips of frames


def test_clip_labelers_get_the_frames_at_their_rate_and_single_frame_labelers_still_work(tmp_path):
    end_clip = PictureLabeler(WindowSpec(0.6, SR, frames=4, frame_rate=5.0, frame_at=FRAME_AT_END))
    centre_clip = PictureLabeler(WindowSpec(0.8, SR, frames=3, frame_rate=7.5, frame_at=FRAME_AT_CENTRE))
    single = PictureLabeler(WindowSpec(0.5, SR, needs_frame=True))
    assert end_clip.window.needs_frame and end_clip.window.frame_lookback_s == pytest.approx(0.6)
    assert centre_clip.window.frame_offsets() == pytest.approx((-0.4 - 1 / 7.5, -0.4, -0.4 + 1 / 7.5))
    models = [live(end_clip, "end", tmp_path), live(centre_clip, "centre", tmp_path), live(single, "single", tmp_path)]
    hop = 0.2  # hops and clip instants on the 15 fps frame grid: no target is half-way between two frames
    outcome, watcher = run_world(models, 3.0, tmp_path, hop_s=hop)
    scene = Scene(get_preset(PRESET), SEED)
    slots = watcher.context.frame_ring.slots

    for model, name in ((end_clip, "end"), (centre_clip, "centre")):
        runs = watcher.runs(name)
        assert len(runs) == len(model.pictures) == 15  # every hop of 3 s
        offsets = model.window.frame_offsets()
        for (result, run), clip in zip(runs, model.pictures):
            n = model.window.frames
            assert clip.shape == (n, 96, 96, 3)
            newest = watcher.newest[result.hop]
            targets = [run.end_time + off for off in offsets]
            want = [nearest_held(t, newest, slots) for t in targets]
            assert list(run.frame_indices) == want and run.frame_index == want[-1]
            assert run.frame_times == pytest.approx([k / FPS for k in want])
            for t, k in zip(targets, want):  # sampled at the clip's rate: the frame at each instant
                if 0 <= t <= newest / FPS:  # (the window's end frame is not in yet, offline: its neighbour)
                    assert k == round(t * FPS)
            for i in (0, n - 1):  # the pixels are those frames' pictures
                np.testing.assert_array_equal(clip[i], scene.render_frame(want[i])[0])
    # a single-frame labeler: (H, W, 3), the frame nearest its window's end
    runs = watcher.runs("single")
    assert len(runs) == 15 and all(p.shape == (96, 96, 3) for p in single.pictures)
    for (result, run), picture in zip(runs, single.pictures):
        assert run.frame_indices == ()
        assert run.frame_index == nearest_held(run.end_time, watcher.newest[result.hop], slots)
        np.testing.assert_array_equal(picture, scene.render_frame(run.frame_index)[0])
    assert outcome.summary.missing_frames == 0


def play(source: SyntheticSource, audio_ring: AudioRing, frame_ring: FrameRing | None, until: float) -> None:
    """The capture's job, on this thread: write the world's chunks up to stream time ``until``."""
    while audio_ring.total_written < int(round(until * SR)):
        chunk = source.read()
        if frame_ring is not None:
            frame_ring.write(chunk.frame, chunk.frame_time)
        audio_ring.write(chunk.audio)


def test_a_clip_takes_only_the_frames_it_uses_and_a_ring_too_short_for_it_drops_the_run(caplog):
    source = SyntheticSource(SEED, PRESET, SR).open()
    audio_ring, frame_ring = AudioRing(4 * SR, SR), FrameRing(16, 96, 96)  # 16 frames: 1.07 s back
    fits = PictureLabeler(WindowSpec(0.5, SR, frames=4, frame_rate=5.0))  # reaches 0.6 s back
    too_long = PictureLabeler(WindowSpec(0.5, SR, frames=8, frame_rate=5.0))  # reaches 1.4 s back
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("fits", fits), ModelSlot("long", too_long)],
                          config=SchedulerConfig(hop_s=0.25))
    taken, results = set(), []
    with caplog.at_level(logging.WARNING, logger="realtime.scheduler"):
        for k in range(1, 13):
            play(source, audio_ring, frame_ring, 0.25 * k)
            results.append(scheduler.step())
            for run in results[-1].runs:
                if run.name == "fits":
                    taken.update(run.frame_indices)
    scheduler.stop()
    long_runs = [r.stream_time for r in results if any(run.name == "long" for run in r.runs)]
    # it runs while the ring still holds frame 0 (its clip starts before the stream: frame 0), then
    # never: frame 0 and the ones after it are gone, and it is not handed frames 0.3 s too new
    assert long_runs and max(long_runs) < 16 / FPS
    assert results[-1].counters.missing_frames == 12 - len(long_runs)
    assert sum("frame_lookback_s" in m and "'long'" in m for m in caplog.messages) == 1  # said once
    # overwrites count exactly the frames that left the ring without a model using them
    gone = frame_ring.frames_written - frame_ring.slots
    assert frame_ring.overwrites == gone - len({k for k in taken if k < gone}) > 0
    assert scheduler.model_runs()["fits"] == 12


# ------------------------------------------------------------------------------ frame-level scores

FRAME = 0.02  # the frame labeler's frame hop


class FrameOracle:
    """A sound-event detector stand-in: scores each 20 ms frame of its 1 s window; class "a" is on
    over [on, off) of stream time (it reads the stream time of its window's end from the watcher,
    as a model would hear it). ``frames=False``: only the newest frame's scores, as (C,)."""

    def __init__(self, watcher: Watcher, on: float, off: float, frames: bool = True, labels=LABELS):
        self.window, self.labels = WindowSpec(1.0, SR), labels
        self.watcher, self.on, self.off, self.frames = watcher, on, off, frames
        n = int(round(self.window.seconds / FRAME))
        self.scores = np.full((n, len(LABELS)), 0.05, np.float32)
        self.last = -0.5 * FRAME - FRAME * np.arange(n - 1, -1, -1)  # centres relative to the window's end

    def __call__(self, audio, frame=None):
        centres = self.watcher.now() + self.last
        self.scores[:, 0] = np.where((centres >= self.on) & (centres < self.off), 0.95, 0.05)
        if not self.frames:
            return self.scores[-1].copy()
        return FrameScores.spaced(self.scores, FRAME, last_time=-0.5 * FRAME)


def test_frame_scores_put_onsets_and_offsets_on_the_frame_grid_not_the_hop_grid(tmp_path):
    on, off = 1.377, 2.613  # between hops (0.25 s) and between frame centres
    watcher = Watcher()
    frame_model = FrameOracle(watcher, on, off)
    hop_model = FrameOracle(watcher, on, off, frames=False, labels=("hop-a", "hop-b"))
    config = PipelineConfig(source=f"synthetic:{SEED}:{PRESET}", duration=4.0, realtime=False,
                            jsonl=str(tmp_path / "hops.jsonl"), summary=None)
    models = LiveModels([live(frame_model, "frames", tmp_path), live(hop_model, "hops", tmp_path)], None)
    run_pipeline(config, models, log=None, view=watcher)

    ended = {e.label: e for r in watcher.results for e in r.ended}
    assert sorted(ended) == ["a", "hop-a"]
    # the frame labeler's event starts and ends within one frame of the truth ...
    assert abs(ended["a"].onset - on) <= FRAME and abs(ended["a"].offset - off) <= FRAME
    # ... where per-window scores can only say "by the next hop" (1.5 s, 2.75 s)
    assert ended["hop-a"].onset == pytest.approx(1.5) and ended["hop-a"].offset == pytest.approx(2.75)
    assert abs(ended["hop-a"].onset - on) > 5 * FRAME
    # the JSON lines carry the same times
    records = [json.loads(line) for line in (tmp_path / "hops.jsonl").read_text().splitlines()]
    for obj in records:
        schema.validate(obj)
    written = {e["label"]: (e["onset"], e["offset"]) for r in records for e in r["ended"]}
    assert written["a"] == pytest.approx((ended["a"].onset, ended["a"].offset), abs=1e-3)
    # the frame labeler's newest-frame scores are what the hop shows
    last = [r for r in watcher.results if not r.final][-1]
    assert last.scores["frames"].shape == (2,) and last.scores["frames"] == pytest.approx(last.scores["hops"])


def test_frame_scores_and_window_specs_name_their_mistakes():
    with pytest.raises(ValueError, match=r"FrameScores.times: expected shape \(3,\)"):
        FrameScores(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="FrameScores.times: expected finite, strictly increasing"):
        FrameScores(np.zeros((2, 2)), np.array([-0.1, -0.1]))
    with pytest.raises(ValueError, match=r"relative to the window's end \(<= 0\)"):
        FrameScores(np.zeros((2, 2)), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"FrameScores.scores: expected shape \(frames >= 1, classes\)"):
        FrameScores(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="WindowSpec.frame_rate: expected Hz > 0 for a clip of frames=8"):
        WindowSpec(1.0, SR, frames=8)
    with pytest.raises(ValueError, match="WindowSpec.frames: expected an int >= 0"):
        WindowSpec(1.0, SR, frames=-1)
    with pytest.raises(ValueError, match=r"WindowSpec.hop_seconds: expected seconds > 0 or None"):
        WindowSpec(1.0, SR, hop_seconds=0.0)
    one = WindowSpec(1.0, SR, frames=1)
    assert one.needs_frame and one.frame_offsets() == (0.0,) and WindowSpec(1.0, SR).frame_offsets() == ()


# ------------------------------------------------------------------------------ own hop and state


class Stateful:
    """Keeps a running sum of the audio it heard; logs every call and reset."""

    def __init__(self, window: WindowSpec, log: list, name: str):
        self.window, self.labels, self.log, self.name = window, LABELS, log, name
        self.state = 0.0

    def reset(self):
        self.state = 0.0
        self.log.append((self.name, "reset"))

    def __call__(self, audio, frame=None):
        self.state += float(np.abs(audio).sum())
        self.log.append((self.name, "call"))
        return np.full(len(LABELS), 0.1, np.float32)


def test_a_model_with_its_own_hop_runs_every_other_hop_and_is_reset_once_at_the_start(tmp_path):
    log = []
    slow = Stateful(WindowSpec(0.5, SR, hop_seconds=0.5), log, "slow")
    every = Stateful(WindowSpec(0.5, SR), log, "every")
    outcome, watcher = run_world([live(slow, "slow", tmp_path), live(every, "every", tmp_path)], 3.0, tmp_path,
                                 jsonl=str(tmp_path / "hops.jsonl"))
    hops = [r.hop for r, _ in watcher.runs("slow")]
    assert hops == list(range(1, 12, 2))  # hops 1, 3, ... 11 of the 0.25 s hops 1..12
    assert [r.hop for r, _ in watcher.runs("every")] == list(range(1, 13))
    assert [(name, what) for name, what in log if what == "reset"] == [("slow", "reset"), ("every", "reset")]
    assert log.index(("slow", "reset")) < log.index(("slow", "call"))
    assert [run.reset for _, run in watcher.runs("slow")] == [True] + [False] * 5
    assert watcher.results[-1].counters.resets == 2
    records = [json.loads(line) for line in (tmp_path / "hops.jsonl").read_text().splitlines()]
    for obj in records:
        schema.validate(obj)
    assert records[-1]["schema_minor"] >= 2 and records[-1]["counters"]["resets"] == 2  # resets: since schema 1.2


def test_a_hop_that_does_not_fit_and_frames_without_a_camera_are_one_line_errors(tmp_path):
    odd = Stateful(WindowSpec(0.5, SR, hop_seconds=0.3), [], "odd")
    with pytest.raises(PipelineError, match=r"hop_seconds.*--hop 0.25 s") as info:
        run_world([live(odd, "odd", tmp_path)], 1.0, tmp_path)
    assert "\n" not in str(info.value)
    clip = PictureLabeler(WindowSpec(0.5, SR, frames=4, frame_rate=8.0))
    with pytest.raises(PipelineError, match="camera none") as info:
        run_world([live(clip, "clip", tmp_path)], 1.0, tmp_path, camera="none")
    assert "\n" not in str(info.value)


def test_stateful_models_are_reset_after_a_gap_and_on_a_resync_and_hops_must_be_multiples():
    source = SyntheticSource(SEED, PRESET, SR, video=False).open()
    audio_ring = AudioRing(4 * SR, SR)
    log = []
    own = Stateful(WindowSpec(0.5, SR, hop_seconds=0.5), log, "own")
    resampled = Stateful(WindowSpec(0.5, 8000), log, "8k")  # on a resampled stream
    scheduler = Scheduler(audio_ring, None, [ModelSlot("own", own), ModelSlot("8k", resampled)],
                          config=SchedulerConfig(hop_s=0.25))

    def hop(t):
        play(source, audio_ring, None, t)
        result = scheduler.step()
        return {run.name: run.reset for run in result.runs}, result

    assert hop(0.25)[0] == {"own": True, "8k": True}  # the start
    assert hop(0.5)[0] == {"8k": False}
    assert hop(0.75)[0] == {"own": False, "8k": False}
    assert hop(1.0)[0] == {"8k": False}
    # inference fell behind: 0.6 s arrive at once, hop 5 is skipped (own was due there)
    runs, result = hop(1.6)
    assert result.hop == 6 and result.counters.skips == 1 and runs == {"own": True, "8k": True}
    assert result.counters.resyncs == 0
    assert hop(1.75)[0] == {"8k": False}
    assert hop(2.0)[0] == {"own": False, "8k": False}
    # a long gap: the resampling stream restarts as well
    runs, result = hop(4.0)
    assert result.counters.resyncs == 1 and runs == {"own": True, "8k": True}
    assert hop(4.25)[0] == {"8k": False}
    scheduler.stop()
    assert scheduler.counters().resets == 6 == sum(what == "reset" for _, what in log)

    with pytest.raises(ValueError, match=r"window.hop_seconds: expected a whole multiple of the pipeline hop 0.25 s .* "
                                         r"found 0.3 s \(1.2 hops\)"):
        Scheduler(audio_ring, None, [ModelSlot("x", Stateful(WindowSpec(0.5, SR, hop_seconds=0.3), [], "x"))],
                  config=SchedulerConfig(hop_s=0.25))
    with pytest.raises(ValueError, match=r"found 0.1 s \(0.4 hops\)"):
        Scheduler(audio_ring, None, [ModelSlot("x", Stateful(WindowSpec(0.5, SR, hop_seconds=0.1), [], "x"))],
                  config=SchedulerConfig(hop_s=0.25))
    with pytest.raises(ValueError, match=r"ModelSlot.every \(x\): expected 1 for a model that declares its own hop"):
        ModelSlot("x", Stateful(WindowSpec(0.5, SR, hop_seconds=0.5), [], "x"), every=2)


# ------------------------------------------------------------------------------ opening labelers


def labeler_metadata(*inputs, needs_frame=True):
    from models.core.metadata import ModelMetadata, TensorSpec

    return ModelMetadata(family="toy", task="labeler", labels=LABELS, sample_rate=SR, window_seconds=1.0,
                         needs_frame=needs_frame, inputs=tuple(TensorSpec(n, s, "float32") for n, s in inputs),
                         outputs=(TensorSpec("probs", ("batch", 2), "float32"),))


def test_labelers_that_take_frames_pass_the_use_check_and_a_wrong_waveform_is_still_named(tmp_path):
    from realtime.models import ModelError, _check_use

    def check(meta):
        _check_use(ModelSource(tmp_path / "m.onnx", "onnx", "labeler", meta), "labeler")

    check(labeler_metadata(("frames", ("batch", 3, 96, 96)), ("audio", ("batch", SR))))  # a single frame
    check(labeler_metadata(("clip", ("batch", 8, 3, 96, 96)), ("spectrogram", ("batch", 1, 100, 64))))  # a clip
    check(labeler_metadata(("x", ("batch", SR)), needs_frame=False))  # the waveform-in labeler, however named
    with pytest.raises(ModelError, match=r"inputs\[1\].shape"):
        check(labeler_metadata(("frames", ("batch", 3, 96, 96)), ("audio", ("batch", 8000))))
    with pytest.raises(ModelError, match=r"inputs\[0\].shape"):
        check(labeler_metadata(("x", ("batch", 8000)), needs_frame=False))


def test_a_model_that_takes_exact_hops_gets_windows_exactly_one_hop_apart_through_resampling_jitter():
    """A model whose state is the audio before its newest hop (``WindowSpec.exact_hops``, the
    streaming CRNN) on a resampled stream (48 kHz capture, 16 kHz model) fed in blocks of uneven
    size: its windows end exactly one of its hops apart (soxr's varying hold-back and the blocks
    never shift them), a hop whose grid point has not arrived runs nothing, and skipped hops
    re-place the grid and reset it. Before this, its windows ended at the newest sample, so the
    chunks it was given overlapped or skipped a few milliseconds at every hop, and its scores
    drifted from those of the same audio streamed offline (live event F1 0.772 against 0.832)."""
    capture_rate, hop_s = 48000, 0.08
    source = SyntheticSource(SEED, PRESET, capture_rate, video=False).open()
    audio_ring = AudioRing(4 * capture_rate, capture_rate)
    log = []
    exact = Stateful(WindowSpec(0.1, SR, hop_seconds=hop_s, exact_hops=True), log, "exact")
    scheduler = Scheduler(audio_ring, None, [ModelSlot("exact", exact)], config=SchedulerConfig(hop_s=hop_s))
    rng = np.random.default_rng(0)
    hop_n, step = int(hop_s * capture_rate), int(hop_s * SR)
    ends, resets, idle, buffered = [], [], 0, np.zeros(0, np.float32)

    def feed(n: int) -> None:
        nonlocal buffered
        while len(buffered) < n:
            buffered = np.concatenate([buffered, source.read().audio])
        audio_ring.write(buffered[:n])
        buffered = buffered[n:]

    for k in range(1, 61):
        # hop k fires once its boundary is captured, with up to a quarter hop more in the last block;
        # at k = 40 inference stalled and six hops arrive at once
        k += 6 * (k >= 40)
        feed(k * hop_n + int(rng.integers(0, hop_n // 4)) - audio_ring.total_written)
        runs = {run.name: run for run in scheduler.step().runs}
        if "exact" in runs:
            ends.append(runs["exact"].end_index)
            resets.append(runs["exact"].reset)
        else:
            idle += 1
    scheduler.stop()
    gaps = np.diff(ends)
    assert resets[0] and resets.count(True) == 2  # the start and the stall
    stall = resets.index(True, 1)
    assert np.all(gaps[:stall - 1] == step) and np.all(gaps[stall:] == step) and gaps[stall - 1] >= 2 * step
    assert idle == 0 and len(ends) == 60  # the half-hop margin absorbed soxr's hold-back and the blocks
    assert [what for name, what in log if name == "exact"].count("reset") == 2
    # a hop whose grid point has not arrived (the newest end less than a step past the previous
    # window) runs nothing; the next one takes exactly the next grid point
    slot = scheduler._slots[0]
    last = slot.grid_end
    assert Scheduler._exact_hop_end(slot, last + step - 1, False) == (None, False, 0) and slot.grid_end == last
    assert Scheduler._exact_hop_end(slot, last + step + 7, False) == (last + step, False, 0)


class OneFramePerHop:
    """A stateful frame-level labeler (as the streaming CRNN): one frame per call, centred half a
    hop before its window's end; keeps a copy of every window it was given."""

    def __init__(self, window: WindowSpec):
        self.window, self.labels = window, LABELS
        self.windows: list[np.ndarray] = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def __call__(self, audio, frame=None):
        self.windows.append(audio.copy())
        score = np.full((1, len(LABELS)), len(self.windows) / 1000, np.float32)
        return FrameScores(score, np.array([-self.window.hop_seconds / 2]))


def test_an_exact_hop_model_catches_up_on_grid_points_that_arrive_together_instead_of_starting_anew():
    """When one or two hops were skipped (inference fell behind, or jitter beyond half a hop),
    an audio-only ``exact_hops`` model is called on each grid point that arrived, oldest first,
    within the tick: its windows stay exactly one hop apart, its state is kept (no reset: the
    CRNN's GRU history is not emptied) and its frames are joined, each on its own time. Further
    behind, the grid starts anew. Before this, a single skipped hop reset the model (6, 1 and 9
    times in 150 s on the three bench seeds at real-time pace)."""
    capture_rate, hop_s = 48000, 0.08
    source = SyntheticSource(SEED, PRESET, capture_rate, video=False).open()
    audio_ring = AudioRing(4 * capture_rate, capture_rate)
    model = OneFramePerHop(WindowSpec(0.1, SR, hop_seconds=hop_s, exact_hops=True))
    scheduler = Scheduler(audio_ring, None, [ModelSlot("m", model)], config=SchedulerConfig(hop_s=hop_s))
    rng = np.random.default_rng(1)
    hop_n, step = int(hop_s * capture_rate), int(hop_s * SR)
    buffered = np.zeros(0, np.float32)
    runs, frames = [], []
    jump = {20: 1, 30: 2, 40: 5}  # hops skipped before hop k: 1 and 2 are caught up, 5 are too many
    k = 0
    for i in range(1, 51):
        k += 1 + jump.get(i, 0)
        n = k * hop_n + int(rng.integers(0, hop_n // 4)) - audio_ring.total_written
        while len(buffered) < n:
            buffered = np.concatenate([buffered, source.read().audio])
        audio_ring.write(buffered[:n])
        buffered = buffered[n:]
        result = scheduler.step()
        (run,) = result.runs
        runs.append(run)
        frames.append(result.frame_scores["m"])
    scheduler.stop()

    chunks = [r.chunks for r in runs]
    assert chunks[19] == 2 and chunks[29] == 3 and chunks.count(1) == len(runs) - 2
    assert [i for i, r in enumerate(runs) if r.reset] == [0, 39]  # the start and the five skipped hops
    assert model.resets == 2 and len(model.windows) == sum(chunks)
    # every window of a continuous run begins where its predecessor's last hop began
    overlap = model.windows[0].size - step
    restart = sum(chunks[:39])
    for i in range(1, len(model.windows)):
        if i != restart:
            np.testing.assert_array_equal(model.windows[i][:overlap], model.windows[i - 1][-overlap:])
    # a caught-up hop hands the rolling labels one frame per grid point, one hop apart, on the stream clock
    values, times = frames[29]
    assert values.shape == (3, len(LABELS))
    # float64 sums of stream seconds: measured 6.9e-17 and 0.0 here; 1e-12 is a few ulps of an hour
    np.testing.assert_allclose(np.diff(times), hop_s, rtol=0, atol=1e-12)
    assert times[-1] == pytest.approx(runs[29].end_time - hop_s / 2, rel=0, abs=1e-12)
    assert runs[29].end_index - runs[28].end_index == 3 * step and runs[19].end_index - runs[18].end_index == 2 * step


class HeldBackFrames(OneFramePerHop):
    """As the streaming CRNN with ``lookahead`` frames held back: each call computes one frame
    and gives the one ``lookahead`` frames older; until that many exist after a reset, it gives
    its oldest frame again (at the same stream time)."""

    def __init__(self, window: WindowSpec, lookahead: int):
        super().__init__(window)
        self.lookahead, self.computed = lookahead, 0

    def reset(self):
        super().reset()
        self.computed = 0

    def __call__(self, audio, frame=None):
        self.windows.append(audio.copy())
        self.computed += 1
        given = max(1, self.computed - self.lookahead)  # 1-based index of the frame given
        score = np.full((1, len(LABELS)), given / 1000, np.float32)
        age = self.computed - given
        return FrameScores(score, np.array([-self.window.hop_seconds / 2 - age * self.window.hop_seconds]))


def test_a_catch_up_right_after_a_reset_gives_each_frame_once():
    """A reset (eight hops skipped, past the catch-up reach) and, at the next run, grid points
    caught up: the held-back model gives its oldest frame in each chunk of that run, at the same
    time; the joined frames keep it once, and the rolling labels (which need strictly increasing
    times) take every hop. Found live: a CRNN at a 40 ms hop with two frames of look-ahead
    stopped avlive after 125 s. (At this hop the grid's half-hop margin is 20 ms, which soxr's
    hold-back sometimes exceeds: such a tick runs nothing and the next one catches up.)"""
    capture_rate, hop_s = 48000, 0.04
    source = SyntheticSource(SEED, PRESET, capture_rate, video=False).open()
    audio_ring = AudioRing(4 * capture_rate, capture_rate)
    model = HeldBackFrames(WindowSpec(0.1, SR, hop_seconds=hop_s, exact_hops=True), lookahead=2)
    scheduler = Scheduler(audio_ring, None, [ModelSlot("m", model)], config=SchedulerConfig(hop_s=hop_s))
    hop_n = int(hop_s * capture_rate)
    buffered = np.zeros(0, np.float32)
    jump = {20: 8, 21: 1}  # 8 hops (320 ms): a reset; then one hop skipped
    runs, fed = [], []
    k = 0
    for i in range(1, 41):
        k += 1 + jump.get(i, 0)
        n = k * hop_n + hop_n // 8 - audio_ring.total_written
        while len(buffered) < n:
            buffered = np.concatenate([buffered, source.read().audio])
        audio_ring.write(buffered[:n])
        buffered = buffered[n:]
        result = scheduler.step()  # raised ValueError (frame times not increasing) before the fix
        for run in result.runs:
            runs.append(run)
            fed.append(result.frame_scores["m"][1])
    scheduler.stop()
    resets = [j for j, r in enumerate(runs) if r.reset]
    assert len(resets) == 2 and resets[0] == 0
    after = resets[1] + 1
    assert runs[after].chunks >= 2  # caught up right after the reset
    # the run after the reset gives the reset's frame once (the model gave it in every chunk)
    # float64 sums of stream seconds: measured 2.2e-16 apart; 1e-12 as in the test above
    assert fed[after].size == runs[after].chunks - 1 and fed[after][0] == pytest.approx(fed[after - 1][-1], abs=1e-12)
    joined = np.concatenate(fed[after:])
    assert np.all(np.diff(joined) > 0)
