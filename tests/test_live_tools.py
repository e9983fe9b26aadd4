"""The live tools around the pipeline: tuning a labeler's rolling-label setting
(apps/tune_labeler.py) and the scored live benchmark (apps/bench_live.py), on the committed
demo labeler and on hand-made records with known answers."""
from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from apps import bench_live, tune_labeler
from models.core.events import LabeledEvent
from models.l3.evaluation import hop_truth, is_localization_hop
from models.core.live import FunctionLabeler, WindowSpec
from models.core.metadata import ModelMetadata
from models.world import CLASS_NAMES, Scene, get_preset
from realtime.models import DEMO_DIR
from realtime.rolling import HysteresisConfig
from conftest import python_cmd, subprocess_env

DEMO_LABELER = DEMO_DIR / "labeler"
needs_demo_labeler = pytest.mark.skipif(not (DEMO_LABELER / "model.onnx").is_file(),
                                        reason=f"the demo labeler {DEMO_LABELER} is not in this checkout")


# ------------------------------------------------------------------------------ tune_labeler


def test_hop_scores_give_each_hop_the_window_ending_at_it():
    sr, hop = 100, 0.25
    audio = np.arange(1000, dtype=np.float32)  # sample i holds i
    labeler = FunctionLabeler(WindowSpec(0.5, sr), ("last", "first"), lambda b: np.stack([b[:, -1], b[:, 0]], axis=1))
    scores, t0, step, emitted = tune_labeler.hop_scores(labeler, audio, sr, hop)
    assert step == hop
    assert t0 == pytest.approx(0.5)  # the first full window ends at 0.5 s
    ends = np.arange(50, 1001, 25)
    assert scores.shape == (len(ends), 2)
    np.testing.assert_array_equal(scores[:, 0], ends - 1)
    np.testing.assert_array_equal(scores[:, 1], ends - 50)
    np.testing.assert_array_equal(emitted, ends / sr)  # a hop's row reaches the rolling labels at its end
    with pytest.raises(ValueError, match="at least 50 samples"):
        tune_labeler.hop_scores(labeler, audio[:40], sr, hop)


@needs_demo_labeler
def test_tune_labeler_writes_a_setting_the_pipeline_reads(tmp_path, capsys):
    model = tmp_path / "labeler"
    shutil.copytree(DEMO_LABELER, model)
    status = tune_labeler.main([str(model), "--seconds", "40", "--per-class", "--max-delay", "0", "--max-latency", "0.6",
                                "--write"])
    captured = capsys.readouterr()
    out = captured.out
    assert status == 0, out
    rate = ModelMetadata.load(model / "model.onnx.json").sample_rate
    assert f"at 48000 Hz, resampled to {rate} Hz" in captured.err  # as avlive's capture reaches it beside the localizer
    p95 = [float(line.split("p95 ")[1].split()[0].rstrip(",")) for line in out.splitlines() if "onset-to-label latency" in line]  # ms or inf
    assert len(p95) == 2 and (p95[1] <= 600 or "warning: no setting" in captured.err)
    tuned = json.loads(out.split("tuned setting:", 1)[1].splitlines()[0])
    meta = ModelMetadata.load(model / "model.onnx.json")
    assert meta.extra["hysteresis"] == tuned
    assert HysteresisConfig.from_metadata(meta) == HysteresisConfig.from_dict(tuned)
    f1 = [float(line.split("event F1 ")[1].split()[0]) for line in out.splitlines() if "event F1" in line]
    assert len(f1) == 2 and all(0.0 <= f <= 1.0 for f in f1)  # the current and the tuned setting's figures
    assert tuned["min_duration_s"] == 0.0 and tuned["smooth_hops"] == 1  # --max-delay 0: nothing delays a label


def test_tune_labeler_refuses_a_test_seed(capsys):
    assert tune_labeler.main([str(DEMO_LABELER), "--seed", "200000"]) == 2
    assert "expected a validation seed" in capsys.readouterr().err
    assert tune_labeler.main([str(DEMO_LABELER), "--capture-rate", "-1"]) == 2
    assert "--capture-rate -1: expected Hz > 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------ bench_live


def record(t: float, active=(), total_ms: float = 10.0, heatmap=None) -> dict:
    return {"stream_time": t, "active": [{"label": a, "onset": 0.0, "score": 0.9} for a in active],
            "latency_ms": {"total": total_ms}, "heatmap": heatmap, "final": False}


def test_onset_latency_is_the_first_active_line_plus_its_processing_time():
    ref = [LabeledEvent("s", 1.0, 2.0, "beep"), LabeledEvent("s", 3.0, 3.5, "hiss"), LabeledEvent("s", 5.0, 6.0, "bell")]
    recs = [record(0.25 * k, active=(["beep"] if 1.5 <= 0.25 * k <= 2.0 else [])
                   + (["bell"] if 0.25 * k >= 8.0 else []), total_ms=20.0) for k in range(1, 40)]
    lat = bench_live.onset_latencies(ref, recs)
    assert lat[0] == pytest.approx(0.5 + 0.020)
    assert math.isinf(lat[1])  # never active: missed
    assert math.isinf(lat[2])  # active only after offset + 1 s: missed


def test_latency_percentiles_count_missed_events_as_infinitely_late():
    lat = np.array([0.1, 0.2, 0.3, np.inf])
    assert bench_live.latency_percentile(lat, 50) == pytest.approx(0.2)
    assert math.isinf(bench_live.latency_percentile(lat, 95))
    assert bench_live.latency_percentile(np.array([0.1] * 19 + [np.inf]), 95) == pytest.approx(0.1)


def test_stage_breakdown_means_and_p95():
    recs = [{"latency_ms": {"total": float(v), "copy": 1.0}} for v in range(1, 101)]
    stages = bench_live.stage_breakdown(recs)
    assert stages["copy"] == (1.0, 1.0)
    assert stages["total"][0] == pytest.approx(50.5) and stages["total"][1] == pytest.approx(95.05)


def test_pointing_hits_score_the_peak_against_the_sounding_box():
    scene = Scene(get_preset("bench"), 200_000)
    fps = scene.config.fps
    frame = next(k for k in range(fps, 120 * fps, 5) if is_localization_hop(hop_truth(scene, k)))
    x0, y0, x1, y1 = hop_truth(scene, frame).heard_visible[0].box
    t_end = frame / fps + 0.5  # a 1 s window centred on the frame ends here
    inside = {"peak": [int((x0 + x1) // 2), int((y0 + y1) // 2)], "score": 0.9, "has_source": True,
              "stream_time": t_end, "fresh": True}
    outside = dict(inside, peak=[int(x1) + 40 if x1 + 40 < scene.config.frame_width else int(x0) - 40, int(y0)])
    stale = dict(inside, fresh=False)
    hits = bench_live.pointing_hits(scene, [record(t_end, heatmap=h) for h in (inside, outside, stale)], 1.0, True)
    assert hits == [True, False]


def test_sed_scores_are_one_for_a_perfect_output_and_drop_for_a_shifted_one():
    ref = [LabeledEvent("synthetic:1", 1.0, 3.0, "beep"), LabeledEvent("synthetic:1", 4.0, 6.0, "hiss")]
    perfect = bench_live.sed_scores(ref, ref, {"synthetic:1": 10.0})
    assert perfect["scorer"] in ("sed_eval", "models.evaluation.metrics")
    for key in ("segment_f1", "event_f1", "onset_f1"):
        assert perfect[key] == pytest.approx(1.0)
    late = [LabeledEvent(e.filename, e.onset + 0.4, e.offset + 0.4, e.label) for e in ref]
    shifted = bench_live.sed_scores(ref, late, {"synthetic:1": 10.0})
    assert shifted["event_f1"] == pytest.approx(0.0) and shifted["onset_f1"] == pytest.approx(0.0)
    assert 0.5 < shifted["segment_f1"] < 1.0


@needs_demo_labeler
def test_bench_live_runs_avlive_and_prints_every_figure(tmp_path):
    done = subprocess.run(python_cmd("-m", "apps.bench_live", "--seeds", "200001", "--seconds", "6",
                                     "--out", str(tmp_path), "--models", str(DEMO_LABELER)),
                          capture_output=True, text=True, env=subprocess_env(), timeout=180)
    assert done.returncode == 0, done.stderr
    for figure in ("segment-based F1", "event-based F1", "onset-only event F1", "onset-to-label latency", "model:labeler",
                   "PSDS1 / PSDS2", "labelers compared"):
        assert figure in done.stdout
    assert (tmp_path / "200001.events.tsv").is_file() and (tmp_path / "200001.jsonl").is_file()
    assert (tmp_path / "stages.png").stat().st_size > 0  # the stacked per-stage plot
    assert set(CLASS_NAMES) >= {e.label for e in bench_live.read_strong_tsv(tmp_path / "200001.events.tsv")}
    assert bench_live.read_score_tsv(tmp_path / "200001.scores.tsv").labels == CLASS_NAMES


@needs_demo_labeler
def test_bench_live_compares_labelers_in_one_table(tmp_path):
    """Two labelers (the demo one, named two ways) through one seed, --fast (offline): one table
    row each with every figure, both run with the same localizer (each row has a user's load)."""
    done = subprocess.run(python_cmd("-m", "apps.bench_live", "--seeds", "200001", "--seconds", "8", "--fast",
                                     "--out", str(tmp_path), "--labelers", "demo", str(DEMO_LABELER)),
                          capture_output=True, text=True, env=subprocess_env(), timeout=180)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "latency not meaningful" in out  # --fast says so
    table = out[out.index("labelers compared"):].splitlines()[2:]
    assert [row.split()[0] for row in table] == ["demo", "labeler"]
    for row in table:
        event_micro, event_macro, segment, onset, psds1, psds2 = (float(x) for x in row.split()[1:7])
        assert all(0.0 <= x <= 1.0 for x in (event_micro, event_macro, segment, onset, psds1, psds2))
        missed, of, total = row.split()[-3:]  # missed of the reference events (3 in these 8 s)
        assert of == "of" and int(total) == 3 and 0 <= int(missed) <= 3
    for folder in ("1-demo", "2-labeler"):
        records = [json.loads(line) for line in (tmp_path / folder / "200001.jsonl").read_text().splitlines()]
        assert any(r["heatmap"] for r in records)
    for folder in ("1-demo", "2-labeler"):
        assert bench_live.read_score_tsv(tmp_path / folder / "200001.scores.tsv").labels == CLASS_NAMES
    # the figures of the first row are those of the full report above it
    psds1, psds2 = (float(x) for x in out.split("PSDS1 / PSDS2 (raw scores):")[1].split()[:3:2])
    assert float(table[0].split()[5]) == psds1 and float(table[0].split()[6]) == psds2


def test_psds_scores_pool_the_seeds_and_skip_a_labeler_of_other_classes(tmp_path):
    """bench_live's PSDS: the files of all seeds in one score, overlapping reference events of a
    class joined; None for a labeler whose labels are not the reference's."""
    ref = [LabeledEvent("synthetic:1", 1.0, 3.0, "beep"), LabeledEvent("synthetic:1", 2.0, 4.0, "beep"),
           LabeledEvent("synthetic:2", 5.0, 6.0, "hiss")]
    files = {"synthetic:1": 10.0, "synthetic:2": 10.0}
    paths = {}
    for name in files:
        path = tmp_path / f"{name[-1]}.tsv"
        rows = ["onset\toffset\tbeep\thiss"]
        for k in range(100):
            t0, t1 = k * 0.1, (k + 1) * 0.1
            centre = t0 + 0.05
            rows.append(f"{t0:.6f}\t{t1:.6f}\t" + "\t".join(
                "1" if any(e.filename == name and e.label == lab and e.onset < centre < e.offset for e in ref) else "0"
                for lab in ("beep", "hiss")))
        path.write_text("\n".join(rows) + "\n")
        paths[name] = path
    (psds1, psds2), classes = bench_live.psds_scores(paths, ref, files)
    assert classes == 2 and psds1 == pytest.approx(1.0) and psds2 == pytest.approx(1.0)
    assert bench_live.psds_scores(paths, [LabeledEvent("synthetic:1", 1.0, 2.0, "organ")], files) is None
