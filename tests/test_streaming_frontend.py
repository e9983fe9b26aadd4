"""The streaming front end (only each hop's new frames) and features-in exports that run on it."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engines import open_runner
from models.audio.frontend import FrontEnd, FrontEndConfig
from models.audio.streaming import StreamingFrontEnd, StreamingLabeler
from models.core.family import ExportableModel
from models.core.live import FunctionLabeler, WindowSpec
from models.core.metadata import ModelMetadata, TensorSpec
from models.export.cli import export_any
from models.export.frontend_outside import features_in
from models.families import live_adapter
from models.slowfast.network import EPIC_CLIP, EPIC_FRONTEND, VGGSOUND_FRONTEND
from models.world import Scene, get_preset
from realtime.rings import AudioRing
from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig
from test_slowfast_checkpoint import write_reference_pyth

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "epic": EPIC_FRONTEND,  # centre padding, a 240-sample window in a 2048-point FFT
    "vggsound": VGGSOUND_FRONTEND,
    "l3-like": FrontEndConfig(sample_rate=48000, n_fft=512, win_length=512, hop_length=242, center=False,
                              window_frames=True, power=2.0, n_mels=None, log=True, log_offset=1e-10),
    "linear-magnitude": FrontEndConfig(sample_rate=16000, n_fft=400, win_length=400, hop_length=160, center=True,
                                       n_mels=None, log=False),
}


def world_audio(rate: int, seconds: float, seed: int = 200000) -> np.ndarray:
    return Scene(get_preset("bench"), seed).render_audio(0, int(rate * seconds), rate)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_window_equals_the_whole_window_front_end(name):
    """Windows moved on by whole frames reuse frames, others are computed whole; every window's
    features equal FrontEnd's in float64 (rounded to float32: measured max |Δ| 0 on these four
    configurations; the bound leaves a float32 ulp at |x| ~ 8 for BLAS row blocking)."""
    config = CONFIGS[name]
    n = int(1.5 * config.sample_rate)
    reference = FrontEnd(dataclasses.replace(config, stft_dtype="float64"))
    stream = world_audio(config.sample_rate, 12.0)
    front = StreamingFrontEnd(config, n)
    hop = config.hop_length
    ends = [n, n + 25 * hop, n + 50 * hop, n + 50 * hop, n + 50 * hop + 7, n + 80 * hop + 7, n + 80 * hop + 7 + hop]
    for end in ends:
        window = stream[end - n:end]
        got = front(window).copy()
        want = reference(torch.from_numpy(window.astype(np.float64))[None])[0].numpy().astype(np.float32)
        assert got.shape == want.shape == (config.num_frames(n), config.output_bins)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert front.calls == len(ends)
    assert front.recomputed == 2  # the first window and the one moved by 7 samples
    assert front.frames_reused > 0
    # a window whose past changed (a gap, a restarted stream) is never reused across
    changed = stream[ends[-1] - n:ends[-1]].copy()
    changed[:100] += 0.01
    before = front.recomputed
    front(changed)
    assert front.recomputed == before + 1


def test_a_hop_computes_only_its_new_frames_and_the_edges():
    front = StreamingFrontEnd(EPIC_FRONTEND, EPIC_CLIP.clip_samples)
    stream = world_audio(24000, 6.0)
    n, hop = EPIC_CLIP.clip_samples, 6000  # a 0.25 s hop at 24 kHz: 50 frames of 120 samples
    front(stream[:n])
    computed = front.frames_computed
    front(stream[hop:hop + n])
    assert front.frames_computed - computed == 50 + 2  # 50 new frames, one edge frame at each end
    assert front.frames == 400


class NoFrontEnd(nn.Module):
    def forward(self, audio):
        return audio.mean(dim=1, keepdim=True)


def test_a_model_without_a_separable_front_end_is_refused():
    meta = ModelMetadata(family="demo", task="labeler", labels=("a",), sample_rate=16000, window_seconds=1.0,
                         needs_frame=False,
                         inputs=(TensorSpec("audio", ("batch", 16000), "float32"),),
                         outputs=(TensorSpec("probs", ("batch", 1), "float32"),))
    model = ExportableModel(NoFrontEnd(), {"audio": torch.zeros(2, 16000)}, {"audio": {0: "batch"}}, meta)
    with pytest.raises(ValueError, match="keeps its front end inside; expected a wrapper with a FrontEnd"):
        features_in(model)


def test_window_align_is_validated():
    with pytest.raises(ValueError, match="WindowSpec.align: expected an int >= 1"):
        WindowSpec(1.0, 16000, align=0)


@pytest.fixture(scope="module")
def epic_exports(tmp_path_factory):
    """A tiny released-layout EPIC-SOUNDS .pyth exported waveform-in and features-in."""
    pyth = tmp_path_factory.mktemp("fo") / "SLOWFAST_EPIC_SOUNDS_tiny.pyth"
    write_reference_pyth(pyth, heads=(44,), width=8, blocks=(1, 1, 1, 1))
    wave, _ = export_any(pyth)
    feats, diffs = export_any(pyth, frontend_outside=True)
    return wave, feats, diffs


def test_features_in_export_runs_live_equal_to_the_waveform_export(epic_exports):
    """Measured over these 12 hops: max |Δ| of the probabilities 7.5e-9 (ONNX Runtime's float32
    in-graph STFT against the float64 streaming front end, through a random tiny network)."""
    wave_path, feats_path, diffs = epic_exports
    assert feats_path.name == "SLOWFAST_EPIC_SOUNDS_tiny.logmel.onnx"
    meta = ModelMetadata.load(f"{feats_path}.json")
    assert meta.inputs[0].name == "logmel" and tuple(meta.inputs[0].shape) == ("batch", 400, 128)
    assert meta.extra["frontend_outside"] is True and meta.frontend == EPIC_FRONTEND.to_dict()
    assert diffs["random"]["probs"] < 1e-6
    with open_runner("onnxruntime", wave_path, threads=1) as rw, open_runner("onnxruntime", feats_path, threads=1) as rf:
        wave_meta = ModelMetadata.load(f"{wave_path}.json")
        by_wave = live_adapter(wave_meta)(rw, wave_meta)
        by_feats = live_adapter(meta)(rf, meta)
        assert isinstance(by_wave, FunctionLabeler) and isinstance(by_feats, StreamingLabeler)
        assert by_feats.window.align == 120 and by_feats.window.samples == by_wave.window.samples
        audio = world_audio(24000, 8.0)
        n = by_feats.window.samples
        for k in range(12):
            x = audio[6000 * k: 6000 * k + n]
            np.testing.assert_allclose(by_feats(x), by_wave(x), rtol=0, atol=1e-6)
        assert by_feats.frontend.recomputed == 1 and by_feats.frontend.frames_reused == 11 * 348


def test_the_scheduler_aligns_a_streaming_labelers_windows_on_its_frame_grid(epic_exports):
    """48 kHz capture in uneven blocks, resampled to 24 kHz: every window ends on a multiple of
    120 samples, so consecutive windows share their frames."""
    _, feats_path, _ = epic_exports
    with open_runner("onnxruntime", feats_path, threads=1) as runner:
        meta = ModelMetadata.load(f"{feats_path}.json")
        labeler = live_adapter(meta)(runner, meta)
        ring = AudioRing(8 * 48000, 48000)
        scheduler = Scheduler(ring, None, [ModelSlot("epic", labeler)], [], SchedulerConfig(hop_s=0.25))
        audio = world_audio(48000, 6.0)
        rng = np.random.default_rng(0)
        pos, runs = 0, []
        for k in range(1, 21):
            while pos < k * 12000:
                step = int(rng.integers(300, 1700))
                ring.write(audio[pos:pos + step])
                pos += step
            runs.extend(scheduler.step().runs)
        scheduler.stop()
    assert len(runs) == 20
    assert all(r.end_index % 120 == 0 for r in runs)
    assert len({r.end_index for r in runs}) == 20
    assert labeler.frontend.frames_reused > 15 * 300  # most frames of most windows came from the previous one


def test_export_cli_writes_the_features_in_variant(epic_exports, tmp_path):
    pyth = tmp_path / "SLOWFAST_EPIC_SOUNDS_tiny.pyth"
    write_reference_pyth(pyth, heads=(44,), width=8, blocks=(1, 1, 1, 1))
    done = subprocess.run([sys.executable, "-m", "models.export", str(pyth), "--frontend", "outside"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {tmp_path / 'SLOWFAST_EPIC_SOUNDS_tiny.logmel.onnx'}" in done.stdout
    assert (tmp_path / "SLOWFAST_EPIC_SOUNDS_tiny.logmel.onnx.json").is_file()


def test_bench_frontend_prints_every_row(capsys):
    from apps.bench_frontend import main

    assert main(["--configs", "epic", "--iters", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("librosa (whole window)", "torch eager (whole window)", "ONNX Runtime graph (whole window)",
                "numpy whole window", "streaming, per 0.25 s hop"):
        assert f"| {row} | " in out
    assert "| frames per window | 400 |" in out and "| frames computed per hop | 52 |" in out


def test_a_features_in_export_quantizes_on_features_and_keeps_its_head_in_float32(epic_exports, tmp_path):
    import onnx

    from models.export.quantize import export_int8

    _, feats_path, _ = epic_exports
    report = export_int8(feats_path, calib=8, held_out=16, out=tmp_path / "model.logmel.int8.onnx")
    record = report.record
    assert record["calibration"]["count"] == 8 and record["held_out"]["count"] == 16
    graph = onnx.load(report.path).graph
    producer = {o: n for n in graph.node for o in n.output}
    last = producer[graph.output[0].name]  # Slow-Fast's head: softmax, then the mean over its cells
    assert (last.op_type, producer[last.input[0]].op_type) == ("ReduceMean", "Softmax")
    assert {last.name, producer[last.input[0]].name} <= set(record["float32_nodes"])
    meta = ModelMetadata.load(f"{report.path}.json")
    assert meta.extra["frontend_outside"] is True  # it runs live through the streaming front end too


@pytest.mark.parametrize("config", [EPIC_FRONTEND, VGGSOUND_FRONTEND], ids=["epic", "vggsound"])
def test_the_banded_mel_projection_is_the_dense_one(config):
    """The streaming front end's sparse mel projection holds exactly the filterbank's nonzero
    weights and gives the dense product to float64 rounding (measured relative 5.1e-16 on these
    two front ends: the sum runs over the band only, in another order)."""
    from models.audio.frontend import mel_filterbank
    from models.audio.streaming import banded_projection

    bank = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax,
                          config.mel_scale, config.mel_norm)  # (n_mels, n_freqs)
    projection = banded_projection(bank)
    assert projection.shape == bank.T.shape and projection.nnz == np.count_nonzero(bank) < bank.size // 50
    np.testing.assert_array_equal(projection.toarray(), bank.T)
    power = np.random.default_rng(0).random((52, bank.shape[1])) ** 4 * 100  # (R, n_freqs), a hop's frames
    dense, banded = power @ bank.T, np.asarray(power @ projection)
    assert banded.shape == dense.shape == (52, config.n_mels)
    np.testing.assert_allclose(banded, dense, rtol=2e-15, atol=0)
