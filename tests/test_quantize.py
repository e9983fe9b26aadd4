"""python -m models.export --int8 (models/export/quantize.py) and avlive --precision."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from models.core.metadata import ModelMetadata, TensorSpec, precision_path, sidecar_path
from models.export.cli import main as export_main
from models.export.quantize import QuantizeError, check_calibratable, export_int8, world_inputs


@pytest.fixture(scope="module")
def int8_run(tiny_run, tmp_path_factory):
    """A copy of the tiny baseline run with model.onnx and model.int8.onnx (16 calibration
    windows, 40 held-out ones, to stay quick)."""
    run = tmp_path_factory.mktemp("int8") / "run"
    shutil.copytree(tiny_run, run)
    assert export_main([str(run)]) == 0
    report = export_int8(run / "model.onnx", calib=16, held_out=40)
    return run, report


def test_int8_export_writes_the_variant_and_what_it_measured(int8_run):
    run, report = int8_run
    path = run / "model.int8.onnx"
    assert report.path == path == precision_path(run / "model.onnx", "int8")
    onnx.checker.check_model(str(path))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "STFT"} <= ops  # QDQ, the front end left in float32
    meta = ModelMetadata.load(f"{path}.json")
    fp32 = ModelMetadata.load(run / "model.onnx.json")
    assert meta.inputs == fp32.inputs and meta.outputs == fp32.outputs and meta.labels == fp32.labels
    record = meta.extra["precision"]
    assert record["precision"] == "int8" and record["calibration"]["count"] == 16
    assert "validation" in record["calibration"]["set"] and "test" in record["held_out"]["set"]
    assert record["held_out"]["count"] == 40 and record["source_sha256"] == fp32.extra["onnx_sha256"]
    assert any("STFT" in name for name in record["float32_nodes"])
    # the tiny run names the world's classes: top-1 and mAP on world test windows, both precisions
    world = record["world_test"]
    assert set(world["fp32"]) == set(world["int8"]) == {"top1", "mAP"}
    # measured on the tiny run (16 calibration windows): agreement 1.0, max |Δ| of the probabilities 2.3e-3
    assert record["held_out"]["top1_agreement"] >= 0.9
    assert record["held_out"]["max_abs_diff"]["probs"] < 0.02


def test_onnxruntime_runs_the_int8_file_close_to_fp32(int8_run):
    import onnxruntime as ort

    run, _ = int8_run
    meta = ModelMetadata.load(run / "model.onnx.json")
    feeds, _ = world_inputs(meta, "test", 8)
    fp32, int8 = (ort.InferenceSession(str(run / name), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
                  for name in ("model.onnx", "model.int8.onnx"))
    assert int8.shape == fp32.shape and np.all(np.isfinite(int8))
    assert float(np.abs(int8 - fp32).max()) < 0.02


def test_export_cli_on_an_existing_onnx_prints_the_comparison(int8_run, tmp_path, capsys):
    run, _ = int8_run
    out = tmp_path / "m.int8.onnx"
    assert export_main([str(run / "model.onnx"), "--int8", "--calib", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "calibrated on 8" in printed and "top-1 agreement" in printed and "world test top-1" in printed
    assert out.is_file() and json.loads(out.with_name("m.int8.onnx.json").read_text())["extra"]["precision"]


def test_avlive_runs_the_int8_labeler(int8_run, capsys):
    from apps.avlive import main

    run, _ = int8_run
    rc = main(["--source", "synthetic:200001", "--models", str(run), "--threads", "1", "--no-realtime",
               "--duration", "2", "--jsonl", "none", "--camera", "none", "--precision", "int8"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "precision int8" in next(line for line in err.splitlines() if "models:" in line)


def test_a_missing_int8_variant_names_the_command(int8_run, tmp_path, capsys):
    from apps.avlive import main

    run, _ = int8_run
    for name in ("model.onnx", "model.onnx.json"):  # an export without its int8 variant
        shutil.copy(run / name, tmp_path / name)
    rc = main(["--source", "synthetic:200001", "--models", str(tmp_path / "model.onnx"), "--threads", "1",
               "--no-realtime", "--duration", "1", "--jsonl", "none", "--camera", "none", "--precision", "int8"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc != 0 and len(lines) == 1, lines
    assert "model.int8.onnx is missing" in lines[0]
    assert f"python -m models.export {tmp_path / 'model.onnx'} --int8" in lines[0]


REAL_SOUNDS = Path(__file__).resolve().parents[1] / "models/demo/real-sounds"


@pytest.fixture(scope="module")
def streaming_int8(tmp_path_factory):
    """A copy of the real-sound CRNN (a streaming graph: audio chunk, state, history) with its
    int8 variant: 8 calibration hops, 20 held-out windows."""
    run = tmp_path_factory.mktemp("crnn-int8") / "real-sounds"
    shutil.copytree(REAL_SOUNDS, run)
    return run, export_int8(run / "model.onnx", calib=8, held_out=20)


def test_a_streaming_labeler_is_calibrated_hop_by_hop_with_its_state():
    """The calibration rows are the inputs of consecutive live calls: the history grows from the
    placeholder frame, and the state the graph carries is no longer the zeros of a reset."""
    from models.export.quantize import stream_calibration_rows

    meta = ModelMetadata.load(REAL_SOUNDS / "model.onnx.json")
    rows, described = stream_calibration_rows(REAL_SOUNDS / "model.onnx", meta, 8)
    assert len(rows) == 8 and "validation scene" in described and "state carried" in described
    assert all(set(r) == {"audio", "state", "history"} for r in rows)
    s = meta.extra["streaming"]
    lengths = [r["history"].shape[1] for r in rows]
    assert lengths[0] == 1 and lengths == sorted(lengths)  # the first call after a reset: the placeholder only
    assert lengths[-1] == 1 + s["window_frames"] - s["new_frames"]  # the full window after 60 s
    assert not rows[0]["state"].any() and rows[-1]["state"].any()
    assert rows[-1]["audio"].shape == (1, meta.inputs[0].shape[1])


def test_int8_of_a_streaming_labeler_is_written_and_compared_window_by_window(streaming_int8):
    from models.export.quantize import stream_window_scores, _world_windows

    run, report = streaming_int8
    onnx.checker.check_model(str(report.path))
    ops = [n.op_type for n in onnx.load(str(report.path)).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "STFT" in ops
    meta = ModelMetadata.load(sidecar_path(report.path))
    record = meta.extra["precision"]
    assert record["calibration"]["count"] == 8 and "hops of world" in record["calibration"]["set"]
    assert record["held_out"]["count"] == 20 and "streamed from a reset state" in record["held_out"]["set"]
    assert meta.extra["streaming"] == ModelMetadata.load(run / "model.onnx.json").extra["streaming"]
    # the figure in the sidecar is what streaming the same windows through both files gives
    fp32_meta = ModelMetadata.load(run / "model.onnx.json")
    _, _, audio = _world_windows(fp32_meta, "test", 20)
    a, b = (stream_window_scores(p, fp32_meta, audio) for p in (run / "model.onnx", report.path))
    assert a.shape == b.shape == (20, len(meta.labels))
    assert float(np.mean(a.argmax(1) == b.argmax(1))) == record["held_out"]["top1_agreement"]
    # measured (8 calibration hops, 20 windows): agreement 0.95, max |Δ| of the window maxima 0.17
    assert record["held_out"]["top1_agreement"] >= 0.9


def test_avlive_runs_the_streaming_int8_labeler(streaming_int8, capsys):
    from apps.avlive import main

    run, _ = streaming_int8
    rc = main(["--source", "synthetic:200001", "--labeler", str(run), "--localizer", "none", "--threads", "1",
               "--no-realtime", "--duration", "2", "--jsonl", "none", "--precision", "int8"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "precision int8" in next(line for line in err.splitlines() if "models:" in line)


def test_a_streaming_labeler_without_int8_names_the_command(capsys):
    from apps.avlive import main

    rc = main(["--source", "synthetic:200001", "--labeler", str(REAL_SOUNDS), "--localizer", "none", "--threads", "1",
               "--no-realtime", "--duration", "1", "--jsonl", "none", "--precision", "int8"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc != 0 and len(lines) == 1, lines
    assert "model.int8.onnx is missing" in lines[0] and "python -m models.export" in lines[0] and "--int8" in lines[0]


def test_a_streaming_labeler_refuses_batch_calibration_and_calib_data(tmp_path):
    """TensorRT's calibrator takes one batch of inputs (calibration_inputs); a streaming graph's
    state only exists hop by hop, so that path says where its INT8 comes from. --calib-data
    (clips of a dataset) has no stream either."""
    from models.export.quantize import calibration_inputs

    meta = ModelMetadata.load(REAL_SOUNDS / "model.onnx.json")
    check_calibratable(meta, where="real-sounds")  # ONNX Runtime calibrates it hop by hop
    with pytest.raises(QuantizeError, match="hop by hop"):
        calibration_inputs(meta, 8)
    with pytest.raises(QuantizeError, match="--calib-data"):
        export_int8(REAL_SOUNDS / "model.onnx", calib=8, calib_data=tmp_path)


def test_bf16_is_refused_with_the_measurement(tmp_path, capsys):
    assert export_main([str(tmp_path), "--bf16"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "bfloat16" in line and "--int8" in line


def test_a_graph_with_state_inputs_but_no_streaming_settings_is_refused():
    meta = ModelMetadata(family="crnn", task="labeler", labels=("a", "b"), sample_rate=16000, window_seconds=1.0,
                         needs_frame=False,
                         inputs=(TensorSpec("audio", ("batch", 1600), "float32"),
                                 TensorSpec("state", ("batch", 64), "float32"),
                                 TensorSpec("history", ("batch", "history", 32), "float32")),
                         outputs=(TensorSpec("probs", ("batch", "window", 2), "float32"),))
    with pytest.raises(QuantizeError, match="history"):
        check_calibratable(meta, where="crnn")


def test_calibration_on_a_dataset_folder(int8_run, tmp_path):
    import soundfile as sf

    run, _ = int8_run
    rng = np.random.default_rng(0)
    for k, name in enumerate(["meow", "meow", "meow", "purr", "purr", "purr"]):  # folder per class
        (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "data" / name / f"{k}.wav", 0.1 * rng.standard_normal(16_000).astype(np.float32), 16_000)
    report = export_int8(run / "model.onnx", calib=3, calib_data=tmp_path / "data", held_out=20,
                         out=tmp_path / "m.int8.onnx")
    calibration = report.record["calibration"]
    assert calibration["set"].startswith("folder training clips of") and 1 <= calibration["count"] <= 3
    assert (tmp_path / "m.int8.onnx.json").is_file()
