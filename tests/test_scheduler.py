"""The inference scheduler on real rings, real FunctionLabelers and a real ONNX Runtime runner."""
from __future__ import annotations

import threading
import time

import numpy as np
import onnx
import pytest
import soxr
from onnx import TensorProto, helper, numpy_helper

from engines import open_runner
from models.core.live import FRAME_AT_CENTRE, FRAME_AT_END, FunctionLabeler, Heatmap, WindowSpec
from realtime.rings import AudioRing, FrameRing
from realtime.rolling import HysteresisConfig
from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig

SR = 16000
FPS = 30
H = W = 32
LABELS = ("low", "mid", "high")


def known_signal(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def frame_for(k: int) -> np.ndarray:
    """Frame k carries its own index in its first two channels."""
    f = np.zeros((H, W, 3), np.uint8)
    f[..., 0], f[..., 1] = k % 256, k // 256
    return f


def index_of(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])


def mean_abs_scores(batch: np.ndarray) -> np.ndarray:
    """A trivial numpy labeler: (1, N) -> (1, 3)."""
    level = np.abs(batch).mean(axis=1, keepdims=True)
    return np.clip(np.concatenate([1 - 10 * level, 5 * level, 10 * level], axis=1), 0, 1)


class Recording:
    """Wraps a live model; keeps a copy of every window and frame it is given, and the buffers' addresses."""

    def __init__(self, model, *, sleep: float = 0.0, ring=None, fail_at: int | None = None):
        self.model = model
        self.window = model.window
        if hasattr(model, "labels"):
            self.labels = model.labels
        self.sleep, self.ring, self.fail_at = sleep, ring, fail_at
        self.windows, self.frames, self.addresses, self.totals_at_call = [], [], [], []

    def __call__(self, audio, frame=None):
        if self.fail_at is not None and len(self.windows) == self.fail_at:
            raise RuntimeError("model failed on purpose")
        self.windows.append(audio.copy())
        self.frames.append(None if frame is None else frame.copy())
        self.addresses.append((audio.ctypes.data, None if frame is None else frame.ctypes.data))
        if self.ring is not None:
            self.totals_at_call.append(self.ring.total_written)
        if self.sleep:
            time.sleep(self.sleep)
        return self.model(audio, frame)


class PeakLocalizer:
    """A localizer whose heatmap peaks where the frame index says."""

    def __init__(self, window: WindowSpec):
        self.window = window

    def __call__(self, audio, frame):
        k = index_of(frame)
        heat = np.zeros(frame.shape[:2], np.float32)
        y, x = k % H, (3 * k) % W
        heat[y, x] = 0.9
        return Heatmap(map=heat, peak=(x, y), score=0.9, threshold=0.5)


class Collect:
    """A sink that keeps every result and whether it was closed."""

    def __init__(self):
        self.results, self.opened, self.closed = [], False, False

    def open(self, context):
        self.opened = True

    def write(self, result):
        self.results.append(result)

    def close(self):
        self.closed = True


def labeler(seconds=0.5, rate=SR, **window):
    return FunctionLabeler(WindowSpec(seconds, rate, **window), LABELS, mean_abs_scores)


def expected_window(signal: np.ndarray, end: int, n: int) -> np.ndarray:
    padded = np.concatenate([np.zeros(n, np.float32), signal])
    return padded[end: end + n]  # signal[end - n: end] with zeros before the start


class Producer(threading.Thread):
    """Writes ``signal`` in 10 ms blocks and frames at 30 fps, paced at ``speed`` times real time."""

    def __init__(self, audio_ring, frame_ring, signal, speed=1.0):
        super().__init__(daemon=True)
        self.audio_ring, self.frame_ring, self.signal, self.speed = audio_ring, frame_ring, signal, speed

    def run(self):
        block = SR // 100
        start = time.monotonic()
        k = 0
        for i in range(0, len(self.signal), block):
            self.audio_ring.write(self.signal[i: i + block])
            now = (i + block) / SR
            while self.frame_ring is not None and k / FPS < now:
                self.frame_ring.write(frame_for(k), k / FPS)
                k += 1
            delay = start + now / self.speed - time.monotonic()  # pace against the start, not summed sleeps
            if delay > 0:
                time.sleep(delay)


def feed(audio_ring, frame_ring, signal, start: int, stop: int) -> None:
    """Synchronously write samples [start, stop) and the frames up to that time."""
    audio_ring.write(signal[start:stop])
    if frame_ring is not None:
        while frame_ring.frames_written / FPS < stop / SR:
            k = frame_ring.frames_written
            frame_ring.write(frame_for(k), k / FPS)


def test_threaded_windows_are_the_ring_samples_and_frames_the_nearest():
    seconds, hop = 2.0, 0.1
    signal = known_signal(seconds)
    audio_ring, frame_ring = AudioRing(4 * SR, SR), FrameRing(64, H, W)
    end_model = Recording(labeler(0.5, needs_frame=True, frame_at=FRAME_AT_END))
    centre_model = Recording(PeakLocalizer(WindowSpec(1.0, SR, needs_frame=True, frame_at=FRAME_AT_CENTRE)))
    sink = Collect()
    slots = [ModelSlot("labeler", end_model), ModelSlot("localizer", centre_model, every=2)]
    scheduler = Scheduler(audio_ring, frame_ring, slots, [sink], SchedulerConfig(hop_s=hop), source_name="test")
    producer = Producer(audio_ring, frame_ring, signal)
    with scheduler:
        producer.start()
        producer.join()
        time.sleep(0.05)
    assert sink.opened and sink.closed and sink.results[-1].final
    results = [r for r in sink.results if not r.final]
    assert len(results) >= 0.5 * seconds / hop
    for model, name in ((end_model, "labeler"), (centre_model, "localizer")):
        runs = [run for r in results for run in r.runs if run.name == name]
        assert len(runs) == len(model.windows) > 0
        for run, window, frame in zip(runs, model.windows, model.frames):
            np.testing.assert_array_equal(window, expected_window(signal, run.end_index, window.size))
            assert index_of(frame) == run.frame_index
            assert run.frame_time == pytest.approx(run.frame_index / FPS)
            target = run.end_time - (0.5 * model.window.seconds if model.window.frame_at == FRAME_AT_CENTRE else 0)
            target = max(target, 0.0)  # the first windows' centres lie before the stream start: frame 0
            # the centre's neighbours were all written; at the end the producer may not have written the
            # frames of its newest 10 ms block yet (the exact rule is checked in step mode below)
            tolerance = 0.5 / FPS if model.window.frame_at == FRAME_AT_CENTRE else 1.0 / FPS + 0.01
            assert abs(run.frame_time - target) <= tolerance + 1e-9
    # every hop's windows end at the newest sample of that hop
    for r in results:
        assert all(run.end_index == r.end_index for run in r.runs)
    assert {"copy", "model:labeler", "post", "sinks", "total"} <= set(results[-1].latency_ms)


def test_frame_matching_is_exact_nearest_in_step_mode():
    hop = 0.1
    signal = known_signal(3.0)
    audio_ring, frame_ring = AudioRing(4 * SR, SR), FrameRing(128, H, W)
    end_model = Recording(labeler(0.5, needs_frame=True, frame_at=FRAME_AT_END))
    centre_model = Recording(labeler(1.3, needs_frame=True, frame_at=FRAME_AT_CENTRE))
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("end", end_model), ModelSlot("centre", centre_model)],
                          config=SchedulerConfig(hop_s=hop))
    pos = 0
    for step in range(25):
        stop = pos + int(hop * SR) + 37 * (step % 3)  # ends off the frame grid
        feed(audio_ring, frame_ring, signal, pos, stop)
        # a few frames beyond the audio, so "nearest" may lie on either side of the end
        for _ in range(2):
            k = frame_ring.frames_written
            frame_ring.write(frame_for(k), k / FPS)
        pos = stop
        result = scheduler.step()
        newest = frame_ring.frames_written - 1
        for run in result.runs:
            model = end_model if run.name == "end" else centre_model
            target = run.end_time - (0.65 if run.name == "centre" else 0.0)
            candidates = np.arange(max(0, newest - 127), newest + 1)
            want = candidates[np.argmin(np.abs(candidates / FPS - target))]
            assert run.frame_index == want == index_of(model.frames[-1])
    scheduler.stop()


def test_late_inference_skips_to_the_newest_window_and_counts():
    hop = 0.1
    signal = known_signal(2.0)
    audio_ring = AudioRing(4 * SR, SR)
    model = Recording(labeler(0.5))
    sink = Collect()
    scheduler = Scheduler(audio_ring, None, [ModelSlot("labeler", model)], [sink], SchedulerConfig(hop_s=hop))
    hop_n = int(hop * SR)
    feed(audio_ring, None, signal, 0, hop_n)
    first = scheduler.step()
    assert first.counters.skips == 0
    feed(audio_ring, None, signal, hop_n, 6 * hop_n)  # five hops arrive while "inference" was busy
    second = scheduler.step()
    assert second.hop - first.hop == 5 and second.counters.skips == 4
    assert second.end_index == 6 * hop_n  # the newest window, not the next one in line
    np.testing.assert_array_equal(model.windows[-1], expected_window(signal, 6 * hop_n, model.window.samples))
    feed(audio_ring, None, signal, 6 * hop_n, 7 * hop_n)
    assert scheduler.step().counters.skips == 4  # back in step: no more skips, no backlog replayed
    scheduler.stop()
    assert sink.results[-1].final and sink.results[-1].counters.skips == 4


def test_slow_model_in_the_thread_skips_instead_of_queueing():
    hop, seconds, slow = 0.05, 1.6, 0.23
    signal = known_signal(seconds)
    audio_ring = AudioRing(4 * SR, SR)
    model = Recording(labeler(0.5), sleep=slow, ring=audio_ring)
    sink = Collect()
    scheduler = Scheduler(audio_ring, None, [ModelSlot("slow", model)], [sink], SchedulerConfig(hop_s=hop))
    producer = Producer(audio_ring, None, signal)
    with scheduler:
        producer.start()
        producer.join()
    results = [r for r in sink.results if not r.final]
    hop_n = int(hop * SR)
    assert 3 <= len(results) <= seconds / slow + 2  # about one hop per model call, not one per hop
    skips = results[-1].counters.skips
    assert skips >= len(results)  # most hops were skipped ...
    assert skips == sum(b.hop - a.hop - 1 for a, b in zip(results, results[1:]))  # ... and each one counted
    for r, total in zip(results, model.totals_at_call):
        # each window ended at the newest sample when its hop began: never an old, queued one
        assert 0 <= total - r.end_index <= hop_n
        if r.end_index + slow * SR < len(signal):  # (unless the producer finished meanwhile)
            assert r.lag_ms >= slow * 1e3 * 0.8  # the call's duration of audio arrived meanwhile


def test_models_run_at_their_own_rates_with_preallocated_buffers():
    hop = 0.1
    signal = known_signal(3.0)
    audio_ring, frame_ring = AudioRing(4 * SR, SR), FrameRing(64, H, W)
    fast = Recording(labeler(0.5))
    slow = Recording(PeakLocalizer(WindowSpec(1.0, SR, needs_frame=True)))
    sink = Collect()
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("labeler", fast), ModelSlot("localizer", slow, every=3)],
                          [sink], SchedulerConfig(hop_s=hop))
    hop_n = int(hop * SR)
    for step in range(12):
        feed(audio_ring, frame_ring, signal, step * hop_n, (step + 1) * hop_n)
        result = scheduler.step()
        assert result.heatmap_fresh == (step % 3 == 0)
        assert result.heatmap is not None and result.heatmap_time == pytest.approx(((step // 3) * 3 + 1) * hop)
    scheduler.stop()
    assert scheduler.model_runs() == {"labeler": 12, "localizer": 4}
    hops = [r.hop for r in sink.results if any(run.name == "localizer" for run in r.runs)]
    assert np.diff(hops).tolist() == [3, 3, 3]
    # the same window and frame buffers every hop: nothing is allocated per hop for them
    assert len({a for a, _ in fast.addresses}) == 1
    assert len(set(slow.addresses)) == 1 and slow.addresses[0][1] is not None
    assert fast.addresses[0][0] != slow.addresses[0][0]


def onnx_labeler(path, samples: int, seed: int = 0):
    """A real ONNX Runtime labeler: scores = sigmoid(audio @ w), (batch, samples) -> (batch, 3)."""
    w = (np.random.default_rng(seed).standard_normal((samples, len(LABELS))) / np.sqrt(samples)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["audio", "w"], ["z"]), helper.make_node("Sigmoid", ["z"], ["scores"])], "lin",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", samples])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(LABELS)])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return w


def test_resampled_windows_match_the_whole_signal_resampled(tmp_path):
    source_rate, model_rate, hop = 48000, 16000, 0.1
    signal = known_signal(6.0, source_rate)
    whole = soxr.resample(signal, source_rate, model_rate)  # what the model should see, resampled at once
    window = WindowSpec(0.5, model_rate)
    w = onnx_labeler(tmp_path / "lin.onnx", window.samples)
    with open_runner("onnxruntime", tmp_path / "lin.onnx", threads=1) as runner:
        onnx_model = Recording(FunctionLabeler(window, LABELS, lambda b: runner.infer({"audio": b})["scores"]))
        native = Recording(labeler(0.5, source_rate))
        audio_ring = AudioRing(2 * source_rate, source_rate)
        scheduler = Scheduler(audio_ring, None, [ModelSlot("onnx", onnx_model), ModelSlot("native", native)],
                              config=SchedulerConfig(hop_s=hop))
        hop_n = int(hop * source_rate)
        checked = 0
        for step in range(24):
            pos = audio_ring.total_written
            size = {11: hop_n + 1234, 14: 15 * hop_n}.get(step, hop_n)  # an odd hop; a 1.5 s jump (resync)
            feed(audio_ring, None, signal, pos, pos + size)
            result = scheduler.step()
            runs = {run.name: run for run in result.runs}
            assert runs["native"].end_index == pos + size
            onnx_run = runs["onnx"]
            assert onnx_run.sample_rate == model_rate
            # soxr holds back a few ms: the resampled window ends at most 40 ms before the newest sample
            assert 0 <= result.stream_time - onnx_run.end_time <= 0.04
            if onnx_run.end_index >= window.samples:
                want = whole[onnx_run.end_index - window.samples: onnx_run.end_index]
                np.testing.assert_allclose(onnx_model.windows[-1], want, atol=1e-5 if step < 14 else 1e-4)
                checked += 1
            scores = 1 / (1 + np.exp(-(onnx_model.windows[-1].astype(np.float64) @ w)))
            np.testing.assert_allclose(result.scores["onnx"], scores, atol=1e-5)
        scheduler.stop()
    assert checked >= 18
    assert scheduler.counters().resyncs == 1


def test_stop_flushes_sinks_and_hands_over_a_model_error():
    signal = known_signal(2.0)
    audio_ring = AudioRing(4 * SR, SR)
    model = Recording(labeler(0.5), fail_at=3)
    sink = Collect()
    scheduler = Scheduler(audio_ring, None, [ModelSlot("labeler", model)], [sink], SchedulerConfig(hop_s=0.05))
    producer = Producer(audio_ring, None, signal, speed=4.0)
    scheduler.start()
    producer.start()
    producer.join()
    with pytest.raises(RuntimeError, match="failed on purpose"):
        scheduler.stop()
    assert sink.closed and sink.results[-1].final
    scheduler.stop()  # a second stop is harmless


def test_final_result_closes_open_events_and_config_errors():
    audio_ring = AudioRing(4 * SR, SR)
    loud = FunctionLabeler(WindowSpec(0.2, SR), LABELS, lambda b: np.array([[0.0, 0.0, 1.0]], np.float32))
    sink = Collect()
    scheduler = Scheduler(audio_ring, None, [ModelSlot("labeler", loud, hysteresis=HysteresisConfig(smooth_hops=1))],
                          [sink], SchedulerConfig(hop_s=0.1), source_name="mic")
    for _ in range(5):
        audio_ring.write(np.zeros(1600, np.float32))
        result = scheduler.step()
    assert [e.label for e in result.active] == ["high"] and result.top[0].label == "high"
    scheduler.stop()
    final = sink.results[-1]
    assert final.final and [(e.filename, e.label, e.onset, e.offset) for e in final.ended] == [
        ("mic", "high", 0.1, 0.5)]
    with pytest.raises(ValueError, match="needs camera frames"):
        Scheduler(audio_ring, None, [ModelSlot("l", labeler(needs_frame=True))])
    with pytest.raises(ValueError, match="unique"):
        Scheduler(audio_ring, None, [ModelSlot("l", labeler()), ModelSlot("l", labeler())])
    with pytest.raises(ValueError, match="audio ring holds 0.50 s"):
        Scheduler(AudioRing(SR // 2, SR), None, [ModelSlot("l", labeler(1.0))])


def test_with_the_real_capture_of_a_synthetic_world():
    """Capture thread → rings → scheduler thread: every window is the world's audio, every frame its picture."""
    from models.world import Scene, get_preset
    from realtime.capture import Capture
    from realtime.sources.synthetic import SyntheticSource

    seed = 200000
    source = SyntheticSource(seed, preset="tiny", sample_rate=SR)
    scene = Scene(get_preset("tiny"), seed)
    width, height = source.frame_size
    audio_ring, frame_ring = AudioRing(4 * SR, SR), FrameRing(16, height, width)
    model = Recording(labeler(0.5, needs_frame=True, frame_at=FRAME_AT_CENTRE))
    sink = Collect()
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("labeler", model)], [sink], SchedulerConfig(hop_s=0.1),
                          source_name=source.name)
    with scheduler, Capture(source, source, audio_ring, frame_ring, duration=1.5, realtime=True) as capture:
        capture.wait()
    runs = [run for r in sink.results for run in r.runs]
    assert len(runs) == len(model.windows) >= 7
    n = model.window.samples
    for run, window, frame in zip(runs, model.windows, model.frames):
        start = max(0, run.end_index - n)
        want = np.concatenate([np.zeros(n - (run.end_index - start), np.float32),
                               scene.render_audio(start, run.end_index - start, SR)])
        np.testing.assert_array_equal(window, want)
        np.testing.assert_array_equal(frame, scene.render_frame(run.frame_index)[0])
        assert abs(run.frame_time - max(0.0, run.end_time - 0.25)) <= 0.5 / source.fps + 1e-9
