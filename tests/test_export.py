"""python -m models.export on a run folder, and scoring the export with apps.evaluate."""
from __future__ import annotations

import json

import onnx
import pytest

from apps.evaluate import main as evaluate_main
from models.export.cli import main as export_main
from models.core.metadata import ModelMetadata


def test_export_run_folder_verifies_and_writes_sidecar(tiny_run, tmp_path, capsys):
    target = tmp_path / "baseline.onnx"
    assert export_main([str(tiny_run), "--out", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "random inputs" in printed and "real inputs" in printed
    model = onnx.load(target)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["audio"] and [o.name for o in model.graph.output] == ["probs"]
    meta = ModelMetadata.load(f"{target}.json")
    assert meta.family == "baseline" and meta.sample_rate == 16000 and len(meta.labels) == 12
    assert meta.checkpoint_sha256 and len(meta.checkpoint_sha256) == 64
    assert meta.inputs[0].shape[0] == "batch" or isinstance(meta.inputs[0].shape[0], str)


def test_export_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert export_main([str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_torch_and_onnxruntime_agree_on_world_windows(tiny_run, tmp_path, capsys):
    assert export_main([str(tiny_run)]) == 0
    figures = tmp_path / "figures.json"
    assert evaluate_main([str(tiny_run), "--compare", "--split", "val", "--windows", "40", "--json", str(figures)]) == 0
    result = json.loads(figures.read_text())
    assert result["max_abs_diff_torch_vs_onnxruntime"] <= 1e-4
    assert result["torch"]["top1"] == pytest.approx(result["onnxruntime"]["top1"])
    assert set(result["torch"]) >= {"top1", "top5", "top1_snr_0-5", "pair_chirp-up/chirp-down"}
    assert "torch vs onnxruntime" in capsys.readouterr().out


def test_export_of_a_pyth_file(tmp_path, capsys):
    """A Slow-Fast .pyth (tiny width, VGG-Sound head) exports with its dataset's front end and labels."""
    import torch

    from models.slowfast.network import SlowFast, SlowFastConfig
    from models.slowfast.pyth import save_pyth

    torch.set_num_threads(1)
    model = SlowFast(SlowFastConfig(num_classes=(309,), width=8, blocks=(1, 1, 1, 1)))
    path = tmp_path / "SLOWFAST_VGG_small.pyth"
    save_pyth(path, model)
    assert export_main([str(path)]) == 0
    meta = ModelMetadata.load(tmp_path / "SLOWFAST_VGG_small.onnx.json")
    assert meta.sample_rate == 16000 and len(meta.labels) == 309 and meta.inputs[0].shape[1] == 81903
    assert meta.extra["dataset"] == "vggsound"
