"""FrontEnd against librosa (float64 and float32), its filterbank, frame counts, ONNX export
and config validation. librosa is the reference and is only imported here."""
from __future__ import annotations

import dataclasses
import json

import librosa
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.audio.frontend import FrontEnd, FrontEndConfig, hann_window, mel_filterbank, stft_dtype_override
from models.core.metadata import ModelMetadata, TensorSpec
from models.export.onnx import lowpassed_scene_audio


# The models' feature definitions, plus coverage cases.
CONFIGS = {
    # Slow-Fast auditory streams on EPIC-Kitchens: 10 ms Hann / 5 ms hop at 24 kHz.
    "slowfast_epic": FrontEndConfig(
        sample_rate=24000, n_fft=2048, win_length=240, hop_length=120, center=True, power=1.0,
        n_mels=128, fmin=0.0, fmax=12000.0, mel_scale="htk", mel_norm=None, log_offset=1e-6,
    ),
    # Slow-Fast on VGG-Sound: 20 ms / 10 ms at 16 kHz. fmax=None is sr/2 = 8 kHz (what
    # librosa's default gives; 12 kHz is above Nyquist here and the config rejects it).
    "slowfast_vgg": FrontEndConfig(
        sample_rate=16000, n_fft=2048, win_length=320, hop_length=160, center=True, power=1.0,
        n_mels=128, fmin=0.0, fmax=None, mel_scale="htk", mel_norm=None, log_offset=1e-6,
    ),
    # L3-Net: linear log spectrogram, 10 ms / 5 ms at 48 kHz, 512-point FFT, no centring;
    # frames span the 480-sample window (window_frames) to give L3's 199 frames per second.
    # log_offset 1e-6 as for the mels (L3 only says "log"; the offset keeps silence finite).
    "l3_linear": FrontEndConfig(
        sample_rate=48000, n_fft=512, win_length=480, hop_length=240, center=False,
        window_frames=True, power=1.0, n_mels=None, log_offset=1e-6,
    ),
    # The same without window_frames: librosa.stft(center=False) framing (198 frames/s).
    "linear_librosa_frames": FrontEndConfig(
        sample_rate=48000, n_fft=512, win_length=480, hop_length=240, center=False,
        power=1.0, n_mels=None, log_offset=1e-6,
    ),
    # Slaney scale and norm, power spectrum, fmin > 0, win_length == n_fft.
    "slaney_power": FrontEndConfig(
        sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, center=True, power=2.0,
        n_mels=64, fmin=50.0, fmax=8000.0, mel_scale="slaney", mel_norm="slaney", log_offset=1e-10,
    ),
}


def signals(sr: int) -> dict[str, np.ndarray]:
    """About 1 s float64 test signals at ``sr``."""
    t = np.arange(sr) / sr
    f0, f1 = 50.0, 0.45 * sr  # linear chirp sweeping most of the band
    return {
        "tone": 0.5 * np.sin(2 * np.pi * 1000.0 * t),
        "chirp": 0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) * t**2)),
        "noise": 0.1 * np.random.default_rng(1234).standard_normal(sr),
        "silence": np.zeros(sr),
    }


def signals_and_scene(sr: int) -> dict[str, np.ndarray]:
    """:func:`signals` plus 1 s of the world scene low-passed at 5 kHz (bands near float32's floor)."""
    return {**signals(sr), "scene_lp5k": lowpassed_scene_audio(sr, sr)[0].astype(np.float64)}


def librosa_features(cfg: FrontEndConfig, x: np.ndarray, log: bool = True) -> np.ndarray:
    """The reference, (T, F) float64: librosa STFT, filterbank, natural log."""
    x = np.asarray(x, dtype=np.float64)
    if cfg.window_frames:  # L3 framing == librosa on the signal padded by the window's offset
        x = np.pad(x, cfg.padding)
    s = np.abs(librosa.stft(
        x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window="hann",
        center=cfg.center, pad_mode="constant",
    )) ** cfg.power
    if cfg.n_mels:
        s = librosa.filters.mel(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
            htk=cfg.mel_scale == "htk", norm=cfg.mel_norm, dtype=np.float64,
        ) @ s
    return (np.log(s + cfg.log_offset) if log else s).T


def run(fe: FrontEnd, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return fe(torch.from_numpy(x)[None])[0].numpy()


@pytest.mark.parametrize("name", CONFIGS)
def test_float64_matches_librosa(name):
    cfg = CONFIGS[name]
    fe = FrontEnd(cfg)
    for sig_name, x in signals(cfg.sample_rate).items():
        ref = librosa_features(cfg, x)
        out = run(fe, x)
        assert out.dtype == np.float64
        assert out.shape == ref.shape == (cfg.num_frames(len(x)), cfg.output_bins), sig_name
        err = np.abs(out - ref).max()
        assert err <= 1e-6, f"{name}/{sig_name}: max |diff| {err:.3g}"


@pytest.mark.parametrize("name", CONFIGS)
def test_float32_matches_librosa_where_it_matters(name):
    cfg = CONFIGS[name]
    fe = FrontEnd(cfg)
    for sig_name, x in signals(cfg.sample_rate).items():
        x32 = x.astype(np.float32)
        lin = librosa_features(cfg, x32, log=False)
        ref = np.log(lin + cfg.log_offset)
        out = run(fe, x32)
        assert out.dtype == np.float32 and out.shape == ref.shape
        mask = lin >= 1e-3 * lin.max()  # all of digital silence (max 0)
        assert mask.any()
        err = np.abs(out[mask] - ref[mask]).max()
        assert err <= 1e-4, f"{name}/{sig_name}: max |diff| {err:.3g} on {mask.mean():.0%} of entries"


def test_linear_output_without_log():
    cfg = FrontEndConfig.from_dict({**CONFIGS["slowfast_epic"].to_dict(), "log": False})
    x = signals(cfg.sample_rate)["chirp"]
    ref = librosa_features(cfg, x, log=False)
    np.testing.assert_allclose(run(FrontEnd(cfg), x), ref, rtol=1e-9, atol=1e-12)


def test_l3_shape():
    fe = FrontEnd(CONFIGS["l3_linear"])
    out = fe(torch.zeros(2, 48000))
    assert tuple(out.shape) == (2, 199, 257)
    assert fe.num_frames(48000) == 199 and fe.output_bins == 257
    # librosa's own center=False framing fits one frame fewer
    assert FrontEnd(CONFIGS["linear_librosa_frames"]).num_frames(48000) == 198


@pytest.mark.parametrize("name", CONFIGS)
def test_num_frames_is_exact(name):
    cfg = CONFIGS[name]
    fe = FrontEnd(cfg)
    smallest = 1 if cfg.center else (cfg.win_length if cfg.window_frames else cfg.n_fft)
    assert cfg.num_frames(smallest - 1) == 0
    with pytest.raises((ValueError, RuntimeError)):  # torch.stft's own error when too short
        fe(torch.zeros(1, smallest - 1))
    for n in (smallest, smallest + 1, smallest + cfg.hop_length - 1, smallest + cfg.hop_length, 12345):
        assert fe(torch.zeros(1, n)).shape == (1, fe.num_frames(n), fe.output_bins), n


@pytest.mark.parametrize("scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [(24000, 2048, 128, 0.0, 12000.0), (16000, 512, 40, 125.0, 7500.0), (44100, 4096, 96, 20.0, None)],
)
def test_filterbank_matches_librosa(scale, norm, sr, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, scale, norm)
    ref = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=scale == "htk", norm=norm, dtype=np.float64
    )
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)
    assert (ours.max(axis=1) > 0).all()  # no empty band in these settings


@pytest.mark.parametrize("win_length", [240, 241, 2048])
def test_window_matches_librosa(win_length):
    ref = librosa.util.pad_center(librosa.filters.get_window("hann", win_length, fftbins=True), size=2048)
    np.testing.assert_allclose(hann_window(win_length, 2048), ref, rtol=0, atol=1e-15)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export internals (treespec)
def test_onnx_export_dynamic_batch_and_length(tmp_path):
    cfg = CONFIGS["slowfast_epic"]
    fe = FrontEnd(cfg).eval()
    path = tmp_path / "frontend.onnx"
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=2, max=10 * cfg.sample_rate)
    torch.onnx.export(
        fe, (torch.zeros(2, cfg.sample_rate),), str(path), dynamo=True, opset_version=18,
        input_names=["wave"], output_names=["features"],
        dynamic_shapes={"wave": {0: batch, 1: samples}},
    )
    model = onnx.load(str(path))
    float64 = onnx.TensorProto.DOUBLE
    assert all(init.data_type != float64 for init in model.graph.initializer), "float64 weights in the graph"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for b, n in ((1, 24000), (3, 30001)):
        t = np.arange(n) / cfg.sample_rate
        x = (0.05 * rng.standard_normal((b, n)) + 0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        (onnx_out,) = session.run(None, {"wave": x})
        with torch.no_grad():
            torch_out = fe(torch.from_numpy(x)).numpy()
        assert onnx_out.shape == torch_out.shape == (b, cfg.num_frames(n), 128)
        err = np.abs(onnx_out - torch_out).max()
        assert err <= 1e-4, f"batch {b}, {n} samples: max |diff| {err:.3g}"


def test_buffers_are_not_in_state_dict():
    fe = FrontEnd(CONFIGS["slowfast_epic"])
    assert fe.state_dict() == {}
    assert fe.window.shape == fe.window64.shape == (2048,)
    assert fe.filterbank.shape == fe.filterbank64.shape == (128, 1025)
    assert fe.filterbank.dtype == torch.float32 and fe.filterbank64.dtype == torch.float64
    assert FrontEnd(CONFIGS["l3_linear"]).filterbank is None


def test_config_dict_round_trip():
    for cfg in CONFIGS.values():
        d = cfg.to_dict()
        assert json.loads(json.dumps(d)) == d
        assert FrontEndConfig.from_dict(json.loads(json.dumps(d))) == cfg
    # canonical types: ints where floats are meant, 0 mels meaning none
    cfg = FrontEndConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, power=2, fmin=0, n_mels=0)
    assert cfg.power == 2.0 and isinstance(cfg.power, float) and cfg.n_mels is None and cfg.output_bins == 257
    with pytest.raises(ValueError, match="unknown"):
        FrontEndConfig.from_dict({**cfg.to_dict(), "n_mfcc": 13})
    with pytest.raises(ValueError, match="hop_length"):
        FrontEndConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "hop_length"})


BASE = dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160)


@pytest.mark.parametrize(
    "field,value",
    [
        ("sample_rate", 0),
        ("sample_rate", 16000.0),
        ("n_fft", -1),
        ("win_length", 513),
        ("hop_length", 0),
        ("center", "yes"),
        ("window_frames", True),  # with center=True
        ("power", 3.0),
        ("n_mels", -4),
        ("n_mels", 64.0),
        ("fmin", -1.0),
        ("fmax", 9000.0),
        ("fmax", 0.0),
        ("mel_scale", "mfcc"),
        ("mel_norm", 1.0),
        ("log", 1),
        ("log_offset", 0.0),
        ("log_offset", float("nan")),
        ("stft_dtype", "float16"),
        ("stft_dtype", torch.float64),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"FrontEndConfig\.{field}: expected .* found"):
        FrontEndConfig(**{**BASE, field: value})


def test_bad_input():
    fe = FrontEnd(FrontEndConfig(**BASE))
    with pytest.raises(ValueError, match="batch, samples"):
        fe(torch.zeros(16000))
    with pytest.raises(ValueError, match="float32 or float64"):
        fe(torch.zeros(1, 16000, dtype=torch.int16))


# ------------------------------------------------------------------------ stft_dtype="float64"

# With stft_dtype="float64" the features are exact up to the float64 path's own error, then
# rounded to the input's float32: |out - librosa| <= half a float32 ulp of the value + that
# error. The float64 path's largest |error| vs librosa, measured over CONFIGS x
# signals_and_scene() with float64 output: PyTorch 9.1e-9, ONNX Runtime 9.8e-9 (both
# l3_linear on the chirp: log of bins near 1e-6 magnitude); torch 2.13, onnxruntime 1.32.
FLOAT64_PATH_ERROR = 1e-8


def half_float32_ulp(ref: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64) / 2


def assert_float32_rounding_of(out: np.ndarray, ref: np.ndarray, where: str) -> None:
    assert out.dtype == np.float32 and out.shape == ref.shape, where
    excess = np.abs(out.astype(np.float64) - ref) - half_float32_ulp(ref)
    assert excess.max() <= FLOAT64_PATH_ERROR, (
        f"{where}: max |diff| {np.abs(out - ref).max():.3g}, {excess.max():.3g} beyond float32 rounding")


@pytest.mark.parametrize("name", CONFIGS)
def test_stft_dtype_float64_matches_librosa_up_to_float32_rounding(name):
    cfg = dataclasses.replace(CONFIGS[name], stft_dtype="float64")
    fe = FrontEnd(cfg)
    for sig_name, x in signals_and_scene(cfg.sample_rate).items():
        x32 = x.astype(np.float32)  # the model's input; librosa reads the same samples in float64
        assert_float32_rounding_of(run(fe, x32), librosa_features(cfg, x32), f"{name}/{sig_name}")
        out64 = run(fe, x32.astype(np.float64))  # float64 in, float64 out: the float64 path alone
        err = np.abs(out64 - librosa_features(cfg, x32)).max()
        assert out64.dtype == np.float64 and err <= FLOAT64_PATH_ERROR, f"{name}/{sig_name}: {err:.3g}"


def test_float32_default_misses_librosa_where_float64_does_not():
    """The reason for the option: low-passed audio puts bands near float32's noise floor."""
    cfg = CONFIGS["slowfast_epic"]
    x32 = signals_and_scene(cfg.sample_rate)["scene_lp5k"].astype(np.float32)
    ref = librosa_features(cfg, x32)
    err32 = np.abs(run(FrontEnd(cfg), x32) - ref).max()
    err64 = np.abs(run(FrontEnd(dataclasses.replace(cfg, stft_dtype="float64")), x32) - ref).max()
    assert err32 > 1e-2 and err64 < 1e-6, (err32, err64)  # measured: 0.098 and 4.8e-7


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export internals (treespec)
@pytest.mark.parametrize("name", CONFIGS)
def test_stft_dtype_float64_in_onnxruntime_matches_librosa(name, tmp_path):
    import onnx
    import onnxruntime as ort

    cfg = dataclasses.replace(CONFIGS[name], stft_dtype="float64")
    fe = FrontEnd(cfg).eval()
    path = tmp_path / f"{name}.onnx"
    samples = torch.export.Dim("samples", min=cfg.n_fft, max=10 * cfg.sample_rate)
    torch.onnx.export(fe, (torch.zeros(1, cfg.sample_rate),), str(path), dynamo=True, opset_version=18,
                      input_names=["wave"], output_names=["features"],
                      dynamic_shapes={"wave": {0: torch.export.Dim("batch"), 1: samples}})
    model = onnx.load(str(path))
    assert any(i.data_type == onnx.TensorProto.DOUBLE for i in model.graph.initializer)  # exact window, filterbank
    assert {"STFT", "Cast"} <= {n.op_type for n in model.graph.node}  # ONNX's STFT op, no float64 Conv
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"
    sigs = signals_and_scene(cfg.sample_rate)
    batch = np.stack([x.astype(np.float32) for x in sigs.values()])  # (5, sr): batch and length as exported
    (out,) = session.run(None, {"wave": batch})
    for row, (sig_name, x32) in zip(out, zip(sigs, batch)):
        assert_float32_rounding_of(row, librosa_features(cfg, x32), f"ONNX Runtime {name}/{sig_name}")


def test_default_stft_dtype_is_float32_and_travels_in_metadata():
    from models.l3.network import l3_frontend_config
    from models.slowfast.network import EPIC_FRONTEND, VGGSOUND_FRONTEND
    from models.slowfast.lite import LITE_FRONTEND
    from models.world.difficulty import BENCH_LOGMEL

    for cfg in (EPIC_FRONTEND, VGGSOUND_FRONTEND, LITE_FRONTEND, BENCH_LOGMEL, l3_frontend_config(), *CONFIGS.values()):
        assert cfg.stft_dtype == "float32" and cfg.to_dict()["stft_dtype"] == "float32"
    fe = FrontEnd(CONFIGS["slowfast_epic"])
    assert fe(torch.zeros(1, 2400)).dtype == torch.float32
    for dtype in ("float32", "float64"):
        cfg = dataclasses.replace(CONFIGS["slowfast_epic"], stft_dtype=dtype)
        meta = ModelMetadata(family="slowfast", task="embedding", labels=(), sample_rate=24000, window_seconds=1.0,
                             needs_frame=False, frontend=cfg.to_dict(),
                             inputs=[TensorSpec("audio", ("batch", 24000), "float32")],
                             outputs=[TensorSpec("features", ("batch", 201, 128), "float32")])
        loaded = ModelMetadata.from_dict(json.loads(json.dumps(meta.to_dict())))
        assert loaded.frontend["stft_dtype"] == dtype and FrontEndConfig.from_dict(loaded.frontend) == cfg


def test_old_metadata_without_stft_dtype_loads_as_float32(tmp_path):
    cfg = CONFIGS["l3_linear"]
    old = {k: v for k, v in cfg.to_dict().items() if k != "stft_dtype"}  # what sidecars held before the option
    meta = ModelMetadata(family="l3", task="localizer", labels=("source",), sample_rate=48000, window_seconds=1.0,
                         needs_frame=True, frontend=old, inputs=[TensorSpec("audio", ("batch", 48000), "float32")],
                         outputs=[TensorSpec("cell_probs", ("batch", 8, 8), "float32")])
    meta.save(tmp_path / "model.onnx.json")
    loaded = FrontEndConfig.from_dict(ModelMetadata.load(tmp_path / "model.onnx.json").frontend)
    assert loaded.stft_dtype == "float32" and loaded == cfg


def test_float64_buffers_stay_exact_through_float_and_half():
    cfg = dataclasses.replace(CONFIGS["slowfast_epic"], stft_dtype="float64")
    parent = torch.nn.Sequential(FrontEnd(cfg))
    fe = parent[0]
    x = torch.from_numpy(signals_and_scene(cfg.sample_rate)["scene_lp5k"].astype(np.float32))[None]
    before = fe(x)
    parent.float()
    assert fe.window64.dtype == fe.filterbank64.dtype == fe.offset64.dtype == torch.float64
    assert torch.equal(fe(x), before)
    parent.half()
    assert fe.window.dtype == torch.float16  # the float32 copies follow, as any buffer would
    assert fe.window64.dtype == torch.float64 and torch.equal(fe.window64, torch.from_numpy(hann_window(240, 2048)))
    assert torch.equal(fe(x), before)
    parent.to("cpu", torch.float64)
    assert torch.equal(fe(x), before)


def test_stft_dtype_override_switches_and_restores():
    model = torch.nn.Sequential(FrontEnd(CONFIGS["slowfast_vgg"]), torch.nn.Identity())
    with stft_dtype_override(model, "float64") as front_ends:
        assert [fe.config.stft_dtype for fe in front_ends] == ["float64"]
    assert model[0].config == CONFIGS["slowfast_vgg"]
    with pytest.raises(RuntimeError, match="inside"):
        with stft_dtype_override(model, "float64"):
            raise RuntimeError("inside")
    assert model[0].config.stft_dtype == "float32"
    with pytest.raises(ValueError, match="stft_dtype_override: expected"):
        with stft_dtype_override(model, "double"):
            pass


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_precision_app_prints_the_table(capsys, tmp_path):
    from apps.frontend_precision import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "librosa" in capsys.readouterr().out
    assert main(["--frontends", "baseline", "--seconds", "1", "--json", str(tmp_path / "rows.json")]) == 0
    printed = capsys.readouterr().out
    assert "| baseline | noise |" in printed and "| baseline | scene-lp5k |" in printed
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["signal"] for r in rows] == ["noise", "scene-lp5k"]
    assert rows[1]["energy_above_5khz_db"] < -20  # measured -25 dB: little energy above 5 kHz
    for r in rows:
        assert max(r["torch_float64"], r["onnx_float64"]) < 1e-6 < min(r["torch_float32"], r["onnx_float32"])
