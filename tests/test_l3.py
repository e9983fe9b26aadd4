"""L³-Net: shapes and sizes at paper size, heatmap consistency, AVC learning, ONNX, live adapter."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.l3.network import (
    L3_LITE, L3_PAPER, L3_TINY, SAMPLE_RATE, L3Config, L3Localizer, L3Net, audio_window_for_frame, count_macs,
    count_parameters, export_onnx, heatmap_from_cells, load_checkpoint, preprocess_frames, save_checkpoint,
)
from models.core.live import Heatmap, Localizer
from models.families import FAMILIES
from models.l3.live import RunnerLocalizer
from realtime.models import ModelError, inspect_model, open_model
from models.families import NETWORKS
from models.world import TINY, Scene


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm running statistics, so eval-mode checks exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model.eval()


def _conv_linear_macs(model: L3Net, frames: torch.Tensor, audio: torch.Tensor) -> int:
    """Multiply-adds of every Conv2d and Linear in one forward, counted from the shapes seen."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        per_output = module.in_features if isinstance(module, nn.Linear) else \
            module.in_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups
        total += output[0].numel() * per_output  # batch item 0

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model(frames, audio)
    finally:
        for h in handles:
            h.remove()
    return total


# --------------------------------------------------------------------------- shapes and sizes


def _on_meta(config: L3Config) -> L3Net:
    """The model with every parameter and buffer on the meta device: shapes, no arithmetic."""
    with torch.device("meta"):
        model = L3Net(config)
    return model.to("meta").eval()  # the front end's window is built on the CPU from numpy


def test_paper_audio_front_end_gives_257_by_199():
    fe = L3_PAPER.frontend
    assert (fe.sample_rate, fe.n_fft, fe.win_length, fe.hop_length) == (48000, 512, 480, 240)
    assert fe.window_frames and not fe.center and fe.power == 1.0 and fe.n_mels is None and fe.log
    assert L3_LITE.frontend == L3_TINY.frontend == fe  # every size hears the same image
    model = L3Net(L3_TINY)
    spec = model.spectrogram(0.1 * torch.randn(1, SAMPLE_RATE))
    assert tuple(spec.shape) == (1, 1, 257, 199)
    assert torch.isfinite(spec).all()
    silence = model.spectrogram(torch.zeros(1, SAMPLE_RATE))
    torch.testing.assert_close(silence, torch.full_like(silence, float(np.log(1e-4))))


def test_paper_shapes_and_macs_on_meta_device():
    model = _on_meta(L3_PAPER)
    frames = torch.empty(2, 3, 224, 224, device="meta")
    audio = torch.empty(2, SAMPLE_RATE, device="meta")
    assert tuple(model.vision_map(frames).shape) == (2, 512, 28, 28)
    assert tuple(model.audio_map(audio).shape) == (2, 512, 32, 24)  # the replica's pool sizes
    assert tuple(model.embed_vision(frames).shape) == (2, 512)
    assert tuple(model.embed_audio(audio).shape) == (2, 512)
    avc_logits, cell_probs = model.forward_all(frames, audio)
    assert tuple(avc_logits.shape) == (2, 2) and tuple(cell_probs.shape) == (2, 28, 28)
    # the analytic count agrees with one counted from the layers a forward pass runs
    macs = count_macs(L3_PAPER)
    assert _conv_linear_macs(model, frames, audio) == macs.pair


def test_paper_parameter_and_mac_counts():
    model = _on_meta(L3_PAPER)
    total = count_parameters(model)
    assert total == 9_504_900
    conv = {name: sum(m.weight.numel() for m in sub.modules() if isinstance(m, nn.Conv2d))
            for name, sub in (("vision", model.vision), ("audio", model.audio))}
    assert conv == {"vision": 4_683_456, "audio": 4_682_304}  # REFERENCE.md: ≈ 4.68 M per subnet
    assert count_parameters(model.fusion) == 131_458  # ≈ 0.13 M: 1024·128 + 128 + 128·2 + 2
    bn = sum(count_parameters(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert total == conv["vision"] + conv["audio"] + 131_458 + bn  # no conv biases (BN follows)
    macs = count_macs(L3_PAPER)
    assert (macs.vision, macs.audio, macs.fusion) == (10_259_988_480, 10_210_078_656, 131_328)
    assert macs.pair == 20_470_198_464  # ≈ 20 G per pair
    assert macs.heatmap == macs.pair + 28 * 28 * (512 * 128 + 128 * 2)


@pytest.mark.parametrize("config", [L3_LITE, L3_TINY], ids=["lite", "tiny"])
def test_smaller_sizes(config):
    macs = count_macs(config)
    assert macs.heatmap <= 1e9  # the lite budget: ≤ 1 G multiply-adds per pair, heatmap included
    model = _on_meta(config)
    frames = torch.empty(1, 3, config.image_size, config.image_size, device="meta")
    audio = torch.empty(1, SAMPLE_RATE, device="meta")
    assert _conv_linear_macs(model, frames, audio) == macs.pair
    if config is L3_LITE:
        assert config.grid_size == 14  # 112×112 input: 16-pixel cells on a 224 frame
        assert macs.pair == 327_155_896 and count_parameters(model) == 392_668


def test_registered_networks():
    assert {"l3-paper", "l3-lite", "l3-tiny"} <= set(NETWORKS.names())
    model = NETWORKS.create("l3-tiny", fusion="avol")
    assert isinstance(model, L3Net) and model.config == dataclasses.replace(L3_TINY, fusion="avol")
    assert FAMILIES.get("l3").factory.live is RunnerLocalizer


def test_config_validation_and_round_trip():
    for config in (L3_PAPER, L3_LITE, L3_TINY):
        d = config.to_dict()
        assert json.loads(json.dumps(d)) == d
        assert L3Config.from_dict(d) == config
    with pytest.raises(ValueError, match="L3Config.widths: expected 4 positive ints"):
        L3Config(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="L3Config.fusion: expected 'concat' or 'avol'"):
        L3Config(fusion="sum")
    with pytest.raises(ValueError, match="L3Config.image_size: expected a positive multiple of 8"):
        L3Config(image_size=100)
    with pytest.raises(ValueError, match="unknown"):
        L3Config.from_dict({"width": (1, 2, 3, 4)})


def test_input_errors_name_the_expected_shape():
    model = L3Net(L3_TINY).eval()
    with pytest.raises(ValueError, match=r"expected audio \(batch, 48000\)"):
        model.embed_audio(torch.zeros(1, 16000))
    with pytest.raises(ValueError, match=r"expected frames \(batch, 3, 64, 64\)"):
        model.embed_vision(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess_frames(np.zeros((64, 64, 3), np.float32), 64)


# --------------------------------------------------------------------------- heatmap


@pytest.mark.parametrize("fusion", ["concat", "avol"])
def test_avc_score_and_cell_map_come_from_one_pass(fusion):
    torch.manual_seed(0)
    model = _randomise_bn(NETWORKS.create("l3-tiny", fusion=fusion))
    frames = torch.randn(3, 3, 64, 64)
    audio = 0.1 * torch.randn(3, SAMPLE_RATE)
    calls = {"vision": 0, "audio": 0}
    hooks = [getattr(model, n).blocks.register_forward_pre_hook(lambda *_, n=n: calls.__setitem__(n, calls[n] + 1))
             for n in calls]
    with torch.no_grad():
        avc_logits, cell_probs = model.forward_all(frames, audio)
    for h in hooks:
        h.remove()
    assert calls == {"vision": 1, "audio": 1}
    assert tuple(avc_logits.shape) == (3, 2) and tuple(cell_probs.shape) == (3, 8, 8)
    assert ((cell_probs >= 0) & (cell_probs <= 1)).all()
    with torch.no_grad():
        vision_map = model.vision_map(frames)  # (3, Cv, 8, 8)
        audio_vec = model.embed_audio(audio)  # (3, Ca)
        if fusion == "concat":
            # the global logits are the head on the max-pooled features ...
            expected = model.fusion.logits(vision_map.amax(dim=(2, 3)), audio_vec)
            torch.testing.assert_close(avc_logits, expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(avc_logits, model.fusion.logits(model.embed_vision(frames), audio_vec))
            # ... and each cell's probability is the same head on that cell's vector
            cells = vision_map.permute(0, 2, 3, 1).reshape(3 * 64, -1)  # (B·h·w, Cv)
            per_cell = model.fusion.logits(cells, audio_vec.repeat_interleave(64, dim=0)).softmax(-1)[:, 1]
            torch.testing.assert_close(cell_probs, per_cell.reshape(3, 8, 8), rtol=1e-5, atol=1e-6)
        else:
            # multiple-instance learning: the AVC probability is the best cell's
            torch.testing.assert_close(avc_logits.softmax(-1)[:, 1], cell_probs.flatten(1).amax(1))


def test_heatmap_upsampling_and_peak():
    rng = np.random.default_rng(0)
    cells = rng.uniform(0.2, 0.8, (8, 8)).astype(np.float32)
    cells[5, 2] = 0.97
    heat = heatmap_from_cells(cells, (90, 120), threshold=0.6)  # non-square frame
    assert heat.map.shape == (90, 120) and heat.map.dtype == np.float32
    assert heat.map.min() >= 0.0 and heat.map.max() <= 1.0
    y, x = np.unravel_index(np.argmax(heat.map), heat.map.shape)
    assert heat.peak == (x, y) and heat.score == heat.map[y, x]
    assert abs(x - (2 + 0.5) * 120 / 8) <= 120 / 8 and abs(y - (5 + 0.5) * 90 / 8) <= 90 / 8
    assert heat.has_source and heat.threshold == 0.6


def test_localizer_and_checkpoint_factory(tmp_path):
    torch.manual_seed(1)
    model = _randomise_bn(L3Net(L3_TINY))
    localizer = L3Localizer(model, threshold=0.3)
    assert isinstance(localizer, Localizer)
    assert (localizer.window.seconds, localizer.window.sample_rate) == (1.0, 48000)
    assert localizer.window.needs_frame and localizer.window.frame_at == "centre"
    scene = Scene(TINY, 7)
    frame = scene.render_frame(30)[0][:, :80]  # (96, 80, 3): the heatmap follows the frame
    start, stop = audio_window_for_frame(scene.frame_time(30))
    assert (start, stop) == (96000 - 24000, 96000 + 24000)
    audio = scene.render_audio(start, stop - start, SAMPLE_RATE)
    heat = localizer(audio, frame)
    assert isinstance(heat, Heatmap) and heat.map.shape == (96, 80) and heat.threshold == 0.3
    with torch.no_grad():
        _, cells = model.forward_all(preprocess_frames(frame, 64), torch.from_numpy(audio)[None])
    np.testing.assert_allclose(heat.map, heatmap_from_cells(cells[0].numpy(), (96, 80), 0.3).map)

    path = tmp_path / "l3.pt"
    save_checkpoint(path, model, threshold=0.42)
    torch.load(path, weights_only=True)  # loads without unpickling code
    loaded, threshold = load_checkpoint(path)
    assert threshold == 0.42 and loaded.config == L3_TINY
    source = inspect_model(path)  # a bare L3 checkpoint: the l3 family's model file
    assert source.kind == "l3-checkpoint" and source.task == "localizer"
    live = open_model(source, "localizer", backend="torch", threads=torch.get_num_threads())
    try:
        assert live.model.threshold == 0.42
        # the runner path runs the same torch ops as L3Localizer: measured max |diff| 0.0 over 5 seeds
        np.testing.assert_array_equal(live.model(audio, frame).map, heat.map)
    finally:
        live.close()
    with pytest.raises(ModelError, match="tensorrt runs an engine"):
        open_model(source, "localizer", backend="tensorrt")
    with pytest.raises(ValueError, match="found a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"expected float audio of shape \(48000,\)"):
        localizer(audio[:16000], frame)


# --------------------------------------------------------------------------- learning


def _avc_pairs(n_positive: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiny-world AVC pairs: ``frames (2n, H, W, 3)`` uint8, ``audio (2n, 48000)``, ``labels (2n,)``.

    Positive: a frame in which an on-screen object sounds (an event of 0.6–2.5 s at ≥ 5 dB, at
    its middle; short events keep the 48 kHz synthesis cheap) and the 1 s of audio centred on
    it. Negative: the same frame with 1 s from another scene at a random time.
    """
    frames, positives, negatives = [], [], []
    rng = np.random.default_rng(0)
    seed = 0
    while len(frames) < n_positive:
        scene = Scene(TINY, seed)
        seed += 1
        taken = 0
        for event in scene.events_between(1.0, 60.0):
            if event.obj is None or event.snr_db < 5.0 or not 0.6 <= event.offset - event.onset <= 2.5:
                continue
            k = int(round(0.5 * (event.onset + event.offset) * TINY.fps))
            if not any(o.sounding and o.event_uid == event.uid for o in scene.frame_objects(k)):
                continue
            start, stop = audio_window_for_frame(scene.frame_time(k))
            frames.append(scene.render_frame(k)[0])
            positives.append(scene.render_audio(start, stop - start, SAMPLE_RATE))
            other = Scene(TINY, 50_000 + len(negatives))
            negatives.append(other.render_audio(int(rng.integers(SAMPLE_RATE, 60 * SAMPLE_RATE)), SAMPLE_RATE,
                                                SAMPLE_RATE))
            taken += 1
            if taken == 3 or len(frames) == n_positive:
                break
    frames_2n = np.concatenate([frames, frames])
    audio_2n = np.concatenate([positives, negatives])
    labels = np.repeat([1, 0], n_positive)
    return frames_2n, audio_2n, labels


def test_avc_learns_on_tiny_world():
    frames_u8, audio_np, labels_np = _avc_pairs(64)
    frames = preprocess_frames(frames_u8, L3_TINY.image_size)  # (128, 3, 64, 64)
    audio = torch.from_numpy(audio_np)  # (128, 48000)
    labels = torch.from_numpy(labels_np)
    torch.manual_seed(0)
    model = NETWORKS.create("l3-tiny")
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits = model(frames, audio)
        model.train()
        return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()

    loss_before, _ = evaluate()
    order = torch.Generator().manual_seed(0)
    for _ in range(70):
        batch = torch.randperm(len(labels), generator=order)[:32]
        loss = F.cross_entropy(model(frames[batch], audio[batch]), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    loss_after, accuracy = evaluate()
    assert loss_after <= 0.7 * loss_before, (loss_before, loss_after)
    assert accuracy >= 0.75, accuracy


# --------------------------------------------------------------------------- ONNX


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")  # torch.export internals
def test_onnx_heatmap_graph_matches_torch(tmp_path):
    torch.manual_seed(2)
    model = _randomise_bn(L3Net(L3_TINY))
    path = tmp_path / "l3-tiny-heatmap.onnx"
    export_onnx(model, path, part="heatmap")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frames", "audio"]
    assert [o.name for o in session.get_outputs()] == ["avc_logits", "cell_probs"]
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for batch in (1, 3):
        frames = preprocess_frames(rng.integers(0, 256, (batch, 96, 96, 3), dtype=np.uint8), 64)
        audio = (0.05 * rng.standard_normal((batch, SAMPLE_RATE)) + 0.2 * np.sin(2 * np.pi * 700 * t))
        audio = torch.from_numpy(audio.astype(np.float32))
        onnx_logits, onnx_cells = session.run(None, {"frames": frames.numpy(), "audio": audio.numpy()})
        with torch.no_grad():
            logits, cells = model.forward_all(frames, audio)
        assert onnx_logits.shape == (batch, 2) and onnx_cells.shape == (batch, 8, 8)
        assert np.abs(onnx_logits - logits.numpy()).max() <= 1e-4
        assert np.abs(onnx_cells - cells.numpy()).max() <= 1e-4


def test_avol_cosine_head_compares_unit_projections():
    config = dataclasses.replace(L3_TINY, fusion="avol", avol_cosine=True)
    assert L3Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    torch.manual_seed(0)
    model = L3Net(config).eval()
    assert model.fusion.scale.item() == pytest.approx(10.0)
    frames = torch.rand(2, 3, config.image_size, config.image_size) * 2 - 1
    audio = torch.randn(2, SAMPLE_RATE) * 0.1
    with torch.no_grad():
        logits, cells = model.forward_all(frames, audio)
        v, a = model.fusion.project(model.vision_map(frames), model.embed_audio(audio))
    assert torch.allclose(v.norm(dim=1), torch.ones(()), atol=1e-5) and torch.allclose(a.norm(dim=1), torch.ones(()), atol=1e-5)
    z = torch.logit(cells.double().clamp(1e-12, 1 - 1e-12))
    bound = abs(model.fusion.scale.item()) + abs(model.fusion.bias.item())
    assert z.abs().max().item() <= bound + 1e-4  # a cosine times the scale, plus the bias
    assert torch.allclose(logits[:, 1], z.flatten(1).amax(1).float(), atol=1e-4)
