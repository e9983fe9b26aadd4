"""Tests for engines: the runner interface, ONNX Runtime, PyTorch and (where it exists) TensorRT."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import sys
import threading
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import engines
from engines import RUNNERS, open_runner
from engines.base import (
    DeviceUnavailableError,
    NonFiniteOutputError,
    RunnerInputError,
    check_feed,
    check_finite_outputs,
)
from engines.build_engine import build_engine, default_engine_path, main as build_main, parse_shape_arg, resolve_profiles
from engines.onnxruntime_runner import OnnxRuntimeRunner
from engines.tensorrt_runner import (
    TENSORRT_MISSING,
    EngineInfo,
    EngineMismatchError,
    TensorRTRunner,
    check_engine_sidecar,
    engine_metadata,
    engine_tensor_spec,
    require_tensorrt,
)
from engines.torch_runner import TorchRunner
from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.metadata import MetadataMismatch, ModelMetadata, TensorSpec, sidecar_path
from models.export.onnx import export_onnx

LABELS = ("organ", "siren", "knock")
SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()

HAS_CUDA = torch.cuda.is_available()
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
ORT_PROVIDERS = ort.get_available_providers()


# ------------------------------------------------------------------------------------ fixtures


class AudioNet(nn.Module):
    """Waveform (B, N) -> log-mel (B, T, 32) -> conv -> mean -> logits (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = FrontEnd(FrontEndConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                                                power=2.0, n_mels=32, mel_scale="htk", mel_norm=None))
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, len(LABELS))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(self.frontend(audio).unsqueeze(1)))  # (B, 4, T, 32)
        return self.head(x.mean(dim=(2, 3)))  # (B, 3)


def audio_metadata() -> ModelMetadata:
    return ModelMetadata(
        family="baseline", task="labeler", labels=LABELS, sample_rate=16000, window_seconds=0.5, needs_frame=False,
        inputs=[TensorSpec("audio", ("batch", "samples"), "float32")],
        outputs=[TensorSpec("logits", ("batch", len(LABELS)), "float32")])


def _export_audio_net(folder: Path, stft_impl: str):
    """(model, ONNX path, metadata) of the seeded AudioNet exported with ``stft_impl``."""
    torch.manual_seed(0)
    model = AudioNet().eval()
    report = export_onnx(model, audio_metadata(), {"audio": torch.randn(2, 8000)}, folder / "audio.onnx",
                         dynamic_axes={"audio": {0: "batch", 1: "samples"}}, stft_impl=stft_impl)
    return model, folder / "audio.onnx", report.metadata


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _export_audio_net(tmp_path_factory.mktemp("engines"), "stft")


@pytest.fixture(scope="module")
def exported_conv(tmp_path_factory):
    """The same network exported for TensorRT: its STFT as a strided convolution (--frontend conv)."""
    return _export_audio_net(tmp_path_factory.mktemp("engines-conv"), "conv")


def fixed_onnx(path, *, op="Relu", shape=(1, 400, 128)) -> None:
    """A one-node ONNX model y = op(x) with a fixed input shape (built directly, no exporter)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "fixed", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def fixed_metadata(shape=(1, 400, 128), **changes) -> ModelMetadata:
    meta = ModelMetadata(family="test", task="embedding", labels=(), sample_rate=16000, window_seconds=1.0,
                         needs_frame=False, inputs=[TensorSpec("x", shape, "float32")],
                         outputs=[TensorSpec("y", shape, "float32")])
    return meta.replace(**changes) if changes else meta


# ------------------------------------------------------------------------------------ registry


def test_registry_names_the_four_backends():
    from engines.triton_runner import TritonRunner

    assert RUNNERS.names() == ["onnxruntime", "tensorrt", "torch", "triton"]
    assert RUNNERS.get("onnxruntime").factory is OnnxRuntimeRunner
    assert RUNNERS.get("torch").factory is TorchRunner
    assert RUNNERS.get("tensorrt").factory is TensorRTRunner
    assert RUNNERS.get("triton").factory is TritonRunner
    with pytest.raises(KeyError, match="unknown runner 'tflite'; expected one of: onnxruntime, tensorrt, torch, triton"):
        open_runner("tflite", "m.tflite")


def test_importing_engines_does_not_import_tensorrt():
    assert engines.TensorRTRunner is TensorRTRunner
    if not HAS_TENSORRT:
        assert "tensorrt" not in sys.modules


# ------------------------------------------------------------------------------------ ORT vs torch


def test_onnxruntime_and_torch_runners_agree(exported):
    model, path, meta = exported
    rng = np.random.default_rng(0)
    with open_runner("onnxruntime", path, threads=2) as ort_runner, \
            open_runner("torch", model, metadata=meta, threads=2) as torch_runner:
        assert ort_runner.backend == "onnxruntime" and torch_runner.backend == "torch"
        assert ort_runner.device == torch_runner.device == "cpu"
        assert ort_runner.input_metadata() == torch_runner.input_metadata() == {
            "audio": TensorSpec("audio", ("batch", "samples"), "float32")}
        assert ort_runner.output_names == torch_runner.output_names == ("logits",)
        for shape in [(1, 8000), (3, 12345)]:
            feed = {"audio": rng.standard_normal(shape).astype(np.float32)}
            a, b = ort_runner.infer(feed), torch_runner.infer(feed)
            assert list(a) == list(b) == ["logits"]
            assert a["logits"].shape == (shape[0], len(LABELS))
            np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-4, rtol=0)
            assert ort_runner.last_inference_ms > 0 and torch_runner.last_inference_ms > 0
    assert not ort_runner.is_open and not torch_runner.is_open


def test_runner_lifecycle(exported):
    _, path, _ = exported
    runner = OnnxRuntimeRunner(path)
    assert runner.last_inference_ms is None and not runner.is_open
    with pytest.raises(RuntimeError, match="needs an open runner"):
        runner.infer({"audio": np.zeros((1, 8000), np.float32)})
    assert runner.open() is runner and runner.open() is runner  # idempotent
    assert runner.metadata is not None and runner.metadata.labels == LABELS  # read from the sidecar
    runner.close()
    runner.close()
    assert "closed" in repr(runner)


# ------------------------------------------------------------------------------------ input checks


def test_input_errors_say_received_vs_expected(tmp_path):
    path = tmp_path / "fixed.onnx"
    fixed_onnx(path)
    good = np.zeros((1, 400, 128), np.float32)
    with OnnxRuntimeRunner(path) as runner:
        assert runner.infer({"x": good})["y"].shape == (1, 400, 128)
        cases = {
            "input 'x': expected shape (1, 400, 128) float32, received (1, 399, 128) float32 (axis 1 must be 400)":
                {"x": np.zeros((1, 399, 128), np.float32)},
            "input 'x': expected shape (1, 400, 128) float32, received (1, 400, 128) float64 (dtype float32 expected)":
                {"x": good.astype(np.float64)},
            "input 'x': expected shape (1, 400, 128) float32, received (400, 128) float32 (rank 3 expected, received rank 2)":
                {"x": good[0]},
            "missing input 'x': expected shape (1, 400, 128) float32; received inputs ['y']": {"y": good},
            "unexpected input 'z': the model's inputs are 'x'": {"x": good, "z": good},
            "input 'x': expected a numpy.ndarray of shape (1, 400, 128) float32, received torch.Tensor":
                {"x": torch.zeros(1, 400, 128)},
        }
        for message, feed in cases.items():
            with pytest.raises(RunnerInputError) as info:
                runner.infer(feed)
            assert str(info.value).startswith(message), str(info.value)
            assert isinstance(info.value, ValueError)


def test_shared_dynamic_axes_must_agree():
    specs = {"a": TensorSpec("a", ("batch", 3), "float32"), "b": TensorSpec("b", ("batch", "time"), "int64")}
    check_feed({"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 7), np.int64)}, specs)
    with pytest.raises(RunnerInputError, match=r"input 'b': expected shape \('batch', 'time'\) int64, received "
                                               r"\(4, 7\) int64 \(axis 0 \('batch'\) is 4, but input 'a' axis 0"):
        check_feed({"a": np.zeros((2, 3), np.float32), "b": np.zeros((4, 7), np.int64)}, specs)
    with pytest.raises(RunnerInputError, match="expected a dict"):
        check_feed([np.zeros(3)], specs)


# ------------------------------------------------------------------------------------ outputs


class NegativeLog(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(-x)  # NaN for positive x, -inf at 0


def test_torch_nan_output_raises():
    meta = fixed_metadata(shape=(2, 3))
    x = np.array([[1, 2, 3], [-1, -2, -3]], np.float32)
    with TorchRunner(NegativeLog(), meta) as runner:
        with pytest.raises(NonFiniteOutputError) as info:
            runner.infer({"x": x})
        err = info.value
        assert (err.output, err.count, err.total) == ("y", 3, 6)
        assert "output 'y' (torch, NegativeLog): 3 of 6 values are not finite (3 NaN, 0 infinite)" in str(err)
        assert runner.infer({"x": -np.abs(x)})["y"].shape == (2, 3)
    with TorchRunner(NegativeLog(), meta, check_finite=False) as runner:
        assert np.isnan(runner.infer({"x": x})["y"]).sum() == 3


def test_onnxruntime_nan_output_raises(tmp_path):
    path = tmp_path / "log.onnx"
    fixed_onnx(path, op="Log", shape=(2, 2))
    with OnnxRuntimeRunner(path) as runner:
        with pytest.raises(NonFiniteOutputError, match=r"output 'y' \(onnxruntime, log.onnx\): 2 of 4 values are "
                                                       r"not finite \(1 NaN, 1 infinite\)"):
            runner.infer({"x": np.array([[1, -1], [0, 2]], np.float32)})


def test_check_finite_ignores_integer_outputs():
    check_finite_outputs({"i": np.array([1, 2], np.int64), "f": np.array([0.5], np.float32)})


def test_torch_runner_names_tuple_and_dict_outputs():
    class Two(nn.Module):
        def forward(self, x):
            return {"b": x * 2, "a": x + 1}

    meta = fixed_metadata(shape=(1, 2)).replace(outputs=[TensorSpec("a", (1, 2), "float32"),
                                                         TensorSpec("b", (1, 2), "float32")])
    with TorchRunner(Two(), meta) as runner:
        out = runner.infer({"x": np.ones((1, 2), np.float32)})
    assert list(out) == ["a", "b"] and out["a"][0, 0] == 2 and out["b"][0, 0] == 2
    with pytest.raises(TypeError, match="wraps a torch.nn.Module"):
        TorchRunner("model.onnx", meta)
    with pytest.raises(ValueError, match="pass metadata"):
        open_runner("torch", Two())


# ------------------------------------------------------------------------------------ devices


@pytest.mark.skipif("CUDAExecutionProvider" in ORT_PROVIDERS, reason="this onnxruntime has the CUDA execution provider")
def test_onnxruntime_cuda_without_provider_lists_providers(tmp_path):
    path = tmp_path / "fixed.onnx"
    fixed_onnx(path)
    with pytest.raises(DeviceUnavailableError) as info:
        open_runner("onnxruntime", path, device="cuda")
    message = str(info.value)
    assert "CUDAExecutionProvider" in message and "onnxruntime-gpu" in message
    assert f"available providers: {', '.join(ORT_PROVIDERS)}" in message


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here")
def test_torch_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(DeviceUnavailableError, match=r"torch.cuda.is_available\(\) is False"):
        open_runner("torch", NegativeLog(), metadata=fixed_metadata(), device="cuda")


def test_unknown_device_is_refused(tmp_path):
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, found 'tpu'"):
        OnnxRuntimeRunner(tmp_path / "m.onnx", device="tpu")


@pytest.mark.gpu
def test_onnxruntime_cuda_matches_cpu(exported):
    if "CUDAExecutionProvider" not in ORT_PROVIDERS:
        pytest.skip(f"ONNX Runtime has no CUDAExecutionProvider (providers: {ORT_PROVIDERS}); "
                    "install onnxruntime-gpu on a CUDA machine")
    _, path, _ = exported
    feed = {"audio": np.random.default_rng(1).standard_normal((2, 8000)).astype(np.float32)}
    with open_runner("onnxruntime", path, device="cuda") as gpu, open_runner("onnxruntime", path) as cpu:
        np.testing.assert_allclose(gpu.infer(feed)["logits"], cpu.infer(feed)["logits"], atol=1e-3, rtol=0)


@pytest.mark.gpu
def test_torch_cuda_matches_cpu(exported):
    if not HAS_CUDA:
        pytest.skip(f"CUDA is not available (torch {torch.__version__}, CUDA build: {torch.version.cuda})")
    model, _, meta = exported
    feed = {"audio": np.random.default_rng(2).standard_normal((2, 8000)).astype(np.float32)}
    with open_runner("torch", model, metadata=meta) as cpu:
        expected = cpu.infer(feed)["logits"]
    with open_runner("torch", model, metadata=meta, device="cuda") as gpu:
        np.testing.assert_allclose(gpu.infer(feed)["logits"], expected, atol=1e-3, rtol=0)
    model.to("cpu")


# ------------------------------------------------------------------------------------ sidecar checks


@pytest.mark.parametrize("sidecar, field", [
    (fixed_metadata(shape=(1, 400, 64)), "inputs[0].shape"),
    (fixed_metadata(shape=("batch", 400, 128)), "inputs[0].shape"),
    (fixed_metadata().replace(inputs=[TensorSpec("audio", (1, 400, 128), "float32")]), "inputs names"),
    (fixed_metadata().replace(outputs=[TensorSpec("y", (1, 400, 128), "float16")]), "outputs[0].dtype"),
])
def test_onnxruntime_sidecar_mismatch_names_the_field(tmp_path, sidecar, field):
    path = tmp_path / "fixed.onnx"
    fixed_onnx(path)
    sidecar.save(sidecar_path(path))
    with pytest.raises(MetadataMismatch) as info:
        OnnxRuntimeRunner(path).open()
    assert info.value.field == field
    assert f"mismatch in {field}" in str(info.value) and "fixed.onnx.json" in str(info.value)


def test_onnxruntime_sidecar_can_be_required(tmp_path):
    path = tmp_path / "fixed.onnx"
    fixed_onnx(path)
    with OnnxRuntimeRunner(path) as runner:  # no sidecar: the session's own specs
        assert runner.metadata is None
        assert runner.input_metadata() == {"x": TensorSpec("x", (1, 400, 128), "float32")}
    with pytest.raises(FileNotFoundError, match="has no sidecar"):
        OnnxRuntimeRunner(path, require_sidecar=True).open()


# ------------------------------------------------------------------------------------ TensorRT, here


def engine_sidecar(**info_changes) -> ModelMetadata:
    info = dict(onnx_sha256=SHA_A, tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", precision="fp16",
                engine_sha256=SHA_B, profiles={"audio": {"min": [1, 8000], "opt": [1, 8000], "max": [8, 8000]}},
                workspace_mb=1024)
    info.update(info_changes)
    return engine_metadata(audio_metadata(), EngineInfo(**info))


def test_tensorrt_missing_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    expected = "TensorRT is not installed: pip install -e '.[tensorrt]' --extra-index-url https://pypi.nvidia.com"
    assert TENSORRT_MISSING == expected
    with pytest.raises(RuntimeError) as info:
        require_tensorrt()
    assert str(info.value) == expected and isinstance(info.value.__cause__, ImportError)
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        open_runner("tensorrt", tmp_path / "m.engine", device="cuda")
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        build_engine(tmp_path / "m.onnx")
    assert build_main([str(tmp_path / "m.onnx"), "--fp16"]) == 2
    assert expected in capsys.readouterr().err


def test_tensorrt_runner_is_cuda_only():
    with pytest.raises(ValueError, match="TensorRT runs on CUDA devices only"):
        open_runner("tensorrt", "m.engine")


def test_engine_sidecar_round_trip(tmp_path):
    meta = engine_sidecar()
    meta.save(tmp_path / "m.engine.json")
    loaded = ModelMetadata.load(tmp_path / "m.engine.json")
    assert loaded == meta
    assert EngineInfo.from_metadata(loaded).profiles["audio"]["max"] == [8, 8000]
    info = check_engine_sidecar(loaded, tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3",
                                engine_sha256=SHA_B, onnx_sha256=SHA_A, precision="fp16", sample_rate=16000,
                                labels=LABELS,
                                engine_inputs=[engine_tensor_spec("audio", (-1, -1), "float32")],
                                engine_outputs=[engine_tensor_spec("logits", (-1, 3), "float32")])
    assert info.precision == "fp16"


@pytest.mark.parametrize("current, field", [
    ({"tensorrt_version": "10.7.0"}, "tensorrt_version"),
    ({"gpu_name": "Orin"}, "gpu_name"),
    ({"engine_sha256": SHA_A}, "engine_sha256"),
    ({"onnx_sha256": SHA_B}, "onnx_sha256"),
    ({"precision": "fp32"}, "precision"),
    ({"sample_rate": 48000}, "sample_rate"),
    ({"labels": ("organ", "knock", "siren")}, "labels"),
    ({"engine_inputs": [engine_tensor_spec("audio", (-1, 16000), "float32")]}, "inputs[0].shape"),
    ({"engine_inputs": [engine_tensor_spec("wave", (-1, -1), "float32")]}, "inputs names"),
    ({"engine_outputs": [engine_tensor_spec("logits", (-1, 3), "float16")]}, "outputs[0].dtype"),
])
def test_engine_sidecar_mismatch_names_the_field(current, field):
    with pytest.raises(EngineMismatchError) as info:
        check_engine_sidecar(engine_sidecar(), **current)
    assert info.value.field == field
    assert f"mismatch in {field}" in str(info.value)
    assert isinstance(info.value, MetadataMismatch)


def test_engine_sidecar_needs_the_tensorrt_section():
    with pytest.raises(ValueError, match="not a TensorRT engine sidecar"):
        check_engine_sidecar(audio_metadata())
    with pytest.raises(ValueError, match="precision"):
        engine_sidecar(precision="int4")


def test_resolve_profiles():
    inputs = [TensorSpec("audio", ("batch", "samples"), "float32"), TensorSpec("frame", ("batch", 3, 224, 224), "uint8"),
              TensorSpec("fixed", (1, 4), "float32")]
    example = {"audio": [2, 16000], "frame": [2, 3, 224, 224], "fixed": [1, 4]}
    profiles = resolve_profiles(inputs, example_shapes=example, max_batch=4)
    assert profiles == {"audio": {"min": [1, 16000], "opt": [1, 16000], "max": [4, 16000]},
                        "frame": {"min": [1, 3, 224, 224], "opt": [1, 3, 224, 224], "max": [4, 3, 224, 224]}}
    explicit = resolve_profiles(inputs, example_shapes=example, min_shapes={"audio": (1, 8000)},
                                opt_shapes={"audio": (1, 16000)}, max_shapes={"audio": (8, 32000)})
    assert explicit["audio"] == {"min": [1, 8000], "opt": [1, 16000], "max": [8, 32000]}
    with pytest.raises(ValueError, match="give its min, opt and max shapes together"):
        resolve_profiles(inputs, example_shapes=example, max_shapes={"audio": (8, 32000)})
    with pytest.raises(ValueError, match="changes fixed axis 1"):
        resolve_profiles(inputs, example_shapes=example, min_shapes={"frame": (1, 1, 224, 224)},
                         opt_shapes={"frame": (1, 3, 224, 224)}, max_shapes={"frame": (2, 3, 224, 224)})
    with pytest.raises(ValueError, match="min <= opt <= max"):
        resolve_profiles(inputs, example_shapes=example, min_shapes={"audio": (2, 8000)},
                         opt_shapes={"audio": (1, 8000)}, max_shapes={"audio": (4, 8000)})
    with pytest.raises(ValueError, match="no example shape"):
        resolve_profiles(inputs[:1])
    with pytest.raises(ValueError, match="not an input"):
        resolve_profiles(inputs, example_shapes=example, max_shapes={"wave": (1, 2)})


def test_shape_arguments_and_default_engine_path():
    assert parse_shape_arg("audio:1x16000") == ("audio", (1, 16000))
    assert parse_shape_arg("ns:x:3") == ("ns:x", (3,))
    for bad in ("audio", "audio:1x0", ":4", "audio:1xa"):
        with pytest.raises(ValueError, match="NAME:1x16000"):
            parse_shape_arg(bad)
    assert default_engine_path("runs/x/model.onnx", fp16=True).as_posix() == "runs/x/model.fp16.engine"
    assert default_engine_path("model.onnx").as_posix() == "model.fp32.engine"


# ------------------------------------------------------------------------------------ TensorRT, on a GPU


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(exported_conv, tmp_path):
    if not HAS_TENSORRT:
        pytest.skip(f"TensorRT not installed: {TENSORRT_MISSING.split(': ', 1)[1]}")
    if not HAS_CUDA:
        pytest.skip("TensorRT needs a CUDA device; torch.cuda.is_available() is False")
    _, path, _ = exported_conv
    build = build_engine(path, tmp_path / "audio.fp32.engine", max_shapes={"audio": (4, 16000)},
                         opt_shapes={"audio": (1, 8000)}, min_shapes={"audio": (1, 4000)}, progress=False,
                         log=lambda _m: None)
    assert build.sidecar.is_file() and build.info.precision == "fp32"
    feed = {"audio": np.random.default_rng(3).standard_normal((3, 9000)).astype(np.float32)}
    with open_runner("onnxruntime", path) as ort_runner:
        expected = ort_runner.infer(feed)["logits"].copy()
    with open_runner("tensorrt", build.engine_path, device="cuda", onnx_path=path, precision="fp32") as trt_runner:
        got = trt_runner.infer(feed)["logits"]
        np.testing.assert_allclose(got, expected, atol=2e-3, rtol=0)  # TF32 kernels allowed in fp32 engines
        with pytest.raises(RunnerInputError, match="optimisation profile"):
            trt_runner.infer({"audio": np.zeros((8, 9000), np.float32)})
    with pytest.raises(EngineMismatchError, match="precision"):
        open_runner("tensorrt", build.engine_path, device="cuda", precision="fp16")


# ------------------------------------------------------------------------------------ builder flow, with a stand-in


class FakeTensorRT(types.ModuleType):
    """Just enough of TensorRT 10's builder API (as documented) to run build_engine's own logic on a CPU.

    It checks nothing about TensorRT itself; the real build runs in test_tensorrt_engine_matches_onnxruntime.
    """

    def __init__(self, *, parse_errors=(), interrupt=False, dla_cores=0):
        super().__init__("tensorrt")
        self.__version__ = "10.99.0"
        self.calls = calls = []

        class Logger:
            WARNING = "warning"

            def __init__(self, severity):
                pass

        class IProgressMonitor:
            def __init__(self):
                pass

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                calls.append(("set_shape", name, list(lo), list(opt), list(hi)))

        class Cache:
            def serialize(self):
                return b"CACHE"

        class Config:
            progress_monitor = None
            int8_calibrator = None
            default_device_type = "gpu"
            DLA_core = -1

            def set_calibration_profile(self, profile):
                calls.append(("calibration_profile",))

            def set_memory_pool_limit(self, pool, size):
                calls.append(("pool", pool, size))

            def set_flag(self, flag):
                calls.append(("flag", flag))

            def add_optimization_profile(self, profile):
                calls.append(("profile",))

            def create_timing_cache(self, data):
                calls.append(("timing_cache", bytes(data)))
                return Cache()

            def set_timing_cache(self, cache, ignore_mismatch):
                return True

            def get_timing_cache(self):
                return Cache()

        class Parser:
            num_errors = len(parse_errors)

            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                calls.append(("parse", path))
                return not parse_errors

            def get_error(self, i):
                return parse_errors[i]

        class Builder:
            num_DLA_cores = dla_cores

            def __init__(self, logger):
                pass

            def create_network(self, flags):
                return object()

            def create_builder_config(self):
                self.config = Config()
                return self.config

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                self.config = config
                calibrator = config.int8_calibrator
                if calibrator is not None:  # as the builder does: a usable cache first, else batches
                    cache = calibrator.read_calibration_cache()
                    calls.append(("calibration_cache_read", cache))
                    if cache is None:
                        while calibrator.get_batch(["audio"]) is not None:
                            pass
                        calibrator.write_calibration_cache(b"SCALES")
                monitor = config.progress_monitor
                monitor.phase_start("Building engine", None, 2)
                if interrupt:
                    os.kill(os.getpid(), signal.SIGINT)
                keep_going = monitor.step_complete("Building engine", 0)
                monitor.phase_finish("Building engine")
                return b"ENGINE" if keep_going else None

        class IInt8EntropyCalibrator2:
            def __init__(self):
                pass

        self.Logger, self.IProgressMonitor, self.Builder, self.OnnxParser = Logger, IProgressMonitor, Builder, Parser
        self.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
        self.BuilderFlag = types.SimpleNamespace(FP16="fp16", INT8="int8", GPU_FALLBACK="gpu_fallback")
        self.DeviceType = types.SimpleNamespace(GPU="gpu", DLA="dla")


@pytest.fixture
def fake_gpu(monkeypatch):
    import engines.torch_runner as torch_runner_module

    monkeypatch.setattr(torch_runner_module, "require_torch_cuda", lambda what="": None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 7))


def test_build_engine_flow_with_a_stand_in(exported_conv, tmp_path, monkeypatch, fake_gpu):
    _, path, meta = exported_conv
    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    lines = []
    build = build_engine(path, tmp_path / "audio.engine", fp16=True, workspace_mb=256, max_batch=4, log=lines.append)
    assert build.engine_path.read_bytes() == b"ENGINE"
    assert (tmp_path / "audio.engine.timing-cache").read_bytes() == b"CACHE"
    assert ("pool", "workspace", 256 << 20) in fake.calls and ("flag", "fp16") in fake.calls
    assert ("set_shape", "audio", [1, 8000], [1, 8000], [4, 8000]) in fake.calls  # from the export's example shape
    assert any("Building engine" in line for line in lines)
    side = ModelMetadata.load(build.sidecar)
    info = EngineInfo.from_metadata(side)
    assert info == build.info
    assert (info.tensorrt_version, info.gpu_name, info.precision, info.workspace_mb) == ("10.99.0", "Fake GPU", "fp16", 256)
    assert info.onnx_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.engine_sha256 == hashlib.sha256(b"ENGINE").hexdigest()
    assert side.labels == meta.labels and side.inputs == meta.inputs and side.outputs == meta.outputs
    check_engine_sidecar(side, tensorrt_version="10.99.0", gpu_name="Fake GPU", engine_sha256=info.engine_sha256)
    build_engine(path, tmp_path / "audio.engine", fp16=True, log=lines.append)  # second build reads the cache
    assert ("timing_cache", b"CACHE") in fake.calls


def test_build_engine_reports_every_parser_error(exported_conv, tmp_path, monkeypatch, fake_gpu):
    _, path, _ = exported_conv
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(parse_errors=("node 3: bad op", "node 7: bad type")))
    lines = []
    with pytest.raises(RuntimeError, match=r"rejected .* with 2 error\(s\):\n  node 3: bad op\n  node 7: bad type"):
        build_engine(path, tmp_path / "bad.engine", log=lines.append)
    assert lines == ["ONNX parser error: node 3: bad op", "ONNX parser error: node 7: bad type"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_build_engine_cancels_on_ctrl_c(exported_conv, tmp_path, monkeypatch, fake_gpu):
    _, path, _ = exported_conv
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(interrupt=True))
    with pytest.raises(KeyboardInterrupt, match="cancelled; nothing written"):
        build_engine(path, tmp_path / "cancel.engine", log=lambda _m: None)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ INT8, DLA, sidecar fields


def test_calibration_batches_cut_fixed_size_batches():
    from engines.calibration import calibration_batches

    feeds = {"audio": np.arange(23 * 4, dtype=np.float64).reshape(23, 4), "frame": np.zeros((23, 3, 2, 2), np.uint8)}
    batches, dropped = calibration_batches(feeds, 8)
    assert len(batches) == 2 and dropped == 7
    assert all(b["audio"].shape == (8, 4) and b["audio"].dtype == np.float32 and b["audio"].flags.c_contiguous
               for b in batches)
    assert batches[1]["frame"].dtype == np.uint8
    np.testing.assert_array_equal(batches[1]["audio"], feeds["audio"][8:16])
    with pytest.raises(ValueError, match="fewer than one batch of 32"):
        calibration_batches(feeds, 32)
    with pytest.raises(ValueError, match="same number of rows"):
        calibration_batches({"a": np.zeros((4, 2)), "b": np.zeros((5, 2))}, 2)
    with pytest.raises(ValueError, match="expected an int >= 1"):
        calibration_batches(feeds, 0)


def test_calibration_cache_is_reused_only_for_its_request(tmp_path):
    from engines.calibration import CalibrationRequest, _write_cache, cached_calibration

    request = CalibrationRequest(SHA_A, 64, None, 8)
    cache = tmp_path / "m.int8.engine.calibration-cache"
    assert cached_calibration(cache, request) is None
    _write_cache(cache, b"SCALES", request, {"audio": (8, 8000)}, "world 'bench' validation windows", 64)
    record = cached_calibration(cache, request)
    assert record["shapes"] == {"audio": [8, 8000]} and record["count"] == 64
    for other in (CalibrationRequest(SHA_B, 64, None, 8), CalibrationRequest(SHA_A, 128, None, 8),
                  CalibrationRequest(SHA_A, 64, "ESC-50", 8), CalibrationRequest(SHA_A, 64, None, 4)):
        assert cached_calibration(cache, other) is None
    sidecar_path(cache).write_text("{not json")
    assert cached_calibration(cache, request) is None
    with pytest.raises(ValueError, match="--calib-batch 16 is larger than --calib 8"):
        CalibrationRequest(SHA_A, 8, None, 16)


def test_dla_requests_are_checked_before_building():
    from engines.build_engine import check_dla

    check_dla(None, fp16=False, int8=False)
    check_dla(1, fp16=True, int8=False, num_dla_cores=2)
    with pytest.raises(ValueError, match="DLA runs FP16 and INT8 layers only; add --fp16"):
        check_dla(0, fp16=False, int8=False)
    with pytest.raises(ValueError, match=r"has 2 DLA cores \(expected --dla 0 to 1\)"):
        check_dla(2, fp16=True, int8=False, num_dla_cores=2)
    with pytest.raises(ValueError, match="has no DLA cores .* leave --dla out"):
        check_dla(0, fp16=True, int8=False, num_dla_cores=0)
    with pytest.raises(ValueError, match="index >= 0"):
        check_dla(-1, fp16=True, int8=False)
    assert default_engine_path("runs/x/model.onnx", fp16=True, dla=0).name == "model.fp16.dla0.engine"
    assert default_engine_path("runs/x/model.onnx", int8=True).name == "model.int8.engine"


def test_build_command_parses_back_to_the_same_build():
    import shlex

    from engines.build_engine import build_command

    profiles = {"audio": {"min": [1, 8000], "opt": [1, 8000], "max": [4, 8000]}}
    command = build_command("runs/my run/model.onnx", "runs/my run/model.int8.engine", fp16=False, int8=True, dla=0,
                            workspace_mb=512, profiles=profiles, calib=128, calib_data="ESC-50", calib_batch=4)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "engines.build_engine"]
    seen = {}

    def capture(model, out, **kwargs):
        seen.update(model=model, out=out, **kwargs)
        raise KeyboardInterrupt

    import engines.build_engine as build_module

    original = build_module.build_engine
    build_module.build_engine = capture  # main()'s parsing alone: nothing is built
    try:
        assert build_main(words[3:]) == 130
    finally:
        build_module.build_engine = original
    assert seen["model"] == "runs/my run/model.onnx" and seen["out"] == "runs/my run/model.int8.engine"
    assert (seen["int8"], seen["calib"], seen["calib_data"], seen["calib_batch"], seen["dla"], seen["workspace_mb"]) == \
        (True, 128, "ESC-50", 4, 0, 512)
    assert seen["max_shapes"] == {"audio": (4, 8000)} and seen["min_shapes"] == {"audio": (1, 8000)}


def test_engine_sidecar_mismatch_names_field_values_and_rebuild_command():
    meta = engine_sidecar(compute_capability="8.7", build_command="python -m engines.build_engine runs/x/model.onnx "
                                                                  "--out runs/x/model.fp16.engine --fp16")
    for current, field, expected, found in (
            ({"gpu_name": "NVIDIA RTX 4090"}, "gpu_name", "NVIDIA RTX 4090", "NVIDIA H100 80GB HBM3"),
            ({"tensorrt_version": "10.7.0"}, "tensorrt_version", "10.7.0", "10.3.0"),
            ({"compute_capability": "8.9"}, "compute_capability", "8.9", "8.7")):
        with pytest.raises(EngineMismatchError) as info:
            check_engine_sidecar(meta, **current)
        text = str(info.value)
        assert info.value.field == field and f"expected {expected!r}, found {found!r}" in text
        assert "rebuild it here: python -m engines.build_engine runs/x/model.onnx --out runs/x/model.fp16.engine --fp16" \
            in text
    old = engine_sidecar()  # written before build_command was recorded: a generic command
    with pytest.raises(EngineMismatchError, match="rebuild it here: python -m engines.build_engine MODEL.onnx --fp16"):
        check_engine_sidecar(old, gpu_name="Orin")
    with pytest.raises(ValueError, match="compute_capability"):
        engine_sidecar(compute_capability="sm_87")
    with pytest.raises(ValueError, match="calibration"):
        engine_sidecar(precision="int8")  # an int8 engine records its calibration


def test_build_engine_int8_on_dla_with_a_stand_in(exported_conv, tmp_path, monkeypatch, fake_gpu):
    """The builder flow of --int8 --dla with a calibration cache made for this request: the flags,
    the calibrator reading the cache (no calibration inputs rendered), the calibration profile and
    the sidecar's new fields. The stand-in checks nothing of TensorRT itself."""
    from engines.calibration import CalibrationRequest, _write_cache, calibration_cache_path

    _, path, _ = exported_conv
    fake = FakeTensorRT(dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    import models.export.quantize as quantize

    def no_rendering(*args, **kwargs):
        raise AssertionError("a current calibration cache must spare reading calibration inputs")

    monkeypatch.setattr(quantize, "calibration_inputs", no_rendering)
    engine = tmp_path / "audio.int8.dla1.engine"
    cache = calibration_cache_path(engine)
    request = CalibrationRequest(hashlib.sha256(path.read_bytes()).hexdigest(), 16, None, 4)
    _write_cache(cache, b"SCALES", request, {"audio": [4, 8000]}, "world 'bench' validation single-event windows", 16)
    lines = []
    build = build_engine(path, engine, int8=True, calib=16, calib_batch=4, dla=1, log=lines.append)
    assert ("flag", "int8") in fake.calls and ("flag", "fp16") in fake.calls and ("flag", "gpu_fallback") in fake.calls
    assert ("calibration_cache_read", b"SCALES") in fake.calls and ("calibration_profile",) in fake.calls
    assert ("set_shape", "audio", [4, 8000], [4, 8000], [4, 8000]) in fake.calls  # the calibration profile
    assert ("set_shape", "audio", [1, 8000], [1, 8000], [1, 8000]) in fake.calls  # DLA: batch 1 by default
    info = EngineInfo.from_metadata(ModelMetadata.load(build.sidecar))
    assert (info.precision, info.dla_core, info.compute_capability) == ("int8", 1, "8.7")
    assert info.calibration["cache"] == cache.name and info.calibration["count"] == 16
    assert "--int8" in info.build_command and "--dla 1" in info.build_command
    with pytest.raises(ValueError, match="has 2 DLA cores"):
        build_engine(path, tmp_path / "x.engine", fp16=True, dla=2, log=lambda _m: None)
    with pytest.raises(ValueError, match="add --int8"):
        build_engine(path, tmp_path / "x.engine", calib=8, log=lambda _m: None)


def test_graphs_with_an_stft_op_are_refused_before_tensorrt(exported, exported_conv, tmp_path, monkeypatch, capsys):
    """TensorRT's ONNX parser has no STFT: such a graph is refused in one line naming --frontend conv,
    before TensorRT is even imported; the conv export passes that check."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # so reaching the import would say "not installed"
    _, path, _ = exported
    with pytest.raises(ValueError, match=r"ONNX's STFT op, .* --frontend conv"):
        build_engine(path, tmp_path / "x.engine")
    assert build_main([str(path), "--fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frontend conv" in err[0]
    _, conv, _ = exported_conv
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):  # past the check, at the import
        build_engine(conv, tmp_path / "x.engine")
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        build_engine(path, tmp_path / "x.engine", allow_stft=True)
