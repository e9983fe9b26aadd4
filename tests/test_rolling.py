"""Rolling labels: smoothing, hysteresis, min duration / gap, onset correction, tuning."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.core.events import LabeledEvent
from models.core.metadata import ModelMetadata, TensorSpec
from models.evaluation.metrics import event_based_metrics
from realtime.rolling import (
    HysteresisConfig,
    HysteresisGrid,
    RollingLabels,
    detect_events,
    evaluate_hysteresis,
    latency_percentile,
    onset_latencies,
    shown_rows,
    smooth_scores,
    tune_hysteresis,
)

LABELS = ("a", "b", "c", "d")
NAME = "synthetic:7"


def stream(scores: np.ndarray, hop_s: float, config: HysteresisConfig, labels=LABELS):
    """Feed a track hop by hop (hop i at (i + 1) * hop_s); returns (ended events, active per hop)."""
    rolling = RollingLabels(labels, config, filename=NAME)
    ended, actives = [], []
    t = 0.0
    for i, row in enumerate(scores):
        t = (i + 1) * hop_s
        active, just_ended = rolling.update(row, t)
        ended += just_ended
        actives.append(active)
    ended += rolling.finish(t)
    return sorted(ended), actives


def spans(events) -> list[tuple[float, float]]:
    return [(round(e.onset, 6), round(e.offset, 6)) for e in events]


def track(hops: int, spans: dict[int, list[tuple[int, int]]], high=0.9, low=0.1, classes=2) -> np.ndarray:
    x = np.full((hops, classes), low, np.float32)
    for c, pairs in spans.items():
        for a, b in pairs:
            x[a:b, c] = high
    return x


PLAIN = HysteresisConfig(on=0.5, off=0.3, smooth_hops=1)


def test_known_onsets_and_offsets():
    x = track(60, {0: [(10, 30)], 1: [(5, 8), (40, 55)]})
    ended, actives = stream(x, 0.1, PLAIN, labels=("a", "b"))
    want = [LabeledEvent(NAME, 0.6, 0.9, "b"), LabeledEvent(NAME, 1.1, 3.1, "a"), LabeledEvent(NAME, 4.1, 5.6, "b")]
    got = {(e.label, round(e.onset, 6), round(e.offset, 6)) for e in ended}
    assert got == {(e.label, e.onset, e.offset) for e in want}
    assert [a.label for a in actives[15]] == ["a"]  # hop 15 is inside a's event
    assert actives[15][0].onset == pytest.approx(1.1)
    assert detect_events(x, 0.1, ("a", "b"), PLAIN, NAME) == ended


def test_onset_shift_corrects_back_and_clips_at_zero():
    x = track(40, {0: [(1, 20)]})
    cfg = HysteresisConfig(on=0.5, off=0.3, smooth_hops=1, onset_shift_s=0.5, offset_shift_s=0.1)
    (event,), _ = stream(x, 0.1, cfg, labels=("a", "b"))
    assert (event.onset, event.offset) == pytest.approx((0.0, 2.0))  # 0.2 - 0.5 clipped; 2.1 - 0.1
    x = track(40, {0: [(9, 20)]})
    (event,), _ = stream(x, 0.1, cfg, labels=("a", "b"))
    assert event.onset == pytest.approx(0.5)


def test_hysteresis_suppresses_flicker():
    x = track(60, {})
    x[10:50, 0] = np.where(np.arange(40) % 2 == 0, 0.7, 0.45)  # one event flickering around 0.5
    naive, _ = stream(x, 0.1, HysteresisConfig(on=0.5, off=0.5, smooth_hops=1), labels=("a", "b"))
    assert len(naive) == 20
    hysteresis, _ = stream(x, 0.1, HysteresisConfig(on=0.6, off=0.3, smooth_hops=1), labels=("a", "b"))
    assert spans(hysteresis) == [(1.1, 5.1)]
    smoothed, _ = stream(x, 0.1, HysteresisConfig(on=0.5, off=0.5, smoothing="median", smooth_hops=4), labels=("a", "b"))
    assert len(smoothed) == 1


def test_min_duration_drops_blips_and_delays_reporting():
    x = track(40, {0: [(5, 7), (20, 30)]})  # a 0.2 s blip and a 1 s event
    kept, _ = stream(x, 0.1, PLAIN, labels=("a", "b"))
    assert len(kept) == 2
    cfg = HysteresisConfig(on=0.5, off=0.3, smooth_hops=1, min_duration_s=0.3)
    ended, actives = stream(x, 0.1, cfg, labels=("a", "b"))
    assert spans(ended) == [(2.1, 3.1)]
    assert all(not a for a in actives[:22])  # blip never shown; the event shows once 0.3 s long
    assert [a.label for a in actives[23]] == ["a"] and not actives[22]
    assert detect_events(x, 0.1, ("a", "b"), cfg, NAME) == ended


def test_min_gap_merges_short_drops():
    x = track(40, {0: [(5, 10), (12, 20)]})  # a 0.2 s drop
    split, _ = stream(x, 0.1, PLAIN, labels=("a", "b"))
    assert len(split) == 2
    cfg = HysteresisConfig(on=0.5, off=0.3, smooth_hops=1, min_gap_s=0.25)
    merged, actives = stream(x, 0.1, cfg, labels=("a", "b"))
    assert spans(merged) == [(0.6, 2.1)]
    assert all(a for a in actives[5:20])  # active through the drop
    wide = track(40, {0: [(5, 10), (13, 20)]})  # a 0.3 s drop is not merged
    assert len(stream(wide, 0.1, cfg, labels=("a", "b"))[0]) == 2


STREAMING_CASES = [
    HysteresisConfig(on=0.6, off=0.4, smoothing="median", smooth_hops=3),
    HysteresisConfig(on=0.55, off=0.3, smoothing="median", smooth_hops=4, min_duration_s=0.3, min_gap_s=0.4),
    HysteresisConfig(on=0.5, off=0.5, smoothing="ema", smooth_hops=5, min_gap_s=0.2, onset_shift_s=0.3,
                     offset_shift_s=-0.1),
    HysteresisConfig(on=0.7, off=0.2, smooth_hops=1, min_duration_s=0.15, offset_shift_s=0.4),
    HysteresisConfig(on=0.6, off=0.4, smooth_hops=3, min_gap_s=0.2,
                     class_thresholds=(("b", 0.8, 0.7), ("d", 0.3, 0.1))),
]


def wandering_scores(seed: int) -> np.ndarray:
    """(500, 4) scores wandering in (0, 1), with outliers every 37 hops."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.4, (500, len(LABELS))), axis=0)
    x = (0.5 + 0.45 * np.sin(walk)).astype(np.float32)
    x[::37] = rng.uniform(0, 1, x[::37].shape)
    return x


@pytest.mark.parametrize("config", STREAMING_CASES)
def test_streaming_equals_offline(config):
    x = wandering_scores(4)
    ended, _ = stream(x, 0.1, config)
    assert len(ended) > 10
    assert ended == detect_events(x, 0.1, LABELS, config, NAME)
    rolling = RollingLabels(LABELS, config)
    for i, row in enumerate(x[:50]):
        rolling.update(row, (i + 1) * 0.1)
    np.testing.assert_array_equal(rolling.smoothed, smooth_scores(x[:50], config.smoothing, config.smooth_hops)[-1])


@pytest.mark.parametrize("config", STREAMING_CASES)
def test_shown_rows_are_what_the_streaming_labels_show(config):
    """Offline, :func:`shown_rows` gives the classes ``RollingLabels.active`` lists after each hop
    (minimum duration, gap bridging, shifts and per-class bars included)."""
    x = wandering_scores(4)
    _, actives = stream(x, 0.1, config)
    live = np.array([[label in {a.label for a in active} for label in LABELS] for active in actives])
    assert 0.2 < live.mean() < 0.8
    np.testing.assert_array_equal(shown_rows(x, 0.1, LABELS, config), live)


def test_onset_latencies_are_what_the_live_benchmark_measures_on_the_same_stream():
    """:func:`onset_latencies` on a score track equals ``apps.bench_live.onset_latencies`` on the
    JSON lines the streaming labels would print for it (no processing time): the first hop at or
    after each onset, before its offset + 1 s, that shows the class."""
    from apps.bench_live import onset_latencies as live_latencies

    config = HysteresisConfig(on=0.55, off=0.3, smoothing="median", smooth_hops=3, min_duration_s=0.3, min_gap_s=0.2)
    x, reference = synthetic_case(6, 80.0, 0.1, 0.3)
    _, actives = stream(x, 0.1, config)
    records = [{"stream_time": (i + 1) * 0.1, "latency_ms": {"total": 0.0}, "active": [{"label": a.label} for a in act]}
               for i, act in enumerate(actives)]
    want = live_latencies(reference, records)
    got = onset_latencies(x, 0.1, reference, LABELS, config)
    assert np.isfinite(want).sum() >= 10 and np.isinf(want).sum() >= 1  # labelled events and missed ones
    np.testing.assert_array_equal(got, want)


def test_onset_latency_of_a_step_counts_from_the_hop_that_brings_the_row():
    """A clean step crossing at row 10 (1.1 s) of an event that began at 1.0 s: 0.1 s late with
    rows emitted at their own time; a frame-level track whose rows arrive 0.25 s after their time
    (look-ahead) is that much later; a minimum duration adds its wait; no row by offset + 1 s: missed."""
    x = track(60, {0: [(10, 30)]})
    event = [LabeledEvent(NAME, 1.0, 2.5, "a")]
    # 1e-15: the times are sums of float hops (1.1 - 1.0 = 0.1 + 8.3e-17; at most 1.1e-16 measured)
    assert onset_latencies(x, 0.1, event, ("a", "b"), PLAIN)[0] == pytest.approx(0.1, abs=1e-15)
    late = 0.1 * (np.arange(60) + 1) + 0.25
    assert onset_latencies(x, 0.1, event, ("a", "b"), PLAIN, emitted=late)[0] == pytest.approx(0.35, abs=1e-15)
    waits = dataclasses.replace(PLAIN, min_duration_s=0.3)
    assert onset_latencies(x, 0.1, event, ("a", "b"), waits)[0] == pytest.approx(0.4, abs=1e-15)
    missed = [LabeledEvent(NAME, 0.0, 0.05, "a")]  # the class shows from 1.1 s, after its offset + 1 s
    assert np.isinf(onset_latencies(x, 0.1, missed, ("a", "b"), PLAIN)[0])
    with pytest.raises(ValueError, match="'z' is not one of the labels"):
        onset_latencies(x, 0.1, [LabeledEvent(NAME, 1.0, 2.0, "z")], ("a", "b"), PLAIN)


def test_config_from_metadata_and_validation():
    cfg = HysteresisConfig(on=0.6, off=0.3, smoothing="ema", smooth_hops=5, min_duration_s=0.2, onset_shift_s=0.4)
    meta = ModelMetadata(family="baseline", task="labeler", labels=LABELS, sample_rate=16000, window_seconds=1.0,
                         needs_frame=False, inputs=[TensorSpec("audio", ("batch", "samples"), "float32")],
                         outputs=[TensorSpec("scores", ("batch", 4), "float32")], extra={"hysteresis": cfg.to_dict()})
    assert HysteresisConfig.from_metadata(ModelMetadata.from_json(meta.to_json())) == cfg
    assert HysteresisConfig.from_metadata(meta.to_dict()) == cfg
    assert HysteresisConfig.from_metadata(meta.replace(extra={"tail_seconds": 0.5})).onset_shift_s == 0.5
    assert HysteresisConfig.from_metadata(meta.replace(extra={})) == HysteresisConfig()
    with pytest.raises(ValueError, match="unknown fields \\['treshold'\\]"):
        HysteresisConfig.from_dict({"treshold": 0.5})
    with pytest.raises(ValueError, match="off <= on"):
        HysteresisConfig(on=0.4, off=0.6)
    with pytest.raises(ValueError, match="smooth_hops"):
        HysteresisConfig(smooth_hops=0)


def test_class_thresholds_replace_the_shared_ones_for_their_classes_and_bad_ones_are_named():
    cfg = HysteresisConfig(on=0.5, off=0.3, smooth_hops=1, class_thresholds=(("c", 0.8, 0.75),))
    on, off = cfg.thresholds(LABELS)
    np.testing.assert_array_equal(on, [0.5, 0.5, 0.8, 0.5])
    np.testing.assert_array_equal(off, [0.3, 0.3, 0.75, 0.3])
    # stored as JSON lists, read back equal; a shared setting stores no class_thresholds key
    assert cfg.to_dict()["class_thresholds"] == [["c", 0.8, 0.75]]
    assert HysteresisConfig.from_dict(cfg.to_dict()) == cfg
    assert "class_thresholds" not in HysteresisConfig().to_dict()
    # a class scoring 0.7 between its events: above the shared bar, below its own
    x = track(40, {0: [(5, 15)], 1: [(20, 30)]}, high=0.95, low=0.1, classes=4)
    x[:, 2] = 0.7
    x[25:35, 2] = 0.95
    events = detect_events(x, 0.1, LABELS, cfg, NAME)
    assert [(e.label, round(e.onset, 6), round(e.offset, 6)) for e in events] == \
        [("a", 0.6, 1.6), ("b", 2.1, 3.1), ("c", 2.6, 3.6)]
    assert stream(x, 0.1, cfg)[0] == events
    shared = detect_events(x, 0.1, LABELS, dataclasses.replace(cfg, class_thresholds=()), NAME)
    assert [(e.label, round(e.onset, 6), round(e.offset, 6)) for e in shared if e.label == "c"] == [("c", 0.1, 4.0)]
    with pytest.raises(ValueError, match=r"class 'z' is not one of the labels"):
        RollingLabels(LABELS, HysteresisConfig(class_thresholds=(("z", 0.5, 0.4),)))
    with pytest.raises(ValueError, match=r"0 <= off <= on <= 1, found \['c', 0.4, 0.6\]"):
        HysteresisConfig(class_thresholds=(("c", 0.4, 0.6),))
    with pytest.raises(ValueError, match="a class named twice"):
        HysteresisConfig(class_thresholds=(("c", 0.5, 0.4), ("c", 0.6, 0.4)))


def synthetic_case(seed: int, seconds: float, hop_s: float, delay: float):
    """Reference events per class and a noisy score track that follows them ``delay`` s late."""
    rng = np.random.default_rng(seed)
    hops = int(seconds / hop_s)
    times = hop_s * (np.arange(hops) + 1)
    reference = []
    x = rng.uniform(0.1, 0.55, (hops, len(LABELS)))  # background: mostly low, sometimes above 0.5
    for c, label in enumerate(LABELS):
        t = rng.uniform(0.5, 3.0)
        while True:
            duration = rng.uniform(0.6, 4.0)
            if t + duration > seconds - 1:
                break
            reference.append(LabeledEvent(NAME, round(t, 3), round(t + duration, 3), label))
            inside = (times >= t + delay) & (times < t + duration + delay)
            x[inside, c] = rng.uniform(0.35, 0.95, inside.sum())  # flickers around 0.5
            t += duration + rng.uniform(1.0, 6.0)
    return x.astype(np.float32), sorted(reference)


def test_tune_hysteresis_recovers_a_good_setting():
    hop_s, delay = 0.1, 0.4
    x, reference = synthetic_case(1, 150.0, hop_s, delay)
    naive = HysteresisConfig(on=0.5, off=0.5, smooth_hops=1)
    naive_f1 = evaluate_hysteresis(x, hop_s, reference, LABELS, naive).f1
    tuned = tune_hysteresis(x, hop_s, reference, LABELS)
    tuned_f1 = evaluate_hysteresis(x, hop_s, reference, LABELS, tuned).f1
    assert naive_f1 < 0.2
    assert tuned_f1 > 0.75 and tuned_f1 > naive_f1 + 0.5
    # The onset correction absorbs the model's delay plus the smoothing's ((k - 1) / 2 hops for a median).
    smoothing_delay = (tuned.smooth_hops - 1) / 2 * hop_s if tuned.smoothing == "median" else 0.0
    assert abs(tuned.onset_shift_s - delay - smoothing_delay) <= 0.25
    # It generalises to another stream from the same "model".
    x2, reference2 = synthetic_case(2, 150.0, hop_s, delay)
    assert evaluate_hysteresis(x2, hop_s, reference2, LABELS, tuned).f1 > 0.6
    assert evaluate_hysteresis(x2, hop_s, reference2, LABELS, naive).f1 < 0.2
    # The tuned values are what metadata stores.
    assert HysteresisConfig.from_dict(tuned.to_dict()) == tuned


def test_per_class_tuning_finds_the_bar_of_a_class_whose_background_scores_high():
    """Class "c" scores 0.55-0.65 between its events (the live CRNN's engine-am4 sat near 0.5
    for seconds after each engine ended) and 0.9 inside them; the others are the usual synthetic
    case. No shared on/off serves both; tuned per class, "c" gets a bar above its background and
    the others keep theirs. The setting carries over to another stream of the same "model"."""
    hop_s, delay = 0.1, 0.4

    def case(seed):
        x, reference = synthetic_case(seed, 150.0, hop_s, delay)
        rng = np.random.default_rng(seed + 100)
        times = hop_s * (np.arange(len(x)) + 1)
        x[:, 2] = rng.uniform(0.55, 0.65, len(x))
        for e in reference:
            if e.label == "c":
                inside = (times >= e.onset + delay) & (times < e.offset + delay)
                x[inside, 2] = rng.uniform(0.85, 0.95, inside.sum())
        return x, reference

    x, reference = case(11)
    shared = tune_hysteresis(x, hop_s, reference, LABELS)
    tuned = tune_hysteresis(x, hop_s, reference, LABELS, per_class=True)
    assert shared.class_thresholds == ()
    bars = {label: on for label, on, _off in tuned.class_thresholds}
    (c_off,) = [off for label, _on, off in tuned.class_thresholds if label == "c"]
    assert bars["c"] >= 0.7 and c_off >= 0.65  # above the background it must end below
    x2, reference2 = case(12)
    for xs, ref in ((x, reference), (x2, reference2)):
        assert evaluate_hysteresis(xs, hop_s, ref, LABELS, tuned).f1 > \
            evaluate_hysteresis(xs, hop_s, ref, LABELS, shared).f1 + 0.1


def test_tune_exhaustive_on_a_small_grid_matches_its_best():
    hop_s = 0.1
    x, reference = synthetic_case(3, 60.0, hop_s, 0.2)
    grid = HysteresisGrid(on=(0.5, 0.6), off_ratio=(0.5, 1.0), smoothing=(("median", 1), ("median", 5)),
                          min_duration_s=(0.0,), min_gap_s=(0.0, 0.5), onset_shift_s=(0.0, 0.2, 0.4),
                          offset_shift_s=(0.0,))
    best = tune_hysteresis(x, hop_s, reference, LABELS, grid, exhaustive_limit=10_000)
    best_f1 = evaluate_hysteresis(x, hop_s, reference, LABELS, best).f1
    coordinate = tune_hysteresis(x, hop_s, reference, LABELS, grid)
    assert evaluate_hysteresis(x, hop_s, reference, LABELS, coordinate).f1 <= best_f1 + 1e-12
    est = detect_events(x, hop_s, LABELS, best, NAME)
    assert event_based_metrics(reference, est, labels=list(LABELS)).f1 == pytest.approx(best_f1)


def test_onset_delay_is_when_a_clean_step_is_shown():
    """A step from 0.1 to 0.9 at hop 20: with a causal median of k hops, a minimum duration and
    onset/offset corrections, the label shows exactly ``onset_delay_s`` after the first high hop."""
    hop_s = 0.125  # exact in binary: the times compare exactly
    x = track(60, {0: [(20, 60)]}, classes=1)
    for k, min_duration, onset_shift, offset_shift in ((1, 0.0, 0.0, 0.0), (3, 0.0, 0.0, 0.5), (5, 0.25, 0.0, 0.0),
                                                       (9, 0.125, 0.0, 0.0), (3, 0.125, 0.125, 0.25),
                                                       (1, 0.125, 0.5, 0.0), (1, 0.125, 0.0, 0.375)):
        cfg = HysteresisConfig(on=0.5, off=0.3, smooth_hops=k, min_duration_s=min_duration,
                               onset_shift_s=onset_shift, offset_shift_s=offset_shift)
        _, actives = stream(x, hop_s, cfg, labels=("a",))
        first_shown = next(i for i, a in enumerate(actives) if a)
        assert (first_shown - 20) * hop_s == cfg.onset_delay_s(hop_s)  # exact: multiples of 1/8 s


def test_tuning_within_a_delay_budget():
    """``max_delay_s`` keeps the tuner to settings that add at most that much to an onset: on a
    small grid the coordinate ascent and the exhaustive search both stay within it, and the
    exhaustive one finds the best of the points that fit."""
    hop_s = 0.1
    x, reference = synthetic_case(3, 60.0, hop_s, 0.2)
    grid = HysteresisGrid(on=(0.5, 0.6), off_ratio=(1.0,), smoothing=(("median", 1), ("median", 5), ("median", 9)),
                          min_duration_s=(0.0, 0.2, 0.4), min_gap_s=(0.0,), onset_shift_s=(0.0, 0.2, 0.4),
                          offset_shift_s=(0.0,))  # no hysteresis, no gap bridging: flickers need smoothing
    budget = 0.1
    unconstrained = tune_hysteresis(x, hop_s, reference, LABELS, grid, exhaustive_limit=10_000)
    assert unconstrained.onset_delay_s(hop_s) > budget  # the budget binds on this case
    best = tune_hysteresis(x, hop_s, reference, LABELS, grid, exhaustive_limit=10_000, max_delay_s=budget)
    coordinate = tune_hysteresis(x, hop_s, reference, LABELS, grid, max_delay_s=budget)
    assert best.onset_delay_s(hop_s) <= budget + 1e-9 and coordinate.onset_delay_s(hop_s) <= budget + 1e-9
    fitting = [HysteresisConfig(on=on, off=on * ratio, smoothing=mode, smooth_hops=k, min_duration_s=md, min_gap_s=gap,
                                onset_shift_s=shift) for on in grid.on for ratio in grid.off_ratio
               for mode, k in grid.smoothing for md in grid.min_duration_s for gap in grid.min_gap_s
               for shift in grid.onset_shift_s]
    fitting = [c for c in fitting if c.onset_delay_s(hop_s) <= budget + 1e-9]
    brute = max(evaluate_hysteresis(x, hop_s, reference, LABELS, c).f1 for c in fitting)
    assert evaluate_hysteresis(x, hop_s, reference, LABELS, best).f1 == brute  # the same computation
    assert evaluate_hysteresis(x, hop_s, reference, LABELS, coordinate).f1 <= brute + 1e-12
    with pytest.raises(ValueError, match="max_delay_s=0.0"):
        tune_hysteresis(x, hop_s, reference, LABELS, dataclasses.replace(grid, min_duration_s=(0.2,)), max_delay_s=0.0)


def test_tuning_to_a_latency_bar():
    """``max_latency_s`` keeps the tuner to settings whose p95 onset-to-label latency reaches the
    bar: the exhaustive search finds the best F1 among the settings that do (brute force over
    the grid agrees), the coordinate ascent reaches the bar too, and for a bar no setting
    reaches it returns the setting that labels the fewest events later than the bar."""
    hop_s = 0.1
    x, reference = synthetic_case(3, 60.0, hop_s, 0.2)
    grid = HysteresisGrid(on=(0.4, 0.5, 0.6, 0.7), off_ratio=(0.5, 1.0), smoothing=(("median", 1), ("median", 5)),
                          min_duration_s=(0.0, 0.3), min_gap_s=(0.0,), onset_shift_s=(0.0, 0.2), offset_shift_s=(0.0,))
    points = [HysteresisConfig(on=on, off=on * ratio, smoothing=mode, smooth_hops=k, min_duration_s=md,
                               onset_shift_s=shift) for on in grid.on for ratio in grid.off_ratio
              for mode, k in grid.smoothing for md in grid.min_duration_s for shift in grid.onset_shift_s]
    latencies = {c: onset_latencies(x, hop_s, reference, LABELS, c) for c in points}
    p95 = {c: latency_percentile(lat, 95) for c, lat in latencies.items()}
    f1 = {c: evaluate_hysteresis(x, hop_s, reference, LABELS, c).f1 for c in points}
    unconstrained = tune_hysteresis(x, hop_s, reference, LABELS, grid, exhaustive_limit=10_000)
    bar = 0.5
    assert latency_percentile(onset_latencies(x, hop_s, reference, LABELS, unconstrained), 95) > bar  # the bar binds
    best = tune_hysteresis(x, hop_s, reference, LABELS, grid, exhaustive_limit=10_000, max_latency_s=bar)
    coordinate = tune_hysteresis(x, hop_s, reference, LABELS, grid, max_latency_s=bar)
    assert p95[best] <= bar and p95[coordinate] <= bar
    assert f1[best] == max(f1[c] for c in points if p95[c] <= bar)  # the same computation
    assert f1[coordinate] <= f1[best]
    out_of_reach = min(p95.values()) - 0.05
    closest = tune_hysteresis(x, hop_s, reference, LABELS, grid, exhaustive_limit=10_000, max_latency_s=out_of_reach)
    late = {c: int(np.sum(lat > out_of_reach + 1e-9)) for c, lat in latencies.items()}
    assert late[closest] == min(late.values())


# ------------------------------------------------------------------------------ frame-level scores

FRAME = 0.02  # a sound-event detector's frame hop


def frame_windows(x: np.ndarray, window_frames: int, stops, jitter_s: float = 0.0):
    """Cut a (T, C) frame track into overlapping windows as a labeler would score them: a window
    ends at each frame index in ``stops`` (exclusive); frame i is centred at ``(i + 0.5) * FRAME``.
    Yields ``(scores (n, C), absolute times (n,), window end time)``."""
    for w, stop in enumerate(stops):
        idx = np.arange(stop - window_frames, stop)
        times = (idx + 0.5) * FRAME + jitter_s * (w % 2)  # odd windows' grid moved by a fraction of a frame
        yield np.where((idx >= 0)[:, None], x[np.clip(idx, 0, None)], 0.0), times, stop * FRAME


def rounded(events) -> list[tuple[str, float, float]]:
    return sorted((e.label, round(e.onset, 9), round(e.offset, 9)) for e in events)


@pytest.mark.parametrize("smoothing", [("median", 3), ("ema", 5), ("median", 1)])
def test_frame_scores_of_overlapping_windows_count_each_frame_once(smoothing):
    rng = np.random.default_rng(3)
    x = track(400, {0: [(40, 95), (101, 130)], 1: [(7, 13), (200, 390)], 2: [(150, 152)]}, classes=3)
    x = np.clip(x + 0.15 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    cfg = HysteresisConfig(on=0.5, off=0.3, smoothing=smoothing[0], smooth_hops=smoothing[1], min_gap_s=0.05)
    # windows of 1 s (50 frames) every 0.25 s (12.5 frames: 12 and 13 in turn), the first ones
    # reaching before the stream start
    stops = np.round(np.arange(1, 33) * 12.5).astype(int)
    rolling = RollingLabels(("a", "b", "c"), cfg, filename=NAME)
    ended, t = [], 0.0
    for scores, times, t in frame_windows(x, 50, stops):
        ended += rolling.update_frames(scores, times, t)[1]
    ended += rolling.finish(t)
    assert t == pytest.approx(8.0) and rolling.frames_consumed == len(x)  # every frame once, none before 0 s
    # the same events as the whole frame track fed at once, frame times for hop times
    want = detect_events(x, FRAME, ("a", "b", "c"), cfg, NAME, t0=0.5 * FRAME, end_time=t)
    assert len(want) >= 4 and rounded(ended) == rounded(want)
    assert all(abs(e.onset / FRAME - 0.5 - round(e.onset / FRAME - 0.5)) < 1e-6 for e in ended)  # on the frame grid


def test_shown_rows_of_frame_scores_follow_the_hop_that_brings_each_frame():
    """Frames arrive in windows (12-13 new frames every 0.25 s); what the streaming labels show
    after each window is :func:`shown_rows` at the window's newest frame, given each frame's
    emission time (a minimum duration counts up to the window's end, as ``active(t)`` does)."""
    config = HysteresisConfig(on=0.55, off=0.3, smooth_hops=3, min_duration_s=0.1, min_gap_s=0.05)
    rng = np.random.default_rng(3)
    x = track(400, {0: [(40, 95), (101, 130)], 1: [(7, 13), (200, 390)], 2: [(150, 152)]}, classes=3)
    x = np.clip(x + 0.15 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    stops = np.round(np.arange(1, 33) * 12.5).astype(int)
    rolling = RollingLabels(("a", "b", "c"), config)
    live, emitted, first = [], np.empty(len(x)), 0
    for (scores, times, t), stop in zip(frame_windows(x, 50, stops), stops):
        active = rolling.update_frames(scores, times, t)[0]
        live.append([label in {a.label for a in active} for label in "abc"])
        emitted[first:stop], first = t, stop
    shown = shown_rows(x, FRAME, ("a", "b", "c"), config, t0=0.5 * FRAME, emitted=emitted)
    assert np.array(live).sum() >= 10
    np.testing.assert_array_equal(shown[stops - 1], np.array(live))


def test_frame_scores_whose_grid_moves_a_little_are_not_counted_twice():
    x = track(200, {0: [(60, 120)]}, classes=2)
    rolling = RollingLabels(("a", "b"), PLAIN, filename=NAME)
    ended = []
    for scores, times, t in frame_windows(x, 50, range(10, 201, 10), jitter_s=0.3 * FRAME):
        ended += rolling.update_frames(scores, times, t)[1]
    ended += rolling.finish(200 * FRAME)
    assert rolling.frames_consumed == 200
    (event,) = ended
    assert event.onset == pytest.approx(60.5 * FRAME, abs=0.31 * FRAME)
    assert event.offset == pytest.approx(120.5 * FRAME, abs=0.31 * FRAME)


def test_frame_scores_with_a_gap_and_mistakes_named():
    rolling = RollingLabels(("a", "b"), PLAIN, filename=NAME)
    times = np.arange(10) * FRAME + 0.01
    rolling.update_frames(np.full((10, 2), 0.1), times, 0.2)
    # a window after skipped hops: the frames between were never scored; the new ones all count
    _, ended = rolling.update_frames(np.full((10, 2), 0.9), times + 1.0, 1.2)
    assert rolling.frames_consumed == 20 and rolling.consumed_until == pytest.approx(1.19)
    assert [a.onset for a in rolling.active(1.2)] == [pytest.approx(1.01)] * 2
    with pytest.raises(ValueError, match=r"expected scores of shape \(frames, 2\)"):
        rolling.update_frames(np.zeros((3, 4)), np.arange(3.0), 1.3)
    with pytest.raises(ValueError, match=r"expected times of shape \(3,\)"):
        rolling.update_frames(np.zeros((3, 2)), np.arange(4.0), 1.3)
    with pytest.raises(ValueError, match="strictly increasing"):
        rolling.update_frames(np.zeros((3, 2)), np.array([2.0, 2.0, 2.1]), 2.2)
    rolling.reset()
    assert rolling.consumed_until == -np.inf
