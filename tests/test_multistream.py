"""Several streams in one process: one inference thread, one batched call per shared model.

The demo labeler and localizer (ONNX Runtime, their exported batch axis) on three world scenes:
every stream gets, hop by hop, what its own single-stream Scheduler gives it, while each shared
model runs once per hop for all streams."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.core.live import FunctionLabeler, WindowSpec
from realtime.models import load_models
from realtime.multistream import MultiScheduler, stream_output_path
from realtime.rings import AudioRing, FrameRing
from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig
from realtime.sources.synthetic import SyntheticSource

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (200000, 200001, 200002)
HOP_S = 0.25
#: Largest |batched - one by one| measured over 40 hops of these three scenes (ONNX Runtime, one
#: thread): the labeler's probabilities 0 (bit-equal), the localizer's heatmap 1.75e-7 (float32
#: rounding of kernels blocked for a batch of 3 instead of 1). About 6x the larger.
BATCH_ATOL = 1e-6


class Collect:
    def __init__(self):
        self.results = []

    def open(self, context):
        pass

    def write(self, result):
        self.results.append(result)

    def close(self):
        pass


def world_feed(seed: int, rate: int):
    """A synthetic scene's source (bench preset) and rings sized for the demo models."""
    source = SyntheticSource(seed, preset="bench", sample_rate=rate)
    source.open()
    width, height = source.frame_size
    return source, AudioRing(8 * rate, rate), FrameRing(64, height, width)


def feed_until(source, audio_ring, frame_ring, samples: int) -> None:
    """Read the source's chunks (a frame and its frame period of audio) until at least ``samples``
    are in (whole chunks: the hop's windows end at the newest sample, in every scheduler alike)."""
    while audio_ring.total_written < samples:
        chunk = source.read()
        if chunk.frame is not None:
            frame_ring.write(chunk.frame, chunk.frame_time)
        audio_ring.write(chunk.audio)


@pytest.fixture(scope="module")
def demo_models():
    models, _notes = load_models(threads=1)
    yield models
    models.close()


def test_batched_streams_equal_one_scheduler_per_stream(demo_models):
    rate = demo_models.sample_rate
    hop = int(HOP_S * rate)
    streams, singles, multi_sinks, single_sinks = [], [], [], []
    for i, seed in enumerate(SEEDS):
        for group, sinks in ((streams, multi_sinks), (singles, single_sinks)):
            source, audio_ring, frame_ring = world_feed(seed, rate)
            sink = Collect()
            sinks.append(sink)
            slots = demo_models.stream_slots(3, first=i == 0)
            group.append((source, Scheduler(audio_ring, frame_ring, slots, [sink], SchedulerConfig(hop_s=HOP_S),
                                            source_name=f"synthetic:{seed}")))
    multi = MultiScheduler([s for _src, s in streams], stagger=False)  # every stream's localizer on the same hops
    hops = 14  # 3.5 s: the localizer (every 3rd hop) runs 4-5 times, the labeler's window fills
    for k in range(1, hops + 1):
        for source, s in streams + singles:
            feed_until(source, s.audio_ring, s.frame_ring, k * hop)
        multi.step()
        for _src, s in singles:
            s.step()
    multi.stop()
    for _src, s in singles:
        s.stop()

    labeler, localizer = demo_models.labelers[0].name, demo_models.localizer.name
    compared = {"labeler": 0, "localizer": 0}
    for got_sink, want_sink in zip(multi_sinks, single_sinks):
        got, want = got_sink.results, want_sink.results
        assert len(got) == len(want) == hops + 1  # + the final result
        for g, w in zip(got, want):
            assert (g.hop, g.end_index) == (w.hop, w.end_index)
            assert [(r.name, r.end_index, r.frame_index) for r in g.runs] == \
                   [(r.name, r.end_index, r.frame_index) for r in w.runs]
            if labeler in w.scores:
                np.testing.assert_allclose(g.scores[labeler], w.scores[labeler], rtol=0, atol=BATCH_ATOL)
                compared["labeler"] += 1
            if w.heatmap_fresh:
                assert g.heatmap_fresh
                np.testing.assert_allclose(g.heatmap.map, w.heatmap.map, rtol=0, atol=BATCH_ATOL)
                assert g.heatmap.peak == w.heatmap.peak
                compared["localizer"] += 1
        assert [e.label for e in got[-1].ended] == [e.label for e in want[-1].ended]
    assert compared["labeler"] == len(SEEDS) * hops
    assert compared["localizer"] >= len(SEEDS) * 4
    # every model call served all three streams at once
    assert dict(multi.batch_sizes) == {3: multi.calls}
    assert multi.calls == hops + compared["localizer"] // len(SEEDS)
    assert demo_models.labelers[0].model.batch is not None and demo_models.localizer.model.batch is not None
    assert localizer != labeler


class StatefulCounter:
    """A labeler that keeps state (``reset()``): the running count of its calls since a reset."""

    def __init__(self):
        self.window = WindowSpec(0.5, 16000)
        self.labels = ("calls",)
        self.count = 0
        self.resets = 0
        self.batch = lambda calls: [np.array([0.0], np.float32) for _ in calls]  # must never be used

    def reset(self):
        self.count = 0
        self.resets += 1

    def __call__(self, audio, frame=None):
        self.count += 1
        return np.array([min(1.0, self.count / 100)], np.float32)


def test_a_stateful_model_runs_stream_by_stream_and_a_stateless_one_once_for_all():
    rate = 16000
    shared = FunctionLabeler(WindowSpec(0.5, rate), ("level",), lambda b: np.abs(b).mean(axis=1, keepdims=True),
                             batchable=True)
    states = [StatefulCounter(), StatefulCounter()]
    schedulers, rings = [], []
    for i in range(2):
        ring = AudioRing(4 * rate, rate)
        rings.append(ring)
        schedulers.append(Scheduler(ring, None, [ModelSlot("level", shared), ModelSlot("calls", states[i])], [],
                                    SchedulerConfig(hop_s=HOP_S), source_name=f"s{i}"))
    multi = MultiScheduler(schedulers)
    signal = [np.full(rate * 2, 0.25, np.float32), np.full(rate * 2, 0.5, np.float32)]
    results = []
    for k in range(1, 5):
        for ring, x in zip(rings, signal):
            ring.write(x[(k - 1) * rate // 4: k * rate // 4])
        results.append(multi.step())
    multi.stop()
    assert [s.count for s in states] == [4, 4] and [s.resets for s in states] == [1, 1]
    assert multi.batch_sizes == {2: 4, 1: 8}  # the shared labeler batched, each stateful one alone
    last = results[-1]
    np.testing.assert_allclose([r.scores["level"][0] for r in last], [0.25, 0.5], rtol=1e-6)


def test_stream_output_path_names_each_stream():
    assert stream_output_path("out/events.tsv", "synthetic:200001") == Path("out/events.synthetic-200001.tsv")
    assert stream_output_path("e.tsv", "my clip.mp4#2") == Path("e.my-clip.mp4-2.tsv")


def avlive(*args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)
    return subprocess.run([sys.executable, "-m", "apps.avlive", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_avlive_runs_three_streams_in_one_process(tmp_path):
    jsonl, events = tmp_path / "all.jsonl", tmp_path / "events.tsv"
    done = avlive("--source", "synthetic:200000", "--source", "synthetic:200001", "--source", "synthetic:200001",
                  "--duration", "2", "--jsonl", str(jsonl), "--events-out", str(events), "--threads", "1", "--headless")
    assert done.returncode == 0, done.stderr
    assert "3 streams (synthetic:200000, synthetic:200001, synthetic:200001#2)" in done.stderr
    assert "one inference thread" in done.stderr
    calls = next(line for line in done.stderr.splitlines() if "model calls:" in line)
    assert "×3" in calls  # the three streams' clocks start together: their hops fall due together
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    by_source: dict[str, list[dict]] = {}
    for line in lines:
        by_source.setdefault(line["source"], []).append(line)
    assert sorted(by_source) == ["synthetic:200000", "synthetic:200001", "synthetic:200001#2"]
    for name, records in by_source.items():
        hops = [r for r in records if not r.get("final")]
        assert len(hops) >= 6, (name, len(hops))  # 8 hops in 2 s (skips under load are the benchmark's matter)
    for name in by_source:
        path = stream_output_path(events, name)
        assert path.read_text().startswith("filename\tonset\toffset\tevent_label")
    # the same scene twice gives the same labels at the same stream time (hop by hop, matched by
    # time: a hop one stream skipped under load has no partner)
    a, b = ({r["stream_time"]: [t["label"] for t in r["top"]] for r in by_source[name] if not r.get("final")}
            for name in ("synthetic:200001", "synthetic:200001#2"))
    common = sorted(set(a) & set(b))
    assert len(common) >= 5, (sorted(a), sorted(b))
    assert [a[t] for t in common] == [b[t] for t in common]


@pytest.mark.parametrize("extra, message", [
    (("--no-realtime",), "--no-realtime with several --source: not supported"),
    (("--mic", "default"), "--mic/--camera with several --source: name each stream's devices as a source instead"),
    (("--source", "mic:a+mic:b"), "--source mic:a+mic:b: expected mic:DEVICE, camera:CAMERA or camera:CAMERA+mic:DEVICE"),
])
def test_what_several_streams_cannot_do_is_one_line(tmp_path, extra, message):
    done = avlive("--source", "synthetic:1", "--source", "synthetic:2", "--duration", "1", *extra, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_bench_streams_reports_every_stream(tmp_path, capsys):
    from apps.bench_streams import main

    assert main(["--streams", "1", "2", "--seconds", "3", "--threads", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| streams | hops | skipped |" in out
    assert "| synthetic:200001 |" in out  # the comparison with each scene alone
    report = json.loads((tmp_path / "bench-streams.json").read_text())
    assert [r["n"] for r in report["runs"]] == [1, 2] and sorted(report["alone"]) == ["synthetic:200000", "synthetic:200001"]
    assert all(s["hops"] > 0 for r in report["runs"] for s in r["streams"])
    assert all(len(s["latencies_ms"]) == s["events"] for r in report["runs"] for s in r["streams"])
    assert "| per event: median change (ms) | events on another hop or missed in one run (later / earlier) |" in out
    assert (tmp_path / "streams.png").stat().st_size > 0


def test_per_event_changes_pair_the_events_labelled_in_both_runs():
    from apps.bench_streams import RunFigures, StreamFigures, comparison, event_changes

    inf = float("inf")
    alone = StreamFigures("s", 4, 0, 0.0, 4, 1, 300.0, 600.0, [300.0, 600.0, inf, 250.0])
    many = StreamFigures("s", 4, 0, 0.0, 4, 1, 340.0, 380.0, [340.0, 380.0, 200.0, inf])
    np.testing.assert_array_equal(event_changes(alone, many), [40.0, -220.0])  # events 3 and 4 missed in one run
    row = comparison(RunFigures(2, 1.0, 1.0, 0.0, "", [many]), {"s": RunFigures(1, 1.0, 1.0, 0.0, "", [alone])})
    # event 2 came 220 ms earlier, event 3 was missed alone only, event 4 with two streams only
    assert "| s | 600 | 380 | -220 | -90 | 1 / 2 | 0 / 0 |" in row


def test_several_streams_with_a_display_run_headless_and_gui_is_refused(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    args = [sys.executable, "-m", "apps.avlive", "--source", "synthetic:1", "--source", "synthetic:2"]
    gui = subprocess.run([*args, "--gui"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert gui.returncode == 2 and "--gui with several --source" in gui.stderr
    out = tmp_path / "x.jsonl"
    done = subprocess.run([*args, "--duration", "1", "--jsonl", str(out), "--threads", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["source"] for line in out.read_text().splitlines()} == {"synthetic:1", "synthetic:2"}


def test_streams_take_turns_with_a_model_that_runs_every_third_hop():
    """Staggered (the default), three streams' every-third-hop model runs for one stream a hop,
    in one call each, instead of for all three every third hop."""
    rate = 16000
    shared = FunctionLabeler(WindowSpec(0.5, rate), ("level",), lambda b: np.abs(b).mean(axis=1, keepdims=True),
                             batchable=True)
    rings = [AudioRing(4 * rate, rate) for _ in range(3)]
    multi = MultiScheduler([Scheduler(r, None, [ModelSlot("level", shared, every=3)], [], SchedulerConfig(hop_s=HOP_S),
                                      source_name=f"s{i}") for i, r in enumerate(rings)])
    ran = []
    for k in range(1, 7):
        for r in rings:
            r.write(np.full(rate // 4, 0.1, np.float32))
        ran.append([bool(result.runs) for result in multi.step()])
    multi.stop()
    assert ran == [[True, False, False], [False, True, False], [False, False, True]] * 2
    assert multi.batch_sizes == {1: 6}


def _recorded(path: Path) -> dict[str, float]:
    """Seconds of each stream type in an mp4 (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams if s.duration}


def _final_times(jsonl: Path) -> dict[str, float]:
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return {r["source"]: r["stream_time"] for r in lines if r.get("final")}


def test_each_stream_records_and_scores_with_a_stateful_labeler(tmp_path):
    """--record and --scores-out write one file per stream; the streaming CRNN (the real-sound
    labeler, which keeps state) gets one adapter per stream on the shared runner."""
    from models.core.metadata import ModelMetadata

    labeler = ROOT / "models" / "demo" / "real-sounds" / "model.onnx"
    labels = ModelMetadata.load(labeler.parent / "model.onnx.json").labels
    jsonl, record, scores = tmp_path / "all.jsonl", tmp_path / "rec.mp4", tmp_path / "scores.tsv"
    done = avlive("--source", "synthetic:200000", "--source", "synthetic:200001", "--labeler", str(labeler),
                  "--localizer", "none", "--duration", "2", "--jsonl", str(jsonl), "--record", str(record),
                  "--scores-out", str(scores), "--threads", "1", "--headless")
    assert done.returncode == 0, done.stderr
    ends = _final_times(jsonl)
    assert sorted(ends) == ["synthetic:200000", "synthetic:200001"]
    fps = 30.0  # the world's frame rate
    for name, end in ends.items():
        seconds = _recorded(stream_output_path(record, name))
        assert abs(seconds["video"] - end) <= 1.0 / fps, (name, seconds, end)  # up to the last hop
        assert seconds["audio"] >= end
        rows = stream_output_path(scores, name).read_text().splitlines()
        assert rows[0].split("\t") == ["onset", "offset", *labels]
        assert len(rows) > 20 and float(rows[-1].split("\t")[1]) <= end + 1e-6


def test_a_device_stream_beside_a_scene(pulse_mic, tmp_path):
    """--source camera:CAM+mic:DEV is one stream of a device pair beside a scene (the camera here
    a video file, the microphone PulseAudio's virtual one), recorded with both tracks."""
    from apps.virtual_devices import write_wav_int16
    from models.world import BENCH, Scene

    clip = tmp_path / "camera.mp4"
    first = avlive("--source", "synthetic:200002", "--duration", "3", "--record", str(clip), "--jsonl", "none",
                   "--threads", "1", "--headless")
    assert first.returncode == 0, first.stderr
    sound = Scene(BENCH, 200003).render_audio(0, 8 * pulse_mic.rate, pulse_mic.rate)
    write_wav_int16(tmp_path / "sound.wav", sound / max(1.0, float(np.abs(sound).max())), pulse_mic.rate)
    player = pulse_mic.play(tmp_path / "sound.wav")
    try:
        jsonl, record = tmp_path / "all.jsonl", tmp_path / "rec.mp4"
        done = avlive("--source", "synthetic:200000", "--source", f"camera:{clip}+mic:{pulse_mic.device}",
                      "--duration", "3", "--jsonl", str(jsonl), "--record", str(record), "--threads", "1", "--headless")
    finally:
        player.kill()
    assert done.returncode == 0, done.stderr
    assert "real-sound labeler" in done.stderr  # a microphone is real input
    ends = _final_times(jsonl)
    assert len(ends) == 2 and "synthetic:200000" in ends
    device = next(name for name in ends if name != "synthetic:200000")
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sum(1 for r in lines if r["source"] == device and not r.get("final")) >= 20  # 0.08 s hops over 3 s
    seconds = _recorded(stream_output_path(record, device))
    assert set(seconds) == {"video", "audio"} and abs(seconds["video"] - ends[device]) <= 1.0 / 30.0


def test_a_loaded_model_owns_its_runner_and_closes_it():
    """LiveModel keeps the runner it was opened with (a stateful model's extra streams get
    adapters on it) and closes it with the run."""
    models, _ = load_models(labeler=str(ROOT / "models" / "demo" / "real-sounds" / "model.onnx"), localizer="none",
                            threads=1)
    runner = models.labelers[0]._runner
    assert runner is not None and runner is models.labelers[0].model.runner
    models.close()
    assert "closed" in repr(runner)


def test_device_sources_stand_for_mic_and_camera_options(tmp_path, monkeypatch):
    from realtime.pipeline import PipelineConfig, PipelineError, with_device_source

    def devices(source, **options):
        c = with_device_source(PipelineConfig(source=source, **options))
        return c.source, c.mic, c.camera

    assert devices("camera:0+mic:default") == (None, "default", "0")
    assert devices("mic:hw:2,0") == (None, "hw:2,0", None)  # ALSA names keep their colons
    assert devices("mic:") == (None, "default", None)
    assert devices("mic:vmic", camera="none") == (None, "vmic", "none")
    assert devices("camera:/dev/video2") == (None, None, "/dev/video2")
    assert devices("synthetic:7") == ("synthetic:7", None, None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mic:take1.wav").write_bytes(b"")  # an existing file stays a file
    assert devices("mic:take1.wav") == ("mic:take1.wav", None, None)
    for bad in ("camera:", "mic:a+mic:b", "camera:0+speaker:1"):
        with pytest.raises(PipelineError, match="expected mic:DEVICE, camera:CAMERA or camera:CAMERA\\+mic:DEVICE"):
            devices(bad)
    with pytest.raises(PipelineError, match="names its devices itself"):
        devices("mic:default", mic="default")
