"""Triton Inference Server: the repository export (parsed with tritonclient's own model-config
protobuf), the client's one-line errors against real sockets, and, where a server is set up
(``python -m apps.triton_server --setup DIR``; ``AVLIVE_TRITON_VENV=DIR``), four live clients
against one real server with dynamic batching visible in its statistics. Nothing of the
protocol is mocked: a test that needs the server skips, saying how to set one up."""
from __future__ import annotations

import json
import subprocess
import threading

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from apps.triton_server import ServerSetupError, find_server, free_port, start_server, stop_server, wait_ready
from conftest import REPO, python_cmd, subprocess_env
from engines import open_runner
from engines.tensorrt_runner import EngineInfo, engine_metadata
from engines.triton_runner import TritonRunner, TritonServerError, batch_statistics, server_metadata
from models.core.metadata import ModelMetadata, TensorSpec, sidecar_path
from models.export.cli import main as export_main
from models.export.onnx import DEFAULT_ATOL, DEFAULT_RTOL
from models.export.triton import (METADATA_PARAMETER, PYTHON_BACKEND_MODEL, TritonExportError, default_model_name,
                                  triton_config_text, write_triton_repository)

DEMO = REPO / "models" / "demo" / "labeler"


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def test_repository_export_parses_with_tritonclients_protobuf(tmp_path, capsys):
    repo = tmp_path / "repo"
    assert export_main([str(DEMO / "model.onnx"), "--triton", str(repo), "--triton-instances", "2"]) == 0
    assert "wrote Triton model 'labeler'" in capsys.readouterr().out
    config = parse(repo / "labeler" / "config.pbtxt")
    meta = ModelMetadata.load(sidecar_path(DEMO / "model.onnx"))
    assert config.name == "labeler" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == \
        [("audio", model_config_pb2.TYPE_FP32, [20320])]  # the batch axis is left out
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [("probs", model_config_pb2.TYPE_FP32, [12])]
    assert ModelMetadata.from_json(config.parameters[METADATA_PARAMETER].string_value) == meta
    assert (repo / "labeler" / "1" / "model.onnx").read_bytes() == (DEMO / "model.onnx").read_bytes()
    assert ModelMetadata.load(repo / "labeler" / "1" / "model.onnx.json") == meta


def test_python_backend_and_tensorrt_plan_configs(tmp_path):
    python = write_triton_repository(DEMO / "model.onnx", tmp_path, name="labeler-py", backend="python",
                                     max_batch_size=4)
    config = parse(python.config)
    assert config.backend == "python" and not config.platform and config.max_batch_size == 4
    compile((python.model.parent / "model.py").read_text(), "model.py", "exec")  # valid Python for the stub
    assert (python.model.parent / "model.py").read_text() == PYTHON_BACKEND_MODEL
    # a TensorRT engine (bytes stand in for a plan: the config is what is tested) with its sidecar
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"plan")
    info = EngineInfo(onnx_sha256="0" * 64, tensorrt_version="10.3.0", gpu_name="NVIDIA L4", precision="fp16",
                      profiles={"audio": {"min": [1, 20320], "opt": [1, 20320], "max": [4, 20320]}})
    engine_metadata(ModelMetadata.load(DEMO / "model.onnx.json"), info).save(sidecar_path(engine))
    plan = write_triton_repository(engine, tmp_path / "repo", name="labeler-trt")
    config = parse(plan.config)
    assert config.platform == "tensorrt_plan" and plan.model.name == "model.plan"
    assert config.max_batch_size == 4  # no more than the engine's profile allows
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    with pytest.raises(TritonExportError, match="is an ONNX model; --triton-backend tensorrt serves an engine"):
        write_triton_repository(DEMO / "model.onnx", tmp_path, backend="tensorrt")


def test_a_model_without_a_batch_axis_gets_no_dynamic_batching():
    meta = ModelMetadata(family="crnn", task="labeler", labels=("a", "b"), sample_rate=16000, window_seconds=0.1,
                         needs_frame=False, inputs=[TensorSpec("audio", (1, 1632), "float32"),
                                                    TensorSpec("state", (1, "hidden"), "float32")],
                         outputs=[TensorSpec("probs", (1, 2), "float32")])
    text, batch = triton_config_text(meta, name="crnn")
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert batch == 0 and config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert [list(t.dims) for t in config.input] == [[1, 1632], [1, -1]]


def test_labels_with_quotes_and_non_ascii_survive_the_config():
    meta = ModelMetadata(family="test", task="labeler", labels=('say "hi"', "Straßenbahn", "back\\slash", "新幹線"),
                         sample_rate=16000, window_seconds=1.0, needs_frame=False,
                         inputs=[TensorSpec("audio", ("batch", 16000), "float32")],
                         outputs=[TensorSpec("probs", ("batch", 4), "float32")])
    text, _ = triton_config_text(meta, name="m")
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert ModelMetadata.from_json(config.parameters[METADATA_PARAMETER].string_value).labels == meta.labels


def test_export_options_are_checked(tmp_path, capsys):
    assert export_main([str(DEMO / "model.onnx"), "--triton-name", "x"]) == 2
    assert "add --triton REPO_DIR" in capsys.readouterr().err
    assert export_main([str(DEMO / "model.onnx"), "--triton", str(tmp_path), "--triton-name", "bad name"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--triton-name: expected letters" in err[0]
    assert default_model_name(DEMO / "model.onnx") == "labeler"
    assert default_model_name(DEMO / "model.int8.onnx") == "labeler-int8"
    assert default_model_name(tmp_path / "esc.onnx") == "esc"


# ------------------------------------------------------------------------------------ client errors, real sockets


def test_no_server_is_one_line_naming_the_url_and_how_to_start_one():
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(TritonServerError) as info:
        TritonRunner("labeler", url=url, timeout_s=5).open()
    text = str(info.value)
    assert "\n" not in text and f"no Triton server answers at {url}" in text
    assert "python -m apps.triton_server --serve" in text
    with pytest.raises(ValueError, match="the client takes device='cpu'"):
        open_runner("triton", "labeler", device="cuda")


def avlive(*args: str, env_extra: dict | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env(**(env_extra or {}))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    command = python_cmd("-c", code, *args) if code else python_cmd("-m", "apps.avlive", *args)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_avlive_backend_triton_errors_are_one_line():
    url = f"127.0.0.1:{free_port()}"
    done = avlive("--source", "synthetic:200000", "--duration", "1", "--headless", "--backend", "triton",
                  "--triton-url", url)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"no Triton server answers at {url}" in lines[0]
    # without tritonclient (the 'triton' extra not installed): one line saying how to install it
    without = ("import sys; sys.modules['tritonclient'] = None; sys.modules['tritonclient.grpc'] = None; "
               "from apps.avlive import main; sys.exit(main(sys.argv[1:]))")
    done = avlive("--source", "synthetic:200000", "--duration", "1", "--headless", "--backend", "triton", code=without)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "tritonclient is not installed: pip install -e '.[triton]'" in lines[0]
    done = avlive("--source", "synthetic:200000", "--duration", "1", "--headless", "--backend", "triton",
                  "--device", "cuda")
    assert done.returncode == 2 and "the server decides where the model runs" in done.stderr


# ------------------------------------------------------------------------------------ a real server


def _server_missing() -> str | None:
    try:
        install = find_server()
    except ServerSetupError as e:
        return f"{e}"
    if "python" not in install.backends and "onnxruntime" not in install.backends:
        return (f"the Triton server in {install.venv} has neither the python nor the onnxruntime backend "
                f"(backends: {', '.join(install.backends) or 'none'})")
    return None


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory):
    reason = _server_missing()
    if reason is not None:
        pytest.skip(f"no Triton server set up: {reason}; tests look in $AVLIVE_TRITON_VENV, else the default "
                    f"(README, \"Fleets\")")
    install = find_server()
    root = tmp_path_factory.mktemp("triton")
    backend = "onnxruntime" if "onnxruntime" in install.backends else "python"
    write_triton_repository(DEMO / "model.onnx", root / "repo", backend=backend, max_batch_size=8,
                            queue_delay_us=20000)
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port()}
    log = root / "tritonserver.log"
    proc = start_server(install, root / "repo", log=log, **ports)
    url = f"127.0.0.1:{ports['grpc_port']}"
    try:
        wait_ready(proc, url, timeout_s=180, log=log)
        yield url, backend
    finally:
        stop_server(proc)


def _windows(n: int) -> np.ndarray:
    return np.random.default_rng(7).normal(0, 0.1, (n, 20320)).astype(np.float32)


def test_four_clients_share_one_server_with_dynamic_batching(triton_server):
    url, backend = triton_server
    meta = server_metadata(url, "labeler")
    assert meta == ModelMetadata.load(DEMO / "model.onnx.json")
    windows = _windows(32)
    with open_runner("onnxruntime", DEMO / "model.onnx", threads=1) as local:
        expected = np.concatenate([local.infer({"audio": windows[i:i + 1]})["probs"].copy() for i in range(32)])
    before = batch_statistics(url, "labeler")
    got = np.zeros_like(expected)
    start = threading.Barrier(4)
    errors = []

    def client(k: int) -> None:  # one live stream: single windows, one request at a time
        try:
            with TritonRunner("labeler", url=url) as runner:
                start.wait()
                for i in range(k, 32, 4):
                    got[i] = runner.infer({"audio": windows[i:i + 1]})["probs"][0]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    np.testing.assert_allclose(got, expected, atol=DEFAULT_ATOL, rtol=DEFAULT_RTOL)  # the export's tolerance
    after = batch_statistics(url, "labeler")
    ran = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    print(f"server batches (size: executions) for 32 single-window requests from 4 clients: {ran}")
    assert sum(size * count for size, count in ran.items()) == 32, ran
    assert any(size > 1 and count > 0 for size, count in ran.items()), \
        f"the server ran every request alone: {ran} (backend {backend})"


def test_four_avlive_processes_against_one_server(triton_server, tmp_path):
    url, _ = triton_server
    procs = []
    for k in range(4):
        out = tmp_path / f"client{k}.jsonl"
        env = subprocess_env()
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
            env.pop(name, None)
        procs.append((out, subprocess.Popen(
            python_cmd("-m", "apps.avlive", "--source", f"synthetic:{200000 + k}", "--duration", "3", "--no-realtime",
                       "--headless", "--threads", "1", "--backend", "triton", "--triton-url", url, "--labeler",
                       "labeler", "--localizer", "none", "--jsonl", str(out)),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    labels = set(ModelMetadata.load(DEMO / "model.onnx.json").labels)
    for out, proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert records and all(t["label"] in labels for r in records for t in r["top"])


def test_a_model_the_server_lacks_lists_the_ones_it_has(triton_server):
    url, _ = triton_server
    with pytest.raises(TritonServerError) as info:
        TritonRunner("no-such-model", url=url).open()
    assert "model 'no-such-model' is not ready" in str(info.value) and "labeler (READY)" in str(info.value)


def test_setup_command_is_named_when_no_server_is_set_up(tmp_path, monkeypatch):
    monkeypatch.setenv("AVLIVE_TRITON_VENV", str(tmp_path / "none"))
    with pytest.raises(ServerSetupError, match=r"set one up: python -m apps.triton_server --setup"):
        find_server()
