"""The synthetic world: determinism, chunking, ground truth and the frozen bench preset."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.core.events import read_strong_tsv, write_strong_tsv
from models.world import BENCH, CLASS_NAMES, CLOSE_PAIRS, TINY, Scene, SOUND_CLASSES, seed_split, split_seed
from models.world.evalsets import TAIL_SECONDS, reference_events, scene_windows, snr_bin
from models.world.presets import SPLIT_SEEDS, config_fingerprint
from models.world.sounds import EventVoice, render_event

BENCH_FINGERPRINT = "b83b586c299ccd9880f2381a6db16f287bf0e0a418489a2389a9c5e6a37f7393"


def test_bench_preset_is_frozen():
    # Changing BENCH means re-running and reporting every number measured on it (README).
    assert config_fingerprint(BENCH) == BENCH_FINGERPRINT
    first = [(e.label, round(e.onset, 6), round(e.offset, 6), round(e.snr_db, 4)) for e in Scene(BENCH, 200000).events_between(0, 12)]
    assert first[:4] == [
        ("beep", 1.123809, 2.304064, 7.3805),
        ("engine-am4", 2.342213, 5.779158, 14.1942),
        ("bell", 5.342953, 5.680619, 9.0508),
        ("siren", 6.878456, 8.16122, 1.6403),
    ]
    # The generators and the background are pinned too, not only the parameters.
    audio = Scene(BENCH, 200000).render_audio(16000 * 5, 16000, 16000).astype(np.float64)
    assert float(np.abs(audio).sum()) == pytest.approx(727.4366356776695, rel=1e-5)
    frame, _ = Scene(BENCH, 200000).render_frame(90)
    assert int(frame.astype(np.int64).sum()) == pytest.approx(15103678, rel=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=40000), min_size=1, max_size=12),
    sample_rate=st.sampled_from([8000, 16000, 24000, 48000]),
    start=st.integers(min_value=0, max_value=200000),
)
def test_chunked_audio_equals_one_shot(cuts, sample_rate, start):
    total = sum(cuts)
    whole = Scene(BENCH, 7).render_audio(start, total, sample_rate)
    chunked_scene = Scene(BENCH, 7)  # a fresh scene: no state shared with the one-shot render
    pieces, pos = [], start
    for n in cuts:
        pieces.append(chunked_scene.render_audio(pos, n, sample_rate))
        pos += n
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_rendering_order_does_not_matter():
    a, b = Scene(BENCH, 11), Scene(BENCH, 11)
    late_first = b.render_audio(16000 * 50, 16000, 16000)  # jump ahead before rendering the start
    np.testing.assert_array_equal(a.render_audio(0, 16000, 16000), b.render_audio(0, 16000, 16000))
    np.testing.assert_array_equal(a.render_audio(16000 * 50, 16000, 16000), late_first)
    np.testing.assert_array_equal(a.render_frame(1500)[0], b.render_frame(1500)[0])
    np.testing.assert_array_equal(a.render_frame(3)[0], b.render_frame(3)[0])


def test_frames_are_deterministic_and_change_over_time():
    scene = Scene(BENCH, 5)
    f0, _ = scene.render_frame(40)
    again, _ = Scene(BENCH, 5).render_frame(40)
    np.testing.assert_array_equal(f0, again)
    assert f0.shape == (224, 224, 3) and f0.dtype == np.uint8
    assert np.abs(scene.render_frame(70)[0].astype(int) - f0).mean() > 1.0  # objects move


def test_ground_truth_boxes_match_rendered_objects():
    scene = Scene(BENCH, 21)
    checked_exact = 0
    for index in range(0, 30 * 60, 7):
        _, id_map = scene.render_frame(index)
        truth = scene.frame_objects(index)
        assert len(truth) >= 3, f"frame {index}: expected at least 3 visible objects"
        for pos, obj in enumerate(truth):
            ys, xs = np.nonzero(id_map == obj.object_uid)
            x0, y0, x1, y1 = obj.box
            if len(xs):  # every drawn pixel lies inside the object's box
                assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            later = truth[pos + 1 :]
            occluded = any(o.box[0] < x1 and o.box[2] > x0 and o.box[1] < y1 and o.box[3] > y0 for o in later)
            if not occluded:  # unoccluded objects fill their box edge to edge
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == obj.box
                checked_exact += 1
    assert checked_exact > 200


def test_sounding_flags_follow_events():
    scene = Scene(BENCH, 33)
    for index in range(0, 30 * 120, 11):
        t = index / BENCH.fps
        active = {e.uid for e in scene.events_between(t, t + 1e-9) if e.active_at(t)}
        for obj in scene.frame_objects(index):
            assert obj.sounding == (obj.event_uid in active)


def test_event_statistics_match_the_spec():
    scene = Scene(BENCH, 44)
    events = scene.events_between(0, 1800)
    assert len(events) > 500
    durations = np.array([e.offset - e.onset for e in events])
    assert durations.min() >= 0.3 and durations.max() <= 5.0
    snr = np.array([e.snr_db for e in events])
    assert snr.min() >= 0 and snr.max() <= 20 and abs(snr.mean() - 10) < 1.0
    assert {e.label for e in events} == set(CLASS_NAMES)
    assert 0.05 < np.mean([e.obj is None for e in events]) < 0.3  # some sounds are off-screen
    grid = np.arange(0, 1800, 0.05)
    overlap = np.array([sum(e.onset <= t < e.offset for e in events) for t in grid[::10]])
    assert overlap.max() <= 3 and (overlap == 3).any()
    assert (overlap == 0).mean() > 0.1  # silent stretches


def test_snr_is_event_rms_over_background_rms():
    scene = Scene(BENCH, 55)
    sr = 16000
    errors = []
    for e in scene.events_between(0, 300):
        start, n = int(round(e.onset * sr)), int(round((e.offset - e.onset) * sr))
        mix = scene.render_audio(start, n, sr).astype(np.float64)
        background = scene.render_background(start, n, sr)
        event = mix - background
        others = [o for o in scene.events_between(e.onset, e.offset) if o.uid != e.uid]
        if others:
            continue
        measured = 20 * np.log10(np.sqrt(np.mean(event**2)) / np.sqrt(np.mean(background**2)))
        errors.append(measured - e.snr_db)
    errors = np.array(errors)
    assert len(errors) > 20
    # The gain uses the expected background level; the realised noise over a short event wanders a little.
    assert abs(errors.mean()) < 0.5 and np.abs(errors).max() < 3.0


def test_every_class_renders_at_any_rate_with_unit_rms():
    for index in range(len(SOUND_CLASSES)):
        for sr in (8000, 16000, 48000):
            wave = render_event(index, EventVoice(1.3, 2 ** (2.5 / 12), seed=9), sr)
            assert wave.shape == (int(round(1.3 * sr)),)
            assert np.isfinite(wave).all()
            assert np.sqrt(np.mean(wave**2)) == pytest.approx(1.0, rel=1e-9)


def test_close_pairs_differ_in_one_parameter():
    # chirp-down is chirp-up reversed in time within each sweep; the two engines share the carrier.
    voice = EventVoice(1.0, 1.0, seed=3)
    up = render_event(CLASS_NAMES.index("chirp-up"), voice, 16000)
    down = render_event(CLASS_NAMES.index("chirp-down"), voice, 16000)
    spec_up = np.abs(np.fft.rfft(up)) ** 2
    spec_down = np.abs(np.fft.rfft(down)) ** 2
    assert np.corrcoef(np.log(spec_up + 1e-9), np.log(spec_down + 1e-9))[0, 1] > 0.8
    assert not np.allclose(up, down)
    assert {frozenset(p) for p in CLOSE_PAIRS} == {frozenset({"chirp-up", "chirp-down"}), frozenset({"engine-am4", "engine-am7"})}


def test_silent_object_of_another_class_is_visible_in_most_frames():
    scene = Scene(BENCH, 66)
    frames = [scene.frame_objects(k) for k in range(0, 30 * 600, 15)]
    confusable = 0
    for objs in frames:
        sounding = {o.class_index for o in objs if o.sounding}
        if sounding and any(not o.sounding and o.class_index not in sounding for o in objs):
            confusable += 1
    assert confusable / len(frames) >= 0.5


def test_single_event_windows_follow_the_definition():
    scene = Scene(BENCH, split_seed("test", 0))
    windows = scene_windows(scene, 600.0, 2.0)
    assert len(windows) > 50
    events = scene.events_between(0, 620)
    for w in windows:
        event = next(e for e in events if e.uid == w.event_uid)
        assert event.onset + TAIL_SECONDS <= w.end + 1e-9 <= event.offset + 1e-9
        assert not any(o.uid != event.uid and o.onset < event.offset and o.offset > event.onset for o in events)
        assert w.label == event.label and snr_bin(w.snr_db) in {"0-5", "5-10", "10-15", "15-20"}
        start, n = w.sample_span(16000)
        assert n == 32000 and start >= 0
    assert windows == scene_windows(Scene(BENCH, split_seed("test", 0)), 600.0, 2.0)


def test_splits_are_disjoint():
    ranges = sorted(SPLIT_SEEDS.values())
    for (a, n), (b, _) in zip(ranges, ranges[1:]):
        assert a + n <= b
    assert seed_split(split_seed("val", 3)) == "val"
    with pytest.raises(ValueError, match="split"):
        split_seed("holdout", 0)


def test_reference_tsv_round_trips(tmp_path):
    scene = Scene(TINY, 77)
    events = reference_events(scene, 60.0)
    assert events and all(e.filename == "synthetic:77" and e.offset <= 60.0 for e in events)
    path = tmp_path / "ref.tsv"
    write_strong_tsv(path, events)
    assert path.read_text().splitlines()[0] == "filename\tonset\toffset\tevent_label"
    assert read_strong_tsv(path) == sorted(events)


def test_tiny_preset_renders_small_frames():
    frame, ids = Scene(TINY, 1).render_frame(0)
    assert frame.shape == (96, 96, 3) and ids.shape == (96, 96)


def test_world_audio_resampled_as_live_equals_the_schedulers_soxr_stream(tmp_path, monkeypatch):
    """A scene rendered at 48 kHz and resampled to 16 kHz (``render_resampled``, what the CRNN
    recipe trains on and ``apps.tune_labeler`` tunes on) is sample for sample what the live
    scheduler's streaming soxr resampler makes of the 48 kHz capture, fed in capture blocks
    (0.0 measured); rendering at 16 kHz directly gives other audio. The cache keeps the two apart."""
    import soxr

    from models.world.cache import RESAMPLE_QUALITY, cached_window_audio, render_resampled
    from models.world.evalsets import WindowSpan
    from realtime.scheduler import SchedulerConfig

    assert RESAMPLE_QUALITY == SchedulerConfig().resample_quality
    seed = 100_000
    got = render_resampled([WindowSpan(seed, 3.0, 3.0)], 16000, 48000, BENCH)[0]
    capture = Scene(BENCH, seed).render_audio(0, 3 * 48000, 48000)
    stream = soxr.ResampleStream(48000, 16000, 1, dtype="float32", quality=SchedulerConfig().resample_quality)
    live = np.concatenate([stream.resample_chunk(capture[i : i + 1600]) for i in range(0, len(capture), 1600)]
                          + [stream.resample_chunk(np.zeros(0, np.float32), last=True)])
    assert got.shape == (48000,) and got.dtype == np.float32
    np.testing.assert_array_equal(got, live[:48000])
    direct = Scene(BENCH, seed).render_audio(0, 48000, 16000)
    assert np.abs(direct - got).max() > 0.5 * np.abs(got).max()
    monkeypatch.setenv("AVLIVE_CACHE", str(tmp_path))
    spans = [WindowSpan(seed, 1.0, 1.0)]
    np.testing.assert_array_equal(cached_window_audio(spans, 16000, BENCH, render_rate=48000, workers=1),
                                  render_resampled(spans, 16000, 48000, BENCH))
    np.testing.assert_array_equal(cached_window_audio(spans, 16000, BENCH, workers=1)[0], direct[:16000])
    assert len(list((tmp_path / "world").glob("*.npy"))) == 2
