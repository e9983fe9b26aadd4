"""Slow-Fast network: sizes and state-dict keys against the reference (shared/REFERENCE.md 1.4-1.5),
a functional forward written here from the reference's description, eval output and other window
lengths, frame handling, init, front-end presets, the live adapter and ONNX export.

The functional forward and the key/shape generator below import no avlive model code: they
are a second, independent reading of the reference, addressed by state-dict key name.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections import OrderedDict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from models.families import NETWORKS
from models.audio.frontend import FrontEnd
from models.core.live import Labeler
from models.slowfast.network import (EPIC_CLIP, EPIC_FRONTEND, EPIC_SLOW_CLIP, VGGSOUND_CLIP, VGGSOUND_FRONTEND,
                             VGGSOUND_SLOW_CLIP, SlowFast, SlowFastConfig, SlowFastLabeler, clip_spec_for, count_macs,
                             pad_frames_edge, pad_or_crop_frames, slow_frame_index)



pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ reference grammar (test-only)

TEMPORAL = {"slow": (1, 1, 1, 3, 3), "fast": (5, 3, 3, 3, 3)}  # conv1, res2..res5 (REFERENCE 1.4)


def reference_shapes(arch: str = "slowfast", heads: tuple[int, ...] = (309,), width: int = 64,
                     blocks: tuple[int, ...] = (3, 4, 6, 3)) -> "OrderedDict[str, tuple[int, ...]]":
    """Key -> shape of the reference state dict, from the key grammar of REFERENCE.md 1.5."""
    kinds = ["slow", "fast"] if arch == "slowfast" else [arch]
    chans = {"slow": width, "fast": width // 8} if arch == "slowfast" else {arch: width}
    out: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def bn(name: str, c: int) -> None:
        for field in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.{field}"] = (c,)
        out[f"{name}.num_batches_tracked"] = ()

    def fuse(name: str, c_fast: int) -> None:
        out[f"{name}.conv_f2s.weight"] = (2 * c_fast, c_fast, 7, 1)
        bn(f"{name}.bn", 2 * c_fast)

    for p, k in enumerate(kinds):
        out[f"s1.pathway{p}_stem.conv.weight"] = (chans[k], 1, TEMPORAL[k][0], 7)
        bn(f"s1.pathway{p}_stem.bn", chans[k])
    c_in = dict(chans)
    if arch == "slowfast":
        fuse("s1_fuse", chans["fast"])
        c_in["slow"] += 2 * chans["fast"]
    for s in range(4):
        for p, k in enumerate(kinds):
            inner = chans[k] * 2**s
            c_out = 4 * inner
            for i in range(blocks[s]):
                pre = f"s{s + 2}.pathway{p}_res{i}"
                cin = c_in[k] if i == 0 else c_out
                if i == 0:
                    out[f"{pre}.branch1.weight"] = (c_out, cin, 1, 1)
                    bn(f"{pre}.branch1_bn", c_out)
                out[f"{pre}.branch2.a.weight"] = (inner, cin, TEMPORAL[k][s + 1], 1)
                bn(f"{pre}.branch2.a_bn", inner)
                out[f"{pre}.branch2.b.weight"] = (inner, inner, 1, 3)
                bn(f"{pre}.branch2.b_bn", inner)
                out[f"{pre}.branch2.c.weight"] = (c_out, inner, 1, 1)
                bn(f"{pre}.branch2.c_bn", c_out)
            c_in[k] = c_out
        if arch == "slowfast" and s < 3:
            fuse(f"s{s + 2}_fuse", c_in["fast"])
            c_in["slow"] += 2 * c_in["fast"]
    dim = sum(c_in.values())
    names = ["projection"] if len(heads) == 1 else ["projection_verb", "projection_noun"]
    for name, k in zip(names, heads):
        out[f"head.{name}.weight"] = (k, dim)
        out[f"head.{name}.bias"] = (k,)
    return out


#: REFERENCE.md 1.5's table, verbatim.
REFERENCE_TABLE = {
    "s1.pathway0_stem.conv.weight": (64, 1, 1, 7),
    "s1.pathway1_stem.conv.weight": (8, 1, 5, 7),
    "s1_fuse.conv_f2s.weight": (16, 8, 7, 1),
    "s1_fuse.bn.weight": (16,),
    "s2.pathway0_res0.branch1.weight": (256, 80, 1, 1),
    "s2.pathway0_res0.branch2.a.weight": (64, 80, 1, 1),
    "s2.pathway0_res0.branch2.b.weight": (64, 64, 1, 3),
    "s2.pathway0_res0.branch2.c.weight": (256, 64, 1, 1),
    "s2.pathway1_res0.branch2.a.weight": (8, 8, 3, 1),
    "s2_fuse.conv_f2s.weight": (64, 32, 7, 1),
    "s3.pathway0_res0.branch1.weight": (512, 320, 1, 1),
    "s3.pathway1_res0.branch2.a.weight": (16, 32, 3, 1),
    "s3_fuse.conv_f2s.weight": (128, 64, 7, 1),
    "s4.pathway0_res0.branch2.a.weight": (256, 640, 3, 1),
    "s4_fuse.conv_f2s.weight": (256, 128, 7, 1),
    "s5.pathway0_res0.branch1.weight": (2048, 1280, 1, 1),
    "s5.pathway0_res0.branch2.a.weight": (512, 1280, 3, 1),
    "s5.pathway1_res0.branch2.c.weight": (256, 64, 1, 1),
}


def random_state(shapes: "OrderedDict[str, tuple[int, ...]]", seed: int) -> "OrderedDict[str, torch.Tensor]":
    """Every tensor drawn at random, in ranges that keep a 50-layer forward finite."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.randint(0, 1000, shape, generator=g)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            out[key] = 0.2 * torch.randn(shape, generator=g)
        elif key.startswith("head.") and key.endswith(".weight"):
            out[key] = 0.05 * torch.randn(shape, generator=g)
        elif key.endswith(".bias"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 4:  # conv: unit gain on fan-in
            out[key] = torch.randn(shape, generator=g) / math.sqrt(shape[1] * shape[2] * shape[3])
        else:  # BN gamma, c_bn included (0 at init in the model)
            out[key] = 0.3 + 0.7 * torch.rand(shape, generator=g)
    return out


def functional_forward(sd: dict, x: torch.Tensor, training: bool, alpha: int = 4, dropout: float = 0.5,
                       seed: int = 0):
    """The reference network (REFERENCE.md 1.4) in torch.nn.functional, by state-dict key.

    Returns (pooled features (N, C), outputs per head). ``training`` uses batch statistics
    (updating the running stats in ``sd``) and dropout with ``torch.manual_seed(seed)``.
    """
    eps, momentum = 1e-5, 0.1

    def bn(t, name):
        return F.batch_norm(t, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training, momentum, eps)

    two = "s1.pathway1_stem.conv.weight" in sd
    frames = x.shape[2]
    xs = [torch.index_select(x, 2, torch.linspace(0, frames - 1, frames // alpha).long()), x] if two else [x]
    for p in range(len(xs)):
        w = sd[f"s1.pathway{p}_stem.conv.weight"]
        y = F.conv2d(xs[p], w, stride=2, padding=(w.shape[2] // 2, 3))
        xs[p] = F.max_pool2d(F.relu(bn(y, f"s1.pathway{p}_stem.bn")), 3, 2, 1)

    def fuse(xs, name):
        lateral = F.conv2d(xs[1], sd[f"{name}.conv_f2s.weight"], stride=(alpha, 1), padding=(3, 0))
        return [torch.cat([xs[0], F.relu(bn(lateral, f"{name}.bn"))], 1), xs[1]]

    if two:
        xs = fuse(xs, "s1_fuse")
    for s in range(2, 6):
        for p in range(len(xs)):
            y, i = xs[p], 0
            while f"s{s}.pathway{p}_res{i}.branch2.a.weight" in sd:
                pre = f"s{s}.pathway{p}_res{i}"
                fs = 2 if (s > 2 and i == 0) else 1  # frequency stride of block 0 in res3..res5
                a = sd[f"{pre}.branch2.a.weight"]
                z = F.relu(bn(F.conv2d(y, a, padding=(a.shape[2] // 2, 0)), f"{pre}.branch2.a_bn"))
                z = F.relu(bn(F.conv2d(z, sd[f"{pre}.branch2.b.weight"], stride=(1, fs), padding=(0, 1)),
                              f"{pre}.branch2.b_bn"))
                z = bn(F.conv2d(z, sd[f"{pre}.branch2.c.weight"]), f"{pre}.branch2.c_bn")
                if f"{pre}.branch1.weight" in sd:
                    y = bn(F.conv2d(y, sd[f"{pre}.branch1.weight"], stride=(1, fs)), f"{pre}.branch1_bn")
                y = F.relu(y + z)
                i += 1
            xs[p] = y
        if two and s < 5:
            xs = fuse(xs, f"s{s}_fuse")
    # Head: AvgPool with the kernel the reference derives from NUM_FRAMES (= this T) and 128 bands.
    kernels = [(frames // alpha // 4, 4), (frames // 4, 4)] if two else [(frames // 4, 4)]
    pooled = torch.cat([F.avg_pool2d(t, k, stride=1) for t, k in zip(xs, kernels)], 1).permute(0, 2, 3, 1)
    features = pooled.mean((1, 2))
    if training:
        torch.manual_seed(seed)
        pooled = F.dropout(pooled, dropout, training=True)
    names = ["head.projection"] if "head.projection.weight" in sd else ["head.projection_verb", "head.projection_noun"]
    outs = []
    for n in names:
        y = F.linear(pooled, sd[f"{n}.weight"], sd[f"{n}.bias"])  # (N, T_c, F_c, K)
        y = y.reshape(y.shape[0], -1) if training else y.softmax(3).mean((1, 2))
        outs.append(y)
    return features, outs


# ------------------------------------------------------------------------------- sizes and keys

PARAMS_M = {  # REFERENCE.md 1.4, "computed from the code"
    "slowfast-vggsound": 26.68,
    "slowfast-epic100": 26.88,
    "slowfast-epicsounds": 26.07,
    "slow-vggsound": 24.71,
    "fast-vggsound": 0.47,
}


@pytest.mark.parametrize("name", sorted(PARAMS_M))
def test_parameter_count(name):
    model = NETWORKS.create(name)
    count = sum(p.numel() for p in model.parameters())
    print(f"{name}: {count:,} parameters = {count / 1e6:.2f} M")
    assert round(count / 1e6, 2) == PARAMS_M[name]


@pytest.mark.parametrize("name,arch,heads,entries", [
    ("slowfast-vggsound", "slowfast", (309,), 662),
    ("slowfast-epic100", "slowfast", (97, 300), 664),
    ("slowfast-epicsounds", "slowfast", (44,), 662),
    ("slow-vggsound", "slow", (309,), None),
    ("fast-vggsound", "fast", (309,), None),
])
def test_state_dict_matches_reference_grammar(name, arch, heads, entries):
    sd = NETWORKS.create(name).state_dict()
    width = 8 if arch == "fast" else 64
    expected = reference_shapes(arch, heads, width)
    assert list(sd) == list(expected)  # names and order
    assert {k: tuple(v.shape) for k, v in sd.items()} == dict(expected)
    if entries is not None:
        assert len(sd) == entries
        for key, shape in REFERENCE_TABLE.items():
            assert tuple(sd[key].shape) == shape, key
    else:
        assert not any("pathway1" in k or "_fuse" in k for k in sd)


def test_macs_match_reference():
    vgg = NETWORKS.create("slowfast-vggsound").to("meta")  # shapes only from here on
    epic = NETWORKS.create("slowfast-epic100").to("meta")
    assert round(count_macs(vgg, torch.zeros(1, 1, 512, 128)) / 1e9, 2) == 5.52
    assert round(count_macs(epic, torch.zeros(1, 1, 400, 128)) / 1e9, 2) == 4.31


def test_init_follows_reference():
    torch.manual_seed(0)
    model = NETWORKS.create("slowfast-vggsound")
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (1e-5, 0.1)
            assert torch.all(m.bias == 0) and torch.all(m.running_mean == 0) and torch.all(m.running_var == 1)
            assert torch.all(m.weight == (0.0 if name.endswith("c_bn") else 1.0)), name
    conv = model.s4.pathway0_res0.branch2.a.weight  # (256, 640, 3, 1): fan_out = 256 * 3
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (256 * 3)), rel=0.02)
    proj = model.head.projection
    assert proj.weight.std().item() == pytest.approx(0.01, rel=0.02) and torch.all(proj.bias == 0)


# ------------------------------------------------------------------------------ functional check


@pytest.mark.parametrize("name,heads", [("slowfast-vggsound", (309,)), ("slowfast-epic100", (97, 300))])
def test_matches_functional_reference(name, heads):
    state = random_state(reference_shapes("slowfast", heads), seed=len(heads))
    model = NETWORKS.create(name, num_frames=64)
    model.load_state_dict(state)
    x = torch.randn(2, 1, 64, 128, generator=torch.Generator().manual_seed(5))

    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        outs = model(x)
    ref_features, ref_outs = functional_forward({k: v.clone() for k, v in state.items()}, x, training=False)
    outs = outs if isinstance(outs, tuple) else (outs,)
    assert features.shape == (2, 2304)
    torch.testing.assert_close(features, ref_features, rtol=1e-4, atol=1e-5 * ref_features.abs().max().item())
    for out, ref in zip(outs, ref_outs, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(out.sum(1), torch.ones(2))

    model.train()
    ref_state = {k: v.clone() for k, v in state.items()}
    with torch.no_grad():
        torch.manual_seed(11)
        train_outs = model(x)
        train_features = model.forward_features(x)  # a second step of running-stat updates
    ref_outs = functional_forward(ref_state, x, training=True, seed=11)[1]
    ref_features = functional_forward(ref_state, x, training=True)[0]
    train_outs = train_outs if isinstance(train_outs, tuple) else (train_outs,)
    for out, ref in zip(train_outs, ref_outs, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    torch.testing.assert_close(train_features, ref_features, rtol=1e-4, atol=1e-5 * ref_features.abs().max().item())
    after = model.state_dict()
    for key in ("s1.pathway1_stem.bn.running_mean", "s3_fuse.bn.running_var", "s5.pathway0_res2.branch2.c_bn.running_mean"):
        torch.testing.assert_close(after[key], ref_state[key], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------- lengths, frames


def test_eval_output_pooling_modes():
    torch.manual_seed(1)
    cfg = NETWORKS.create("slowfast-test").config
    glob = SlowFast(cfg).eval()
    ref = SlowFast(dataclasses.replace(cfg, head_pooling="reference")).eval()
    ref.load_state_dict(glob.state_dict())
    with torch.no_grad():
        x = torch.randn(3, 1, 64, 128)
        torch.testing.assert_close(glob(x), ref(x), rtol=1e-5, atol=1e-7)  # trained length: one cell
        torch.testing.assert_close(glob(x), glob.forward_logits(x).softmax(1), rtol=1e-5, atol=1e-7)
        for frames in (96, 200, 208):  # "global" takes any valid length
            out = glob(torch.randn(2, 1, frames, 128))
            assert out.shape == (2, 5) and torch.allclose(out.sum(1), torch.ones(2))
        for frames in (48, 128):  # the reference head takes only the trained length with two pathways
            with pytest.raises(ValueError, match="trained length"):
                ref(torch.randn(1, 1, frames, 128))
        # One pathway, longer input: softmax per sliding-window cell, averaged over the cells.
        slow = SlowFast(dataclasses.replace(cfg, arch="slow", head_pooling="reference", num_frames=64)).eval()
        long_x = torch.randn(2, 1, 128, 128)
        cells = slow.forward_cells(long_x)
        assert cells.shape == (2, 17, 1, 256)  # 32 frames after the stem, kernel 16, stride 1
        torch.testing.assert_close(slow(long_x), slow.head.projection(cells).softmax(-1).mean((1, 2)))


def test_slow_frames_are_the_reference_linspace(monkeypatch):
    assert slow_frame_index(400).tolist()[:4] == [0, 4, 8, 12] and slow_frame_index(400)[-1] == 399
    assert not torch.equal(slow_frame_index(400), torch.arange(0, 400, 4))  # not a strided slice
    # The export-time formula equals torch.linspace(...).long() for every T up to 4096.
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    for t in range(4, 4097):
        assert torch.equal(slow_frame_index(t), torch.linspace(0, t - 1, t // 4).long()), t


def test_pad_or_crop_frames():
    x = torch.arange(416 * 2, dtype=torch.float32).reshape(1, 416, 2)
    y = pad_or_crop_frames(x[:, :401], 16)  # 2.000 s at 24 kHz: 401 frames
    assert y.shape == (1, 400, 2) and torch.equal(y, x[:, 1:401])  # the oldest frame dropped
    assert torch.equal(pad_or_crop_frames(x[:, :404], 16), x[:, 4:404])  # r = 4 < 8: crop
    padded = pad_or_crop_frames(x[:, :408], 16)  # r = 8: pad by repeating the last frame
    assert padded.shape == (1, 416, 2) and torch.equal(padded[:, 408:], x[:, 407:408].expand(1, 8, 2))
    assert pad_or_crop_frames(x[:, :5], 16).shape == (1, 16, 2)  # shorter than one multiple: padded
    assert pad_or_crop_frames(x, 16) is x and pad_or_crop_frames(x[:, :401], 1).shape[1] == 401
    arr = x.numpy()[0, :401]
    np.testing.assert_array_equal(pad_or_crop_frames(arr, 16), arr[1:])
    np.testing.assert_array_equal(pad_frames_edge(arr[:3], 6), np.pad(arr[:3], ((0, 3), (0, 0)), mode="edge"))

    model = NETWORKS.create("slowfast-test").eval()
    for frames in (65, 66, 67, 401):
        with pytest.raises(ValueError, match="pad_or_crop_frames"):
            model(torch.randn(1, 1, frames, 128))
        fixed = pad_or_crop_frames(torch.randn(1, 1, frames, 128), model.frame_multiple)
        assert fixed.shape[2] % 16 == 0 and model(fixed).shape == (1, 5)


# ------------------------------------------------------------------------- presets, config, live


def test_frontend_presets_and_clips():
    assert EPIC_FRONTEND.sample_rate == 24000 and (EPIC_FRONTEND.win_length, EPIC_FRONTEND.hop_length) == (240, 120)
    assert VGGSOUND_FRONTEND.sample_rate == 16000 and (VGGSOUND_FRONTEND.win_length, VGGSOUND_FRONTEND.hop_length) == (320, 160)
    for fe in (EPIC_FRONTEND, VGGSOUND_FRONTEND):
        assert (fe.n_fft, fe.center, fe.power, fe.n_mels, fe.mel_scale, fe.mel_norm, fe.fmin, fe.fmax, fe.log_offset) \
            == (2048, True, 1.0, 128, "htk", None, 0.0, None, 1e-6)
    assert (EPIC_CLIP.clip_samples, EPIC_CLIP.num_frames, VGGSOUND_CLIP.clip_samples, VGGSOUND_CLIP.num_frames) \
        == (47_975, 400, 81_903, 512)
    assert (EPIC_SLOW_CLIP.num_frames, VGGSOUND_SLOW_CLIP.num_frames) == (100, 128)  # 20 ms / 40 ms hops
    assert clip_spec_for("epic_sounds", "slow") is EPIC_SLOW_CLIP and clip_spec_for("vggsound", "fast") is VGGSOUND_CLIP
    # A short segment is edge-padded to the clip's frames.
    wave = np.random.default_rng(0).standard_normal(12_000).astype(np.float32)
    feats = EPIC_CLIP.logmel(wave)
    direct = FrontEnd(EPIC_FRONTEND)(torch.from_numpy(wave)[None])
    assert feats.shape == (1, 400, 128) and direct.shape[1] == 101
    torch.testing.assert_close(feats[:, :101], direct)
    assert torch.equal(feats[:, 101:], direct[:, -1:].expand(1, 299, 128))


def test_config_validation():
    with pytest.raises(ValueError, match=r"SlowFastConfig.arch: expected .* found 'audio'"):
        SlowFastConfig(arch="audio")
    with pytest.raises(ValueError, match="SlowFastConfig.num_classes"):
        SlowFastConfig(num_classes=(1, 2, 3))
    with pytest.raises(ValueError, match="SlowFastConfig.width: expected a multiple of beta_inv=8"):
        SlowFastConfig(width=12)
    with pytest.raises(ValueError, match="SlowFastConfig.head_pooling"):
        SlowFastConfig(head_pooling="max")
    assert SlowFastConfig(num_classes=[97, 300]).num_classes == (97, 300)
    assert SlowFastConfig().feature_dim == 2304 and SlowFastConfig(arch="fast").feature_dim == 256


def test_registry_and_variants():
    names = NETWORKS.names()
    for name in ("slowfast-vggsound", "slowfast-epic100", "slowfast-epicsounds", "slow-vggsound", "fast-vggsound",
                 "slowfast-test"):
        assert name in names
    tiny = NETWORKS.create("slowfast-test").eval()
    assert tiny(torch.randn(1, 1, 64, 128)).shape == (1, 5)
    for arch, frames in (("slow", 100), ("fast", 64)):  # single pathways take any frame count
        m = NETWORKS.create("slowfast-test", arch=arch).eval()
        assert m(torch.randn(2, 1, frames, 128)).shape == (2, 5)
    train = NETWORKS.create("slowfast-test", num_classes=(7, 9)).train()
    verb, noun = train(torch.randn(2, 1, 64, 128))
    assert verb.shape == (2, 7) and noun.shape == (2, 9)


def test_labeler():
    model = NETWORKS.create("slowfast-test", num_classes=(4, 3), num_frames=400)
    labels = [f"verb:{i}" for i in range(4)] + [f"noun:{i}" for i in range(3)]
    labeler = SlowFastLabeler(model, EPIC_FRONTEND, labels)
    assert isinstance(labeler, Labeler)
    assert labeler.window.samples == 47_975 and labeler.window.sample_rate == 24_000
    scores = labeler(np.random.default_rng(1).standard_normal(labeler.window.samples).astype(np.float32))
    assert scores.shape == (7,) and scores.dtype == np.float32
    assert scores[:4].sum() == pytest.approx(1, abs=1e-5) and scores[4:].sum() == pytest.approx(1, abs=1e-5)
    two_seconds = labeler(np.zeros(48_000, np.float32))  # 401 frames -> cropped to 400
    assert np.all(np.isfinite(two_seconds))
    with pytest.raises(ValueError, match="expected 7 labels"):
        SlowFastLabeler(model, EPIC_FRONTEND, labels[:-1])


# ------------------------------------------------------------------------------------ ONNX


def test_onnx_export_matches_torch(tmp_path):
    torch.manual_seed(3)
    model = NETWORKS.create("slowfast-test", num_classes=(6,)).eval()  # width 8, one block per stage
    for m in model.modules():  # non-trivial BN so the check means something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.running_var.data.uniform_(0.5, 1.5)
            m.running_mean.data.normal_(0, 0.2)
    x = torch.randn(2, 1, 64, 128)
    frames = torch.export.Dim("k", min=2, max=256)
    path = tmp_path / "slowfast.onnx"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, input_names=["logmel"],
                          output_names=["probs"], verbose=False,
                          dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=32), 2: 16 * frames}})
    print(f"ONNX export: {time.perf_counter() - start:.1f} s")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 18
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((2, 1, 64, 128), (1, 1, 400, 128)):  # two lengths through the dynamic time axis
        xx = torch.randn(shape)
        got = session.run(None, {"logmel": xx.numpy()})[0]
        with torch.no_grad():
            want = model(xx).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
