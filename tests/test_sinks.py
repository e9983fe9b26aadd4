"""Sinks: JSON lines against the schema, the DCASE events TSV, the mp4 recorder, the overlay, the summary."""
from __future__ import annotations

import copy
import io
import json
import math
import threading
import time

import av
import numpy as np
import pytest

from models.core.events import read_strong_tsv
from models.l3.network import L3Localizer, l3_tiny
from models.core.live import FrameScores, FunctionLabeler, Heatmap, WindowSpec
from models.io.media import probe, read_audio, read_video_frames
from models.evaluation.metrics import event_based_metrics
from models.world import Scene, get_preset
from models.world.evalsets import reference_events, source_name
from models.world.sounds import CLASS_NAMES
from realtime import schema
from realtime.models import LiveModel, LiveModels, ModelSource
from realtime.overlay import Overlay, OverlayConfig
from realtime.pipeline import PipelineConfig, frame_slots, run_pipeline
from realtime.rings import AudioRing, FrameRing
from realtime.rolling import HysteresisConfig
from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig
from realtime.sinks import EventsTsvSink, JsonLinesSink, Mp4RecorderSink, RecorderConfig, ScoresTsvSink, SummarySink

SR = 16000
FPS = 30
SEED = 200000


class WorldOracle:
    """A labeler that 'hears' the world's ground truth at its window's end (the ring's newest sample)."""

    def __init__(self, scene: Scene, ring: AudioRing, seconds: float = 0.2):
        self.scene, self.ring = scene, ring
        self.labels = CLASS_NAMES
        self.window = WindowSpec(seconds, SR)

    def __call__(self, audio, frame=None):
        t = self.ring.total_written / SR
        scores = np.full(len(self.labels), 0.05, np.float32)
        for e in self.scene.events_between(max(0.0, t - 0.01), t):
            if e.onset <= t < e.offset:
                scores[e.class_index] = 0.95
        return scores


def grey_frame(k: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), (7 * k) % 200 + 30, np.uint8)


def run_world(tmp_path, seconds: float, hop: float = 0.1, *, localizer=None, every: int = 1, sinks=()):
    """Step a scheduler over ``seconds`` of a world stream (silent audio, grey frames) with the oracle."""
    scene = Scene(get_preset("bench"), SEED)
    audio_ring, frame_ring = AudioRing(3 * SR, SR), FrameRing(16, 32, 32)
    slots = [ModelSlot("oracle", WorldOracle(scene, audio_ring), hysteresis=HysteresisConfig(smooth_hops=1))]
    if localizer is not None:
        slots.append(ModelSlot("l3", localizer, every=every))
    scheduler = Scheduler(audio_ring, frame_ring, slots, list(sinks), SchedulerConfig(hop_s=hop),
                          source_name=source_name(SEED))
    hop_n = int(hop * SR)
    for step in range(int(round(seconds / hop))):
        audio_ring.write(np.zeros(hop_n, np.float32))
        while frame_ring.frames_written / FPS < audio_ring.total_written / SR:
            k = frame_ring.frames_written
            frame_ring.write(grey_frame(k), k / FPS)
        scheduler.step()
    scheduler.stop()
    return scene, scheduler


def test_json_lines_validate_and_the_events_tsv_scores_against_the_reference(tmp_path, one_torch_thread):
    torch_l3 = L3Localizer(l3_tiny(), threshold=0.0)  # real torch; 48 kHz windows resampled from 16 kHz
    seconds = 30.0
    summary_text = io.StringIO()
    sinks = [JsonLinesSink(tmp_path / "hops.jsonl"), EventsTsvSink(tmp_path / "events.tsv"),
             SummarySink(summary_text, tmp_path / "summary.json")]
    scene, scheduler = run_world(tmp_path, seconds, localizer=torch_l3, every=15, sinks=sinks)

    lines = (tmp_path / "hops.jsonl").read_text().splitlines()
    assert len(lines) == 300 + 1  # one per hop, and the final one
    records = [json.loads(line) for line in lines]
    for obj in records:
        schema.validate(obj)
    assert records[-1]["final"] and not any(r["final"] for r in records[:-1])
    assert sum(r["heatmap"] is not None and r["heatmap"]["fresh"] for r in records) == 20
    assert {"copy", "model:oracle", "post", "sinks", "total"} <= set(records[5]["latency_ms"])
    assert "model:l3" in records[0]["latency_ms"] and "model:l3" not in records[1]["latency_ms"]
    assert records[-1]["counters"]["hops"] == 300

    events = read_strong_tsv(tmp_path / "events.tsv")
    jsonl_events = sorted((e["label"], e["onset"], e["offset"]) for r in records for e in r["ended"])
    assert sorted((e.label, round(e.onset, 3), round(e.offset, 3)) for e in events) == \
        sorted((label, round(on, 3), round(off, 3)) for label, on, off in jsonl_events)
    assert {e.filename for e in events} == {source_name(SEED)}
    reference = reference_events(scene, seconds)
    scores = event_based_metrics(reference, events, labels=list(CLASS_NAMES))
    assert scores.f1 >= 0.9, scores.to_dict()  # an oracle at a 0.1 s hop: onsets within the 0.2 s collar

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["hops"] == 300 and summary["events"] == len(events)
    assert set(summary["latency_ms"]["model:l3"]) == {"mean", "p95", "max", "n"}
    assert summary["latency_ms"]["model:l3"]["n"] == 20
    assert "300 hops" in summary_text.getvalue()


def good_record() -> dict:
    """A record of the current schema, 1.3 (the capture's counters, the lost devices)."""
    obj = good_record_1_2()
    obj["schema_minor"] = 3
    obj["counters"].update(gap_samples=1600, input_overflows=0, device_losses=1, device_recoveries=1)
    obj["lost"] = []
    return obj


def good_record_1_2() -> dict:
    """A record of schema 1.2 (resets)."""
    obj = good_record_1_1()
    obj["schema_minor"] = 2
    obj["counters"]["resets"] = 1
    return obj


def good_record_1_1() -> dict:
    """A record of schema 1.1 (the recorder's counter, no resets)."""
    obj = good_record_1_0()
    obj["schema_minor"] = 1
    obj["counters"]["recorder_dropped_frames"] = 2
    return obj


def good_record_1_0() -> dict:
    """A record as avlive wrote it before schema 1.1 (no ``schema_minor``, no recorder counter)."""
    return {"schema_version": 1, "source": "mic", "hop": 3, "stream_time": 0.3, "final": False,
            "top": [{"label": "bell", "score": 0.9, "model": "labeler"}],
            "active": [{"label": "bell", "onset": 0.1, "score": 0.9}],
            "ended": [{"label": "hiss", "onset": 0.0, "offset": 0.2}],
            "heatmap": {"peak": [3, 4], "score": 0.7, "has_source": True, "stream_time": 0.3, "fresh": True},
            "latency_ms": {"copy": 0.1, "model:labeler": 2.0, "post": 0.1, "sinks": 0.2, "total": 2.2},
            "counters": {"hops": 4, "skips": 0, "late_reads": 0, "frame_overwrites": 0, "missing_frames": 0,
                         "resyncs": 0},
            "lag_ms": 0.5}


@pytest.mark.parametrize("path, value, field", [
    (("top", 0, "score"), "high", "top[0].score"),
    (("top", 0, "score"), 1.5, "top[0].score"),
    (("ended", 0, "offset"), -1.0, "ended[0].offset"),
    (("heatmap", "peak"), [3], "heatmap.peak"),
    (("heatmap", "has_source"), 1, "heatmap.has_source"),
    (("counters", "skips"), -2, "counters.skips"),
    (("counters", "skips"), 1.0, "counters.skips"),
    (("schema_version",), 2, "schema_version"),
    (("stream_time",), float("nan"), "stream_time"),
    (("active",), {}, "active"),
    (("lost",), [""], "lost[0]"),
    (("counters", "device_losses"), -1, "counters.device_losses"),
])
def test_broken_records_fail_naming_the_field(path, value, field):
    schema.validate(good_record())
    obj = copy.deepcopy(good_record())
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(schema.SchemaError, match=field.replace("[", r"\[").replace("]", r"\]")) as info:
        schema.validate(obj)
    assert info.value.field == field


def test_missing_and_unknown_fields_are_named():
    obj = good_record()
    del obj["lag_ms"]
    with pytest.raises(schema.SchemaError, match="'lag_ms': expected present"):
        schema.validate(obj)
    obj = good_record()
    obj["top"][0]["colour"] = "red"
    with pytest.raises(schema.SchemaError, match=r"'top\[0\].colour': expected no such field"):
        schema.validate(obj)
    obj = good_record()
    del obj["counters"]["resyncs"]
    with pytest.raises(schema.SchemaError, match="counters.resyncs"):
        schema.validate(obj)
    assert set(schema.FIELDS) == set(good_record())


def test_schema_1_1_reads_1_0_records_and_a_1_0_reader_keeps_working_on_1_1():
    schema.validate(good_record_1_0())  # what earlier versions wrote still validates
    schema.validate(good_record_1_1())
    schema.validate(good_record_1_2())
    newer_field = good_record_1_1()
    newer_field["counters"]["resets"] = 0  # 1.2's counter in a record that says 1.1
    with pytest.raises(schema.SchemaError, match="counters.resets"):
        schema.validate(newer_field)
    old = good_record_1_0()
    old["counters"]["recorder_dropped_frames"] = 0  # a 1.0 record has no such counter
    with pytest.raises(schema.SchemaError, match=r"counters.recorder_dropped_frames': expected no such field "
                                                 r"\(schema version 1.0"):
        schema.validate(old)
    new = good_record()
    del new["counters"]["recorder_dropped_frames"]  # 1.1 promises it
    with pytest.raises(schema.SchemaError, match="counters.recorder_dropped_frames"):
        schema.validate(new)
    bad = good_record()
    bad["schema_minor"] = 0
    with pytest.raises(schema.SchemaError, match="schema_minor"):
        schema.validate(bad)
    # a newer 1.y record validates with the fields this reader does not know
    newer = good_record()
    newer["schema_minor"] = schema.SCHEMA_MINOR + 1
    newer["colour"] = "red"
    newer["counters"]["encoder_restarts"] = 0
    schema.validate(newer)
    # what a 1.0 reader reads of a 1.1 record is the same as before: every 1.0 field, same meaning
    assert set(good_record_1_0()) <= set(good_record())
    assert set(good_record_1_0()["counters"]) <= set(good_record()["counters"])


def tone(n: int, start: int = 0) -> np.ndarray:
    """A slow chirp, so that any misplaced span of audio shows."""
    t = (start + np.arange(n)) / SR
    return (0.3 * np.sin(2 * np.pi * (300 * t + 40 * t ** 2))).astype(np.float32)


class Flat:
    """A localizer with a fixed heatmap below its threshold (the overlay then leaves the picture alone)."""

    window = WindowSpec(0.5, SR, needs_frame=True)

    def __call__(self, audio, frame):
        return Heatmap(map=np.zeros(frame.shape[:2], np.float32), peak=(0, 0), score=0.1, threshold=0.5)


def test_recorder_started_and_stopped_mid_stream(tmp_path):
    hop = 0.1
    size = 128  # the overlay's text (two labels, an event, "no source") leaves rows 48-96 alone
    audio_ring, frame_ring = AudioRing(3 * SR, SR), FrameRing(16, size, size)
    labeler = FunctionLabeler(WindowSpec(0.2, SR), ("a", "b"), lambda b: np.array([[0.9, 0.1]], np.float32))
    recorder = Mp4RecorderSink(RecorderConfig(fps=FPS))
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("labeler", labeler), ModelSlot("flat", Flat(), every=2)],
                          [recorder], SchedulerConfig(hop_s=hop))
    hop_n = int(hop * SR)
    path = tmp_path / "clip.mp4"
    for step in range(20):
        if step == 4:
            scheduler.start_recording(path)
        if step == 12:
            assert recorder.recording
            assert scheduler.stop_recording() == path
            assert not recorder.recording
        if step == 13:
            assert scheduler.stop_recording() is None  # nothing was recording
        start = audio_ring.total_written
        audio_ring.write(tone(hop_n, start))
        while frame_ring.frames_written / FPS < audio_ring.total_written / SR:
            k = frame_ring.frames_written
            frame_ring.write(grey_frame(k, size), k / FPS)
        scheduler.step()
    scheduler.stop()
    # started at the hop after the request (end of step 4, t = 0.5 s), stopped at the hop of step 11 (t = 1.2 s)
    t0, t1 = 0.5, 1.2
    info = probe(path)
    assert info.has_audio and info.has_video and (info.width, info.height) == (size, size)
    frames, times = read_video_frames(path)
    assert len(frames) == round((t1 - t0) * FPS)
    np.testing.assert_allclose(times, np.arange(len(frames)) / FPS, atol=1e-6)
    for j in range(len(frames)):  # frame j shows camera frame round((t0 + j / fps) * fps)
        k = int(round((t0 + j / FPS) * FPS))
        # (row 42 lies between the label lines at the top and the "no source" note at the bottom)
        assert abs(int(frames[j][45, size // 2, 0]) - int(grey_frame(k)[0, 0, 0])) <= 3
    audio, rate = read_audio(path)
    # The recording is a fragmented MP4 (a killed run leaves a playable file), whose header is
    # written before the end is known: the start is trimmed exactly (the priming samples), the
    # last AAC frame's padding is not, so up to 1023 samples of silence follow the stream's end.
    extra = len(audio) - round((t1 - t0) * SR)
    assert rate == SR and 0 <= extra < 1024, extra
    want = tone(len(audio), int(t0 * SR))
    assert np.corrcoef(audio[2048:-2048], want[2048:-2048])[0, 1] > 0.98  # the right span of audio, in sync


def test_recorder_from_another_thread_while_running(tmp_path):
    size = 32
    audio_ring, frame_ring = AudioRing(3 * SR, SR), FrameRing(16, size, size)
    labeler = FunctionLabeler(WindowSpec(0.2, SR), ("a",), lambda b: np.array([[0.9]], np.float32))
    recorder = Mp4RecorderSink()
    json_path = tmp_path / "hops.jsonl"
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("labeler", labeler)],
                          [recorder, JsonLinesSink(json_path), EventsTsvSink(tmp_path / "events.tsv")],
                          SchedulerConfig(hop_s=0.05), source_name="mic")
    stop = threading.Event()

    def produce():
        start, k = time.monotonic(), 0
        while not stop.is_set():
            audio_ring.write(tone(SR // 100, audio_ring.total_written))
            now = audio_ring.total_written / SR
            while k / FPS < now:
                frame_ring.write(grey_frame(k, size), k / FPS)
                k += 1
            time.sleep(max(0.0, start + now - time.monotonic()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the main thread: every sink still flushes
        with scheduler:
            time.sleep(0.3)
            scheduler.start_recording(tmp_path / "a.mp4")
            time.sleep(0.6)
            assert scheduler.stop_recording() == tmp_path / "a.mp4"
            scheduler.start_recording(tmp_path / "b.mp4")  # left running: finished at stop
            time.sleep(0.3)
            raise KeyboardInterrupt
    stop.set()
    producer.join()
    for name, seconds in (("a.mp4", 0.6), ("b.mp4", 0.3)):
        frames, _ = read_video_frames(tmp_path / name)
        audio, _ = read_audio(tmp_path / name)
        assert seconds - 0.1 <= len(audio) / SR <= seconds + 1.0  # (sleeps run long on a busy machine)
        # same duration: within 1.5 frames, plus the last AAC frame's padding (up to 1023 samples)
        # that a fragmented MP4 cannot trim (see test_recorder_started_and_stopped_mid_stream)
        padding = len(audio) / SR - len(frames) / FPS
        assert -1.5 / FPS <= padding <= 1.5 / FPS + 1023 / SR, padding
    records = [json.loads(line) for line in json_path.read_text().splitlines()]
    assert records[-1]["final"] and [e["label"] for e in records[-1]["ended"]] == ["a"]
    (event,) = read_strong_tsv(tmp_path / "events.tsv")
    assert event.filename == "mic" and event.offset == pytest.approx(records[-1]["stream_time"], abs=1e-3)


def blob(h: int, w: int, x: int, y: int, sigma: float = 6.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def brightest(img: np.ndarray) -> tuple[int, int]:
    luma = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    y, x = np.unravel_index(int(np.argmax(luma)), luma.shape)
    return int(x), int(y)


@pytest.mark.parametrize("x, y", [(150, 60), (40, 170), (200, 200)])
def test_overlay_brightest_pixel_is_the_peak(x, y):
    h = w = 224
    frame = np.full((h, w, 3), 90, np.uint8)
    heatmap = Heatmap(map=blob(h, w, x, y), peak=(x, y), score=1.0, threshold=0.5)
    overlay = Overlay(h, w, OverlayConfig(draw_peak=False))
    out = overlay.draw(frame, heatmap)
    assert brightest(out) == (x, y)
    assert out is not frame and (frame == 90).all()
    # a map at the model's resolution is scaled onto the frame; the peak follows
    small = Heatmap(map=blob(28, 28, x // 8, y // 8, 1.0), peak=(x // 8, y // 8), score=1.0, threshold=0.5)
    bx, by = brightest(overlay.draw(frame, small))
    assert abs(bx - (x // 8 * 8 + 4)) <= 4 and abs(by - (y // 8 * 8 + 4)) <= 4
    # with the peak marker the circle is centred on the peak
    marked = Overlay(h, w, OverlayConfig(peak_radius=8)).draw(frame, heatmap)
    ring = [marked[y, min(w - 1, x + 8)], marked[y, max(0, x - 8)], marked[min(h - 1, y + 8), x], marked[max(0, y - 8), x]]
    assert all(abs(int(p[1]) - 255) < 60 and abs(int(p[2]) - 255) < 60 for p in ring[:2])
    # below the localizer's threshold the picture is left alone (only the "no source" note)
    quiet = Heatmap(map=blob(h, w, x, y), peak=(x, y), score=0.2, threshold=0.5)
    out = overlay.draw(frame, quiet)
    assert (out[:150] == 90).all()


def test_overlay_draws_labels_in_place():
    frame = np.zeros((224, 224, 3), np.uint8)
    from realtime.scheduler import LabelScore
    from realtime.rolling import ActiveEvent

    out = Overlay(224, 224).draw(frame, None, [LabelScore("bell", 0.8, "m")], [ActiveEvent("bell", 1.0, 0.8)],
                                 out=frame, stream_time=2.5)
    assert out is frame and frame[:40, :120].any() and not frame[120:].any()


@pytest.mark.parametrize("background", [0, 255], ids=["black", "white"])
def test_overlay_text_is_sized_to_the_frame_and_reads_on_any_background(background):
    """Labels drawn on a plain black or white frame at 320x240 and 1920x1080: the letters show
    (light letters; on white, on a darkened box) and take the same share of the frame's height
    at both sizes."""
    from realtime.rolling import ActiveEvent
    from realtime.scheduler import LabelScore

    top = [LabelScore("dog", 0.8, "m"), LabelScore("speech", 0.4, "m")]
    boxes, counts = {}, {}
    for w, h in ((320, 240), (1920, 1080)):
        frame = np.full((h, w, 3), background, np.uint8)
        out = Overlay(h, w).draw(frame, None, top, [ActiveEvent("dog", 1.0, 0.8)], stream_time=2.0)
        luma = out.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        labels = luma[:, w // 4 + w // 40:]  # right of the score bars: the label text only
        text = labels > 200 if background == 0 else labels < 100  # what stands out from the background
        counts[h] = int(text.sum())
        rows = np.flatnonzero(text.any(axis=1))
        assert counts[h] > 0 and rows.size, (w, h)
        boxes[h] = (rows[-1] - rows[0] + 1) / h  # the labels' share of the height
        if background == 255:  # light letters on the dark box of the first label, not a dark smudge
            first = rows[: int(np.argmax(np.diff(rows) > 1)) + 1] if np.any(np.diff(rows) > 1) else rows
            cols = np.flatnonzero(text[first].any(axis=0))
            box = labels[first[0]:first[-1] + 1, cols[0]:cols[-1] + 1]
            assert (box > 200).mean() > 0.05 and (box < 100).mean() > 0.5, (w, h)
    assert boxes[240] == pytest.approx(boxes[1080], rel=0.25), boxes
    assert counts[1080] > 8 * counts[240], counts  # 4.5 times the height: about 20 times the pixels


# ------------------------------------------------------------------------------ the recorder in the pipeline


def flat_models(tmp_path) -> LiveModels:
    """One numpy labeler that takes no frames: the models leave every camera frame unread."""
    labeler = FunctionLabeler(WindowSpec(0.5, SR), CLASS_NAMES,
                              lambda batch: np.full((1, len(CLASS_NAMES)), 0.1, np.float32))
    return LiveModels([LiveModel("flat", "labeler", labeler, ModelSource(tmp_path, "onnx", "labeler"), "numpy",
                                 HysteresisConfig())], None)


def run_synthetic(tmp_path, seconds: float, **options):
    models = flat_models(tmp_path)
    options = {"jsonl": None, "summary": None, "realtime": False, **options}
    outcome = run_pipeline(PipelineConfig(source=f"synthetic:{SEED}", duration=seconds, **options), models, log=None)
    return outcome, models


def read_back(path):
    """(video frames, their pts in 1/fps units, video seconds up to the last frame's end, audio seconds)."""
    with av.open(str(path)) as c:
        frames, pts = [], []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(int(round(f.pts * f.time_base * FPS)))
        video_s = (pts[-1] + 1) / FPS if pts else 0.0
    with av.open(str(path)) as c:
        audio_s = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate
    return frames, pts, video_s, audio_s


HOP = 0.25  # the pipeline's default hop
AAC_FRAME = 1024  # samples per AAC frame


def test_recording_a_pipeline_run_leaves_frame_overwrites_to_the_models(tmp_path):
    seconds = 3.0
    plain, models = run_synthetic(tmp_path, seconds)
    recorded, _ = run_synthetic(tmp_path, seconds, record=str(tmp_path / "run.mp4"))
    # The labeler takes no frame, so every frame that left the frame ring went unused. The recorder
    # reads them all, without taking them: the count must stay what the models alone make it.
    # (Before, its reads marked the frames it recorded as taken: 17 of the 65 were counted.)
    unused = int(seconds * FPS) - frame_slots(models, HOP, FPS)
    assert plain.summary.frame_overwrites == unused > 0
    assert recorded.summary.frame_overwrites == unused
    assert recorded.summary.recorder_dropped_frames == 0  # offline: the recorder waits for its thread
    assert recorded.recordings == (tmp_path / "run.mp4",)
    frames, pts, video_s, audio_s = read_back(tmp_path / "run.mp4")
    ticks = math.ceil(seconds * FPS)  # --record covers the whole run: frames at k / 30 < 3.0 s, the first hop's too
    assert len(frames) == ticks and pts == list(range(ticks))
    assert video_s == pytest.approx(seconds, abs=1 / FPS)
    assert 0 <= audio_s - seconds < AAC_FRAME / SR  # the last AAC frame is padded whole
    assert frames[0].std() > 10 and frames[-1].std() > 10  # the world's picture, not black


def test_a_recording_ends_with_the_input_not_at_the_last_whole_hop(tmp_path):
    seconds = 2.9  # the last whole hop ends at 2.75 s: its tail is in the recording too
    outcome, _ = run_synthetic(tmp_path, seconds, record=str(tmp_path / "run.mp4"), summary=None)
    frames, pts, video_s, audio_s = read_back(tmp_path / "run.mp4")
    assert outcome.summary.hops == int(seconds / HOP)
    assert len(frames) == math.ceil(seconds * FPS) and pts == list(range(len(frames)))
    assert 0 <= audio_s - seconds < AAC_FRAME / SR


def test_a_recorder_that_falls_behind_drops_frames_and_the_summary_and_json_say_how_many(tmp_path):
    seconds = 3.0
    text = io.StringIO()
    # a queue of one frame, dropping when full, in an offline run that queues a hop's 7-8 frames at once:
    # the recorder thread cannot draw a frame (freeing its slot) in the time the next one is copied
    outcome, _ = run_synthetic(tmp_path, seconds, record=str(tmp_path / "run.mp4"), jsonl=str(tmp_path / "hops.jsonl"),
                               summary=text, recorder=RecorderConfig(queue_frames=1, when_full="drop"))
    dropped = outcome.summary.recorder_dropped_frames
    ticks = math.ceil(seconds * FPS)
    assert 0 < dropped < ticks
    records = [json.loads(line) for line in (tmp_path / "hops.jsonl").read_text().splitlines()]
    for r in records:
        schema.validate(r)
    counts = [r["counters"]["recorder_dropped_frames"] for r in records]
    assert counts == sorted(counts) and counts[-1] == dropped and records[-1]["final"]
    assert f"recorder dropped frames {dropped}" in text.getvalue()
    assert json.loads(json.dumps(outcome.summary.to_dict()))["recorder_dropped_frames"] == dropped
    # the file is whole: every accepted frame at its own time (gaps where frames were dropped), the last
    # one held to the end when the end was dropped, and all the audio
    frames, pts, video_s, audio_s = read_back(tmp_path / "run.mp4")
    held = len(frames) + dropped - ticks
    assert held in (0, 1) and pts == sorted(set(pts)) and pts[-1] == ticks - 1
    assert video_s == pytest.approx(seconds, abs=1 / FPS)
    assert 0 <= audio_s - seconds < AAC_FRAME / SR  # the last AAC frame is padded whole


def test_a_slow_encoder_in_a_live_run_drops_frames_and_never_holds_up_inference(tmp_path):
    seconds = 2.0
    # x264 "veryslow" took 134 ms per 224 x 224 frame on the 2-core machine here, 4x the 33 ms between frames
    outcome, _ = run_synthetic(tmp_path, seconds, realtime=True, record=str(tmp_path / "live.mp4"),
                               recorder=RecorderConfig(preset="veryslow", queue_frames=4))
    s = outcome.summary
    assert s.recorder_dropped_frames > 0
    assert s.hops + s.skips >= seconds / HOP - 1  # the hops went on (live: a late one may be skipped)
    frames, pts, video_s, audio_s = read_back(tmp_path / "live.mp4")
    assert 0 < len(frames) and pts == sorted(set(pts))
    # same duration T: the video ends at the first frame time at or past T, the audio pads its last AAC frame
    assert abs(video_s - audio_s) < max(1 / FPS, AAC_FRAME / SR)


def test_a_failure_on_the_recorder_thread_is_raised_at_stop(tmp_path):
    hop, size = 0.1, 32
    audio_ring, frame_ring = AudioRing(3 * SR, SR), FrameRing(16, size, size)
    labeler = FunctionLabeler(WindowSpec(0.2, SR), ("a",), lambda b: np.array([[0.9]], np.float32))
    recorder = Mp4RecorderSink(RecorderConfig(video_codec="no-such-encoder"), path=tmp_path / "x.mp4")
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("labeler", labeler)],
                          [recorder, JsonLinesSink(tmp_path / "hops.jsonl")], SchedulerConfig(hop_s=hop))
    for step in range(6):  # inference goes on while the recording fails on its own thread
        audio_ring.write(tone(int(hop * SR), audio_ring.total_written))
        while frame_ring.frames_written / FPS < audio_ring.total_written / SR:
            frame_ring.write(grey_frame(frame_ring.frames_written, size), frame_ring.frames_written / FPS)
        scheduler.step()
    with pytest.raises(ValueError, match="no-such-encoder"):
        scheduler.stop()
    assert len((tmp_path / "hops.jsonl").read_text().splitlines()) == 6 + 1  # the other sinks closed
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".x.*"))  # no file, no temporary
    assert not recorder.recording and recorder.recordings == []


def test_a_failure_taken_by_the_window_is_not_raised_again_at_stop(tmp_path):
    """The window shows a recorder failure in its status line (take_error); the run then ends
    normally instead of failing on the same error a second time."""
    hop, size = 0.1, 32
    audio_ring, frame_ring = AudioRing(3 * SR, SR), FrameRing(16, size, size)
    labeler = FunctionLabeler(WindowSpec(0.2, SR), ("a",), lambda b: np.array([[0.9]], np.float32))
    recorder = Mp4RecorderSink(RecorderConfig(video_codec="no-such-encoder"), path=tmp_path / "x.mp4")
    scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("labeler", labeler)], [recorder],
                          SchedulerConfig(hop_s=hop))
    taken = None
    for _ in range(6):
        audio_ring.write(tone(int(hop * SR), audio_ring.total_written))
        while frame_ring.frames_written / FPS < audio_ring.total_written / SR:
            frame_ring.write(grey_frame(frame_ring.frames_written, size), frame_ring.frames_written / FPS)
        scheduler.step()
        taken = taken or recorder.take_error()
    deadline = time.monotonic() + 10
    while taken is None and time.monotonic() < deadline:  # the recorder thread reports on its own time
        time.sleep(0.05)
        taken = recorder.take_error()
    assert isinstance(taken, ValueError) and "no-such-encoder" in str(taken)
    scheduler.stop()  # nothing left to raise
    assert recorder.take_error() is None


# ------------------------------------------------------------------------------ scores TSV


class FrameLabeler:
    """A frame-level labeler: frames every 50 ms, the newest centred 25 ms before the window's
    end, each scored by a known function of its centre's stream time (:meth:`expected`)."""

    labels = ("low", "high")
    spacing = 0.05

    def __init__(self, ring: AudioRing, seconds: float = 1.0):
        self.ring = ring
        self.window = WindowSpec(seconds, SR)

    @staticmethod
    def expected(t: np.ndarray) -> np.ndarray:
        """(T, 2) the scores of frames centred at ``t`` (T,)."""
        return np.stack([(t * 1.7) % 1.0, 0.5 + 0.5 * np.sin(t)], axis=1).astype(np.float32)

    def __call__(self, audio, frame=None):
        end = self.ring.total_written / SR
        n = int(round(self.window.seconds / self.spacing))
        relative = -0.5 * self.spacing - self.spacing * np.arange(n - 1, -1, -1)
        return FrameScores(self.expected(end + relative), relative)


def step_scheduler(model, seconds: float, hop: float, sinks) -> Scheduler:
    ring = model.ring
    scheduler = Scheduler(ring, None, [ModelSlot("frames", model)], list(sinks), SchedulerConfig(hop_s=hop),
                          source_name="synthetic:1")
    for _ in range(int(round(seconds / hop))):
        ring.write(np.zeros(int(hop * SR), np.float32))
        scheduler.step()
    scheduler.stop()
    return scheduler


def check_score_table(path, labels, seconds: float) -> np.ndarray:
    """The TSV's rows as (T, 2 + C) after checking what both of its readers require."""
    import warnings

    from models.evaluation.psds import read_score_tsv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it imports sed_eval, which imports the deprecated pkg_resources
        from sed_scores_eval.base_modules.io import read_sed_scores

    assert path.read_text().splitlines()[0].split("\t") == ["onset", "offset", *labels]
    table = read_score_tsv(path)  # contiguous rows of positive length, or it raises
    read_sed_scores(path)  # sed_scores_eval's own reader and checks
    assert table.onsets[0] >= 0.0 and table.offsets[-1] <= seconds + 1e-9
    return np.column_stack([table.onsets, table.offsets, table.scores])


def test_scores_tsv_writes_each_frame_once_centred_on_its_time(tmp_path):
    seconds, hop = 6.0, 0.25
    model = FrameLabeler(AudioRing(3 * SR, SR))
    sink = ScoresTsvSink(tmp_path / "scores.tsv")
    step_scheduler(model, seconds, hop, [sink])
    rows = check_score_table(tmp_path / "scores.tsv", FrameLabeler.labels, seconds)
    # every frame centred in [0, 6 s) once: overlapping windows (1 s, every 0.25 s) repeat frames
    centres = np.arange(0.025, seconds, 0.05)
    assert sink.rows == rows.shape[0] == centres.size
    np.testing.assert_allclose(0.5 * (rows[:, 0] + rows[:, 1]), centres, atol=1e-6)  # 6 decimals written
    np.testing.assert_allclose(rows[:, 1] - rows[:, 0], 0.05, atol=2e-6)
    np.testing.assert_allclose(rows[:, 2:], FrameLabeler.expected(centres), atol=1e-6)  # 7 digits written


def test_scores_tsv_writes_one_row_per_run_of_a_window_labeler(tmp_path):
    sink = ScoresTsvSink(tmp_path / "scores.tsv")
    seconds = 12.0
    scene, _ = run_world(tmp_path, seconds, hop=0.1, sinks=[sink])
    rows = check_score_table(tmp_path / "scores.tsv", CLASS_NAMES, seconds)
    assert rows.shape[0] == 120  # [hop time - hop, hop time] for each hop
    np.testing.assert_allclose(rows[:, 0], np.arange(120) * 0.1, atol=1e-6)
    np.testing.assert_allclose(rows[:, 1], np.arange(1, 121) * 0.1, atol=1e-6)
    expected = np.full((120, len(CLASS_NAMES)), 0.05)  # what the oracle said at each row's end
    for i, t in enumerate(rows[:, 1]):
        for e in scene.events_between(t - 0.01, t):
            if e.onset <= t < e.offset:
                expected[i, e.class_index] = 0.95
    assert (expected == 0.95).any()
    np.testing.assert_allclose(rows[:, 2:], expected, atol=1e-7)


def test_scores_tsv_refuses_a_run_without_a_labeler(tmp_path):
    sink = ScoresTsvSink(tmp_path / "scores.tsv")
    from realtime.sinks import SinkContext

    with pytest.raises(ValueError, match="no labeler"):
        sink.open(SinkContext("synthetic:1", SR, 0.25, None, None, {}))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ScoresTsvSink(tmp_path / "nowhere" / "s.tsv").open(SinkContext("synthetic:1", SR, 0.25, None, None, {"a": ("x",)}))


def test_latency_histogram_percentiles_are_within_one_percent_in_constant_memory():
    from realtime.sinks import LatencyHistogram

    rng = np.random.default_rng(5)
    for values in (rng.lognormal(2.0, 1.0, 20000), rng.uniform(0.5, 3.0, 777), np.full(10, 7.25)):
        h = LatencyHistogram()
        size = h.counts.nbytes
        for v in values:
            h.add(float(v))
        exact = np.sort(values)[int(np.ceil(0.95 * values.size)) - 1]  # nearest rank, as the histogram ranks
        stats = h.stats()
        assert abs(stats["p95"] - exact) <= 0.01 * exact
        # a running float64 sum against numpy's pairwise one: measured 6.4e-15 relative (20,000 values)
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12) and stats["max"] == values.max()
        assert stats["n"] == values.size and h.counts.nbytes == size


def test_events_reach_the_tsv_as_they_end_and_the_closed_file_is_sorted(tmp_path):
    from types import SimpleNamespace

    from models.core.events import LabeledEvent, read_strong_tsv

    path = tmp_path / "events.tsv"
    sink = EventsTsvSink(path)
    sink.open(SimpleNamespace(source_name="mic"))
    late = LabeledEvent("mic", 2.0, 3.0, "bell")
    early = LabeledEvent("mic", 0.5, 3.5, "hiss")
    sink.write(SimpleNamespace(ended=(late,)))
    assert read_strong_tsv(path) == [late]  # on disk before the run ends (a kill keeps it)
    sink.write(SimpleNamespace(ended=(early,)))
    sink.close()
    assert read_strong_tsv(path) == [early, late] and sink.count == 2
