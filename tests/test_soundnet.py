"""The SoundNet family: the two paper networks' layer shapes against REFERENCE.md §3, the
teacher cache, the teacher-student recipe on the world and on a video folder, export of a
SoundNet with a linear head as one ONNX labeler that avlive runs live, and the transfer app."""
from __future__ import annotations

import torch

from models.soundnet.network import (
    SOUNDNET5,
    SOUNDNET8,
    SoundNet,
    parameter_count,
    soundnet_lite,
)

# REFERENCE.md §3 (cvondrick/soundnet main_train.lua / main_train_small.lua), 20 s at 22,050 Hz:
# (layer, channels, steps). The same numbers came out of the public PyTorch port
# (smallflyingpig/SoundNet_Pytorch, run in a scratch folder; see README "SoundNet").
SOUNDNET8_20S = [("conv1", 16, 220501), ("pool1", 16, 27562), ("conv2", 32, 13782), ("pool2", 32, 1722),
                 ("conv3", 64, 862), ("conv4", 128, 432), ("conv5", 256, 217), ("pool5", 256, 54),
                 ("conv6", 512, 28), ("conv7", 1024, 15)]
SOUNDNET5_20S = [("conv1", 32, 220501), ("pool1", 32, 27562), ("conv2", 64, 13782), ("pool2", 64, 1722),
                 ("conv3", 128, 862), ("pool3", 128, 107), ("conv4", 256, 54)]
TWENTY_SECONDS = 441_000


def _shapes(net: SoundNet) -> tuple[list[tuple[str, int, int]], tuple, tuple]:
    with torch.no_grad():
        x = torch.zeros(1, TWENTY_SECONDS)
        feats = net.eval().features(x)
        objects, scenes = net(x)
    return [(k, v.shape[1], v.shape[2]) for k, v in feats.items()], tuple(objects.shape), tuple(scenes.shape)


def test_soundnet8_layer_shapes_for_20_s_are_the_reference_table():
    net = SoundNet(SOUNDNET8)
    layers, objects, scenes = _shapes(net)
    assert layers == SOUNDNET8_20S
    assert objects == (1, 4, 1000) and scenes == (1, 4, 401)  # 4 steps of ~5 s: the teacher's 4 frames
    assert [net.output_length(TWENTY_SECONDS, n) for n, _, _ in SOUNDNET8_20S] == [t for _, _, t in SOUNDNET8_20S]
    # ≈2.87 M parameters up to conv7, +11.5 M in the two conv8 heads (REFERENCE.md §3)
    assert parameter_count(net.blocks) == 2_874_320 and parameter_count(net) == 14_352_713
    grid = net.time_grid()
    assert grid.stride == 65536 and net.time_grid("pool5").stride == 8192 and net.time_grid("conv7").stride == 32768


def test_soundnet5_layer_shapes_for_20_s_are_the_reference_table():
    net = SoundNet(SOUNDNET5)
    layers, objects, scenes = _shapes(net)
    assert layers == SOUNDNET5_20S
    assert objects == (1, 4, 1000) and scenes == (1, 4, 401)
    assert parameter_count(net) == 6_202_137


def test_lite_keeps_the_geometry_and_runs_on_any_length():
    lite = soundnet_lite().eval()
    layers, _, _ = _shapes(lite)
    assert [(n, t) for n, _, t in layers] == [(n, t) for n, _, t in SOUNDNET8_20S]
    assert [c for _, c, _ in layers] == [c // 4 for _, c, _ in SOUNDNET8_20S]
    with torch.no_grad():
        assert lite.layer(torch.zeros(2, 5 * 22050), "conv7").shape == (2, 256, 4)  # a 5 s live window
        assert lite(torch.zeros(1, lite.min_samples()))[0].shape == (1, 1, 1000)


def test_too_short_or_misshapen_input_is_one_clear_error():
    net = soundnet_lite().eval()
    for bad, words in ((torch.zeros(1, 1000), "too short"), (torch.zeros(1, 1, 50000), "(batch, samples)"),
                       (torch.zeros(1, 100), "pool2")):
        try:
            net(bad)
        except ValueError as e:
            assert words in str(e) and "\n" not in str(e)
        else:
            raise AssertionError(f"no error for input {tuple(bad.shape)}")
    try:
        net.layer(torch.zeros(1, 50000), "conv9")
    except ValueError as e:
        assert "conv7" in str(e) and "'conv9'" in str(e)
