"""``--device cuda`` outside the live app: apps.evaluate and the prepared GPU script apps.gpu_check.

Where CUDA is missing (every machine these were written on) the CUDA paths must end in one line
with a stated exit status, and the GPU script's own plumbing is rehearsed on the CPU; where a
CUDA device exists, the CUDA tests run (they skip here, saying why)."""
from __future__ import annotations

import subprocess

import pytest
import torch

from conftest import REPO, python_cmd, subprocess_env

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = f"CUDA is not available (torch {torch.__version__}, CUDA build {torch.version.cuda})"
DEMO = REPO / "models" / "demo" / "labeler"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(python_cmd(*args), cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)


def test_gpu_check_has_help():
    done = run("-m", "apps.gpu_check", "--help")
    assert done.returncode == 0 and "--device cuda" in done.stdout and "77" in done.stdout


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here: test_gpu_check_runs_on_cuda runs the script")
def test_gpu_check_without_cuda_is_one_line_and_77():
    done = run("-m", "apps.gpu_check")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 77 and len(lines) == 1 and "no CUDA device" in lines[0] and not done.stdout


def test_gpu_check_plumbing_rehearsed_on_the_cpu(tmp_path):
    out = tmp_path / "rows.json"
    done = run("-m", "apps.gpu_check", "--device", "cpu", "--families", "baseline,panns", "--repeats", "1",
               "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    import json

    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows if r["what"] == "family"] == ["baseline", "panns"]
    fronts = {r["name"]: r for r in rows if r["what"] == "front end"}
    assert set(fronts) == {f"{s} {impl}" for s in ("slowfast-demo", "l3", "epic-sounds") for impl in ("stft", "conv")}
    assert all(r["error"] == "" for r in rows)
    assert all(r["max_abs_diff"] == 0.0 for r in rows if r["what"] == "family")  # the CPU against itself
    assert all(r["max_abs_diff"] < 1e-3 for r in fronts.values())  # float32 vs float64 features
    assert "tensorrt" in done.stdout


@pytest.mark.gpu
def test_gpu_check_runs_on_cuda(tmp_path):
    if not HAS_CUDA:
        pytest.skip(NO_CUDA)
    done = run("-m", "apps.gpu_check", "--repeats", "3", "--json", str(tmp_path / "rows.json"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_evaluate_on_cuda_without_a_device_is_one_line():
    done = run("-m", "apps.evaluate", str(DEMO / "model.onnx"), "--backend", "onnxruntime", "--device", "cuda",
               "--windows", "4")
    lines = done.stderr.strip().splitlines()
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    assert done.returncode == 2 and lines and "Traceback" not in done.stderr
    assert lines[-1].startswith("error: --backend onnxruntime --device cuda:") and "CUDAExecutionProvider" in lines[-1]
    done = run("-m", "apps.evaluate", str(DEMO), "--backend", "tensorrt", "--windows", "4")
    assert done.returncode == 2 and "--backend tensorrt runs on the GPU: add --device cuda" in done.stderr
    done = run("-m", "apps.evaluate", str(DEMO), "--backend", "tensorrt", "--device", "cuda", "--windows", "4")
    assert done.returncode == 2 and "holds no TensorRT engine" in done.stderr and "--frontend conv" in done.stderr


@pytest.mark.gpu
def test_evaluate_torch_on_cuda_matches_the_cpu(tiny_run):
    if not HAS_CUDA:
        pytest.skip(NO_CUDA)
    cpu = run("-m", "apps.evaluate", str(tiny_run), "--windows", "64")
    cuda = run("-m", "apps.evaluate", str(tiny_run), "--windows", "64", "--device", "cuda")
    assert cpu.returncode == 0 and cuda.returncode == 0, cuda.stderr
    assert cpu.stdout.split("]", 1)[1][:40] == cuda.stdout.split("]", 1)[1][:40]  # the same top-1 and mAP


def test_benchmarks_record_a_jetsons_power_and_clock_state(tmp_path):
    from models.evaluation.benchmark import jetson_state, machine_description

    assert jetson_state(str(tmp_path)) is None  # not a Jetson: nothing recorded
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic\n")
    gpu = tmp_path / "sys" / "class" / "devfreq" / "17000000.gpu"
    gpu.mkdir(parents=True)
    for key, hz in (("cur_freq", 1300500000), ("min_freq", 306000000), ("max_freq", 1300500000)):
        (gpu / key).write_text(f"{hz}\n")
    cpu = tmp_path / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    cpu.mkdir(parents=True)
    (cpu / "scaling_cur_freq").write_text("2201600\n")
    state = jetson_state(str(tmp_path))
    assert state == {"l4t_release": "# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic", "nvpmodel": None,
                     "devfreq": {"17000000.gpu": {"cur_freq": 1300500000, "min_freq": 306000000,
                                                  "max_freq": 1300500000}},
                     "cpu0_cur_freq_khz": 2201600}
    assert "jetson" in machine_description()
