"""The display's Qt-free hooks: spectrogram columns, the newest-result view, a viewer's frame reads,
the recorder's non-blocking stop and the pipeline on a background thread."""
from __future__ import annotations

import time

import av
import numpy as np
import torch

from models.audio.frontend import FrontEnd
from models.core.live import FunctionLabeler, WindowSpec
from models.world import Scene, get_preset
from models.world.sounds import CLASS_NAMES
from realtime.live_view import LiveView, LiveViewConfig, PipelineThread, SpectrogramColumns
from realtime.models import LiveModel, LiveModels, ModelSource
from realtime.pipeline import PipelineConfig, build_streams
from realtime.rings import AudioRing, FrameRing
from realtime.rolling import HysteresisConfig
from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig

SR = 16000
SEED = 200000


def test_spectrogram_columns_in_chunks_equal_the_front_end_on_the_whole_signal():
    config = LiveViewConfig(history_s=4.0)
    x = Scene(get_preset("bench"), SEED).render_audio(0, 3 * SR, SR)
    ring = AudioRing(SR, SR)
    spec = SpectrogramColumns(config, SR, ring.capacity)
    rng = np.random.default_rng(0)
    pos = 0
    while pos < x.size:  # uneven blocks, an update after each
        n = int(rng.integers(100, 5000))
        ring.write(x[pos:pos + n])
        pos += n
        spec.update(ring, ring.total_written)
    assert spec.columns == x.size // spec.hop and spec.dropped == 0
    fe = spec.frontend_config
    assert fe.n_fft > fe.hop_length  # the columns overlap: no sample goes unseen
    with torch.inference_mode():  # the whole signal, zero-padded in front as the columns are
        padded = np.concatenate([np.zeros(fe.n_fft - fe.hop_length, np.float32), x[: spec.columns * spec.hop]])
        whole = FrontEnd(fe)(torch.from_numpy(padded)[None])[0].numpy()
    out = np.empty((spec.capacity, spec.n_mels), np.float32)
    assert spec.copy_to(out) == spec.columns
    held = out[-spec.columns:]  # oldest first, the newest last
    assert held.shape == whole.shape
    offset = held * np.log(10) / 10 - whole  # dB = (ln power - reference) * 10 / ln 10
    assert np.ptp(offset) < 1e-3
    assert np.all(out[: spec.capacity - spec.columns] == spec.floor)  # before the stream start
    # a 0 dBFS tone reads about 0 dB in its band
    tone = SpectrogramColumns(config, SR, SR)
    t = np.arange(SR) / SR
    ring = AudioRing(SR, SR)
    ring.write((np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    tone.update(ring, SR)
    tone.copy_to(out)
    assert -1.5 < out[-5:].max() < 1.5


def test_spectrogram_columns_whose_audio_is_gone_are_silent_and_counted():
    config = LiveViewConfig(history_s=10.0)
    ring = AudioRing(SR // 2, SR)
    spec = SpectrogramColumns(config, SR, ring.capacity)
    ring.write(np.full(3 * SR, 0.1, np.float32))  # 3 s arrive while the ring holds 0.5 s
    spec.update(ring, ring.total_written)
    assert spec.columns == 3 * SR // spec.hop
    out = np.empty((spec.capacity, spec.n_mels), np.float32)
    spec.copy_to(out)
    held = out[-spec.columns:]
    assert spec.dropped > 0 and np.all(held[: spec.dropped] == spec.floor) and np.all(held[spec.dropped:] > spec.floor)


def oracle_labeler(scene: Scene, ring: AudioRing) -> FunctionLabeler:
    """Scores 0.95 for the classes the world plays at the ring's newest sample."""

    def predict(batch: np.ndarray) -> np.ndarray:
        t = ring.total_written / SR
        scores = np.full((1, len(CLASS_NAMES)), 0.05, np.float32)
        for e in scene.events_between(max(0.0, t - 0.01), t):
            if e.onset <= t < e.offset:
                scores[0, e.class_index] = 0.95
        return scores

    return FunctionLabeler(WindowSpec(0.2, SR), CLASS_NAMES, predict)


def test_view_keeps_the_newest_result_and_the_recent_events_and_reads_frames_without_taking_them():
    scene = Scene(get_preset("bench"), SEED)
    audio, frames = AudioRing(2 * SR, SR), FrameRing(4, 224, 224)
    view = LiveView(LiveViewConfig(history_s=8.0))
    slot = ModelSlot("oracle", oracle_labeler(scene, audio), hysteresis=HysteresisConfig(smooth_hops=1))
    scheduler = Scheduler(audio, frames, [slot], [view], SchedulerConfig(hop_s=0.25), source_name=f"synthetic:{SEED}")
    hop = SR // 4
    seconds = 30
    ended = []
    for k in range(seconds * 4):
        audio.write(scene.render_audio(k * hop, hop, SR))
        frames.write(scene.render_frame(k)[0], k / 4)  # one frame per hop: the view must not take it
        result = scheduler.step()
        assert view.latest() is result
        ended.extend(result.ended)
    assert view.opened and not view.finished and view.labels == {"oracle": tuple(CLASS_NAMES)}
    assert view.frame_size == (224, 224) and view.frames_captured == seconds * 4
    out = np.zeros((224, 224, 3), np.uint8)
    before = frames.overwrites
    got = view.frame(out)
    assert got == (seconds - 0.25, seconds * 4 - 1) and np.array_equal(out, scene.render_frame(seconds * 4 - 1)[0])
    assert view.frame(out, after=got[1]) is None  # nothing newer
    frames.write(out, seconds)
    frames.write(out, seconds + 0.25)
    frames.write(out, seconds + 0.5)
    frames.write(out, seconds + 0.75)
    assert frames.overwrites == before + 4  # the viewer's read did not count as the scheduler's
    kept = view.events()
    assert len(ended) > len(kept) > 0, "30 s of the bench world hold events older than the 8 s kept"
    assert kept == tuple(e for e in ended if e.offset >= result.stream_time - 8.0)
    assert view.spectrogram.columns == seconds * SR // view.spectrogram.hop
    scheduler.stop()
    assert view.finished


def until(predicate, pipeline: PipelineThread, timeout: float = 30.0) -> None:
    """Wait (on this thread, as a GUI's timer would poll) while the pipeline runs."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert pipeline.is_alive() and time.monotonic() < deadline, pipeline.error
        time.sleep(0.02)


def test_pipeline_thread_runs_the_view_and_records_without_waiting(tmp_path):
    def predict(batch: np.ndarray) -> np.ndarray:
        return np.full((1, len(CLASS_NAMES)), 0.1, np.float32)

    labeler = FunctionLabeler(WindowSpec(0.5, SR), CLASS_NAMES, predict)
    models = LiveModels([LiveModel("flat", "labeler", labeler, ModelSource(tmp_path, "onnx", "labeler"), "numpy",
                                   HysteresisConfig())], None)
    config = PipelineConfig(source=f"synthetic:{SEED}", jsonl=None, summary=None, duration=6.0)
    view = LiveView()
    pipeline = PipelineThread(config, models, build_streams(config, models), view, log=None)
    pipeline.start()
    assert view.wait_open(30) and view.recorder is not None and not view.recorder.recording
    until(lambda: view.latest() is not None and view.latest().stream_time >= 1.0, pipeline)
    view.recorder.start_recording(tmp_path / "rec.mp4")
    until(lambda: view.recorder.recording, pipeline)
    start = view.latest().stream_time
    until(lambda: view.latest().stream_time >= start + 1.5, pipeline)
    t0 = time.monotonic()
    view.recorder.request_stop()  # returns at once; the inference thread finishes the file
    assert time.monotonic() - t0 < 0.1  # a lock and a flag (finishing the mp4 takes longer); slack for a loaded CI machine
    until(lambda: bool(view.recorder.recordings), pipeline)
    pipeline.stop()
    pipeline.join(30)
    assert not pipeline.is_alive() and pipeline.error is None and view.finished
    assert pipeline.outcome.recordings == (tmp_path / "rec.mp4",)
    with av.open(str(tmp_path / "rec.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(tmp_path / "rec.mp4")) as c:
        audio_s = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate
    assert 1.4 * 30 <= len(frames) <= 3 * 30 and abs(audio_s - len(frames) / 30) < 0.15
    assert frames[-1].std() > 10
