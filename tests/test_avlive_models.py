"""What a user passes to ``avlive --models``, run as the user runs it (a subprocess, nothing
imported by the test that the user would not have): an L3 run folder with the torch backend, a
released-layout Slow-Fast ``.pyth`` with both CPU backends, and ``--backend tensorrt`` on a
machine without TensorRT."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, python_cmd, subprocess_env
from models.slowfast.pyth import load_labels
from test_slowfast_checkpoint import write_reference_pyth

TINY_L3 = ["size=tiny", "world=tiny", "train_scenes=2", "scene_seconds=8", "val_scenes=2", "val_scene_seconds=6",
           "items_per_epoch=16", "val_items=8", "batch_size=4", "epochs=1", "num_workers=0", "threads=1",
           "render_workers=0", "warmup_steps=0", "seed=5", "max_steps=2"]


def avlive(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = subprocess_env()
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    done = subprocess.run(python_cmd("-m", "apps.avlive", *args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_l3_run_folder_runs_live_with_the_torch_backend(tiny_run, tmp_path):
    run = tmp_path / "l3-run"
    train = subprocess.run(python_cmd("-m", "models.train", "--recipe", "l3", "--out", str(run), *TINY_L3), cwd=tmp_path,
                           env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stderr[-3000:]
    out = tmp_path / "live.jsonl"
    avlive("--source", "synthetic:200000", "--duration", "3", "--no-realtime", "--headless", "--threads", "1",
           "--backend", "torch", "--models", str(tiny_run), str(run), "--jsonl", str(out), cwd=tmp_path)
    heat = [r["heatmap"] for r in records(out) if r["heatmap"] is not None]
    assert heat and any(h["fresh"] for h in heat)
    assert all(0.0 <= h["score"] <= 1.0 and len(h["peak"]) == 2 for h in heat)


@pytest.fixture(scope="module")
def tiny_pyth(tmp_path_factory) -> Path:
    """A released-layout EPIC-SOUNDS .pyth (44 classes) at test width, alone in its folder."""
    path = tmp_path_factory.mktemp("pyth") / "SLOWFAST_EPIC_SOUNDS_tiny.pyth"
    write_reference_pyth(path, heads=(44,), width=8, blocks=(1, 1, 1, 1))
    return path


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_pyth_runs_live_in_one_step(tiny_pyth, tmp_path, backend):
    out = tmp_path / "live.jsonl"
    done = avlive("--source", "synthetic:200000", "--duration", "3", "--no-realtime", "--headless", "--threads", "1",
                  "--backend", backend, "--models", str(tiny_pyth), "--jsonl", str(out), cwd=tmp_path)
    tops = [t for r in records(out) for t in r["top"]]
    assert tops and {t["label"] for t in tops} <= set(load_labels("epic_sounds"))
    if backend == "onnxruntime":  # exported once beside the file, then reused
        assert "exporting" in done.stderr and list((tiny_pyth.parent / ".avlive-cache").glob("*.onnx"))
        again = avlive("--source", "synthetic:200000", "--duration", "1", "--no-realtime", "--headless", "--threads", "1",
                       "--models", str(tiny_pyth), "--jsonl", str(tmp_path / "again.jsonl"), cwd=tmp_path)
        assert "exporting" not in again.stderr


def test_tensorrt_backend_without_tensorrt_is_one_line(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here: tests/test_engines.py runs the engine path")
    demo = REPO / "models" / "demo" / "labeler"
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"not built here")
    shutil.copy(demo / "model.onnx.json", tmp_path / "model.fp16.engine.json")
    done = avlive("--source", "synthetic:200000", "--duration", "1", "--headless", "--backend", "tensorrt",
                  "--models", str(engine), cwd=tmp_path, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
    assert "TensorRT is not installed" in lines[0] and "pip install" in lines[0]
    # an exported model is not an engine: the line says how to build one
    done = avlive("--source", "synthetic:200000", "--duration", "1", "--headless", "--backend", "tensorrt",
                  "--models", str(demo), cwd=tmp_path, check=False)
    assert done.returncode == 2 and "python -m engines.build_engine" in done.stderr and "Traceback" not in done.stderr
