"""The TensorRT-friendly front end: the STFT as a strided Conv1d with the windowed DFT basis.

Tolerances come from measurements (2026-12-07, torch 2.13 CPU, 1 s of audio, three of avlive's
front-end configurations: the demo Slow-Fast one, L3's, EPIC-SOUNDS'):

* float64: ``conv`` and ``stft`` agree to 5e-15 .. 3e-9 (log units): the formulation is exact;
  the test allows 1e-7.
* float32, broadband noise: max |conv - stft| 1.9e-6, 3.4e-5, 3.1e-6 (EfficientAT's own LogMel:
  6.3e-5, its features being ~1), inside the export tolerance (``DEFAULT_ATOL + DEFAULT_RTOL ·
  |value|`` = 1e-4 + 1e-4·|v|), which the test uses.
* float32, low-passed scene audio (bands near float32's noise floor): |stft32 - float64| reaches
  0.024, 1.24 and 9.7e-6; |conv32 - float64| is 7.2e-3, 0.19 and 3.4e-6, i.e. the convolution
  lands closer to the exact features than the FFT does (ratio 0.16 .. 0.34; on noise 1.0 .. 3.3).
  The test bounds |conv32 - float64| by ``ORT_STFT_ERROR_RATIO`` (4.5, the bound the export
  allows ONNX Runtime's float32 STFT) times |stft32 - float64| plus the export's atol, and so
  |conv32 - stft32| by ``atol + (1 + 4.5)·spread``, the rule of the export's low-passed check.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from models.audio.frontend import FrontEnd, FrontEndConfig, dft_basis, stft_impl_override
from models.core.metadata import ModelMetadata, TensorSpec
from models.export.onnx import (DEFAULT_ATOL, DEFAULT_RTOL, ORT_STFT_ERROR_RATIO, ExportError, export_onnx,
                                lowpassed_scene_audio)

CONFIGS = {
    "slowfast-demo": FrontEndConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, power=1.0,
                                    n_mels=64, mel_scale="htk", mel_norm=None),
    "l3": FrontEndConfig(sample_rate=48000, n_fft=2048, win_length=2048, hop_length=242, center=False,
                         window_frames=True, power=1.0, n_mels=256, mel_scale="htk", mel_norm=None),
    "epic-sounds": FrontEndConfig(sample_rate=24000, n_fft=2048, win_length=1200, hop_length=240, power=2.0,
                                  n_mels=128),
}


def both(fe: FrontEnd, wave: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {}
    with torch.no_grad():
        for impl in ("stft", "conv"):
            fe.stft_impl = impl
            out[impl + "32"] = fe(wave.float()).double()
            out[impl + "64"] = fe(wave.double())
    fe.stft_impl = "stft"
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_conv_front_end_equals_the_stft_one(name):
    cfg = CONFIGS[name]
    fe = FrontEnd(cfg)
    n = cfg.sample_rate  # 1 s
    noise = both(fe, torch.randn(2, n, generator=torch.Generator().manual_seed(1)))
    assert noise["conv64"].shape == noise["stft64"].shape == (2, cfg.num_frames(n), cfg.output_bins)
    assert float((noise["conv64"] - noise["stft64"]).abs().max()) < 1e-7
    bound = DEFAULT_ATOL + DEFAULT_RTOL * noise["stft32"].abs()
    assert bool(((noise["conv32"] - noise["stft32"]).abs() <= bound).all())

    scene = both(fe, torch.from_numpy(np.asarray(lowpassed_scene_audio(cfg.sample_rate, n, 2), dtype=np.float32)))
    assert float((scene["conv64"] - scene["stft64"]).abs().max()) < 1e-7
    spread = float((scene["stft32"] - scene["stft64"]).abs().max())
    conv_error = float((scene["conv32"] - scene["stft64"]).abs().max())
    assert conv_error <= DEFAULT_ATOL + ORT_STFT_ERROR_RATIO * spread
    assert float((scene["conv32"] - scene["stft32"]).abs().max()) <= DEFAULT_ATOL + (1 + ORT_STFT_ERROR_RATIO) * spread


def test_dft_basis_rows_are_the_windowed_dft():
    basis = dft_basis(6, 8)
    assert basis.shape == (10, 1, 8)
    x = np.random.default_rng(0).standard_normal(8)
    window = np.zeros(8)
    window[1:7] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(6) / 6)
    spectrum = np.fft.rfft(x * window)
    # measured: 5.6e-17 (real) and 8.3e-17 (imaginary), float64 rounding of an 8-term sum
    np.testing.assert_allclose(basis[:5, 0] @ x, spectrum.real, atol=1e-15)
    np.testing.assert_allclose(basis[5:, 0] @ x, spectrum.imag, atol=1e-15)


def test_stft_impl_is_checked_and_restored():
    fe = FrontEnd(CONFIGS["slowfast-demo"])
    assert fe.stft_impl == "stft" and fe.basis is None  # the kernels are built on first use only
    with pytest.raises(ValueError, match="expected 'stft' or 'conv', found 'fft'"):
        fe.stft_impl = "fft"
    model = nn.Sequential(fe)
    with stft_impl_override(model, "conv") as found:
        assert found == [fe] and fe.stft_impl == "conv" and fe.basis.shape == (514, 1, 512)
    assert fe.stft_impl == "stft"
    assert fe.basis64.dtype == torch.float64
    fe.float()  # the float64 kernels stay float64, as the other float64 buffers do
    assert fe.basis64.dtype == torch.float64


class Net(nn.Module):
    """Waveform (B, N) -> log-mel (B, T, 64) -> conv -> mean -> logits (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = FrontEnd(CONFIGS["slowfast-demo"])
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(self.frontend(audio).unsqueeze(1))).mean(dim=(2, 3)))


def test_export_with_the_conv_front_end_has_no_stft_op(tmp_path):
    torch.manual_seed(0)
    model = Net().eval()
    meta = ModelMetadata(family="test", task="labeler", labels=("a", "b", "c"), sample_rate=16000, window_seconds=0.5,
                         needs_frame=False, inputs=[TensorSpec("audio", ("batch", "samples"), "float32")],
                         outputs=[TensorSpec("logits", ("batch", 3), "float32")])
    report = export_onnx(model, meta, {"audio": torch.randn(2, 8000)}, tmp_path / "conv.onnx",
                         dynamic_axes={"audio": {0: "batch", 1: "samples"}}, stft_impl="conv")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "conv.onnx")).graph.node}
    assert "STFT" not in ops and "DFT" not in ops and "Conv" in ops
    assert report.metadata.extra["onnx_export"]["stft_impl"] == "conv"
    assert model.frontend.stft_impl == "stft"  # restored after the export
    wave = torch.randn(3, 8000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(wave).numpy()  # the STFT formulation, in PyTorch
    got = ort.InferenceSession(str(tmp_path / "conv.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"audio": wave.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=DEFAULT_ATOL, rtol=DEFAULT_RTOL)
    with pytest.raises(ExportError, match="holds no front end with an STFT"):
        export_onnx(nn.Linear(4, 3), meta.replace(inputs=[TensorSpec("audio", ("batch", 4), "float32")]),
                    {"audio": torch.randn(2, 4)}, tmp_path / "x.onnx", stft_impl="conv")


def test_efficientat_front_end_has_the_conv_formulation_too():
    """EfficientAT's own LogMel (reflect padding, symmetric window, Kaldi banks): the same switch,
    with the same measured bounds (float64 exact; float32 within the export tolerance on noise)."""
    from models.efficientat.frontend import LogMel

    fe = LogMel()
    wave = torch.randn(2, 32000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = {}
        for impl in ("stft", "conv"):
            fe.stft_impl = impl
            out[impl + "32"], out[impl + "64"] = fe(wave).double(), fe(wave.double())
    assert float((out["conv64"] - out["stft64"]).abs().max()) < 1e-7
    assert bool(((out["conv32"] - out["stft32"]).abs() <= DEFAULT_ATOL + DEFAULT_RTOL * out["stft32"].abs()).all())
    with stft_impl_override(nn.Sequential(fe), "stft") as found:
        assert found == [fe] and fe.stft_impl == "stft"
    assert fe.stft_impl == "conv"  # restored to what it was
