"""The SoundNet family: the two paper networks' layer shapes against REFERENCE.md §3, the
teacher cache, the teacher-student recipe on the world and on a video folder, export of a
SoundNet with a linear head as one ONNX labeler that avlive runs live, and the transfer app."""
from __future__ import annotations

import copy
import json
import re
import subprocess

import numpy as np
import pytest
import torch
from conftest import python_cmd, subprocess_env

from engines.onnxruntime_runner import OnnxRuntimeRunner
from models.export.onnx import export_onnx
from models.soundnet.classifiers import VGG, ResNet, classifier_from_state_dict
from models.soundnet.network import (
    SOUNDNET5,
    SOUNDNET8,
    SoundNet,
    parameter_count,
    soundnet_lite,
)
from models.soundnet.teacher import StateDictTeacher, build_teacher
from models.soundnet.transfer import Windows, load_linear_labeler
from models.world import BENCH, Scene, split_seed

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


# --- teacher-student recipe, export and live ------------------------------------------------

TINY_WORLD = ["train_scenes=1", "val_scenes=1", "scene_seconds=26", "epochs=2", "batch_size=2", "items_per_epoch=40",
              "num_workers=0",
              "threads=1", "gain_db=0"]


def _run(*args, cwd, timeout=900) -> subprocess.CompletedProcess:
    done = subprocess.run(python_cmd(*args), check=False, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _epoch_counters(stderr: str) -> list[dict[str, float]]:
    """The recipe's per-epoch lines: seconds, teacher forwards, frames, cache hits and misses."""
    pattern = (r"soundnet epoch (\d+): ([\d.]+) s, teacher forwards (\d+), frames rendered or decoded (\d+), "
               r"posterior cache hits (\d+) and misses (\d+)")
    keys = ("epoch", "seconds", "forwards", "frames", "hits", "misses")
    return [dict(zip(keys, map(float, m))) for m in re.findall(pattern, stderr)]


@pytest.fixture(scope="module")
def world_run(tmp_path_factory):
    """A soundnet-lite run on one world scene (2 epochs), its teacher cache and its stderr."""
    root = tmp_path_factory.mktemp("soundnet")
    cache = root / "teacher-cache"
    done = _run("-m", "models.train", "--recipe", "soundnet-lite", "--out", str(root / "run"), *TINY_WORLD,
                f"cache={cache}", cwd=root)
    return root, root / "run", cache, done.stderr


def test_teacher_runs_once_and_later_epochs_read_the_cache(world_run):
    root, run, cache, stderr = world_run
    first, second = _epoch_counters(stderr)
    # 26 s of each scene: 20 s crops at 0, 2.97 and 5.94 s -> 6 output steps, in each of the two scenes
    assert first["forwards"] == first["frames"] == 12 and first["misses"] == 2
    assert second["forwards"] == second["frames"] == second["misses"] == 0 and second["seconds"] > 0
    assert len(list((cache / "efficientnet-lite0").glob("*.npz"))) == 2
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in log if r["kind"] == "eval"]
    assert [r["teacher_forwards"] for r in evals] == [12, 0] and all(r["kl"] > 0 for r in evals)
    assert (run / "curve.png").is_file()
    # a new run with the same cache: no frame rendered and no teacher run, even in its first epoch
    again = _run("-m", "models.train", "--recipe", "soundnet-lite", "--out", str(root / "again"), *TINY_WORLD,
                 "epochs=1", f"cache={cache}", cwd=root)
    (only,) = _epoch_counters(again.stderr)
    assert only["forwards"] == only["frames"] == 0 and only["hits"] == 2


def test_teacher_student_trains_on_a_video_folder(tmp_path):
    from models.datasets.from_world import write_video_folder_world

    folder = write_video_folder_world(tmp_path / "videos", [split_seed("train", 0), split_seed("val", 0)],
                                      clip_seconds=6.0, sample_rate=22050)
    done = _run("-m", "models.train", "--recipe", "soundnet-lite", "--out", str(tmp_path / "run"), "--data",
                str(folder.root), "epochs=2", "batch_size=2", "num_workers=0", "threads=1",
                f"cache={tmp_path / 'cache'}", cwd=tmp_path)
    first, second = _epoch_counters(done.stderr)
    # two 6 s videos, each tiled to one 20 s crop of 4 steps; every frame of both decoded once
    assert first["forwards"] == 8 and first["frames"] >= 2 * 6 * 30 - 2 and first["misses"] == 2
    assert second["forwards"] == second["frames"] == 0


def test_run_exports_and_runs_live(world_run):
    root, run, _, _ = world_run
    done = _run("-m", "models.export", str(run), cwd=root)
    assert "max |Δ|" in done.stdout
    meta = json.loads((run / "model.onnx.json").read_text())
    assert meta["family"] == "soundnet" and len(meta["labels"]) == 1000 and meta["sample_rate"] == 22050
    out = root / "live.jsonl"
    _run("-m", "apps.avlive", "--source", "synthetic:200000", "--duration", "12", "--no-realtime", "--headless",
         "--threads", "1", "--labeler", str(run / "model.onnx"), "--localizer", "none", "--jsonl", str(out), cwd=root)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 10 and lines[-1]["top"] and 0.0 <= lines[-1]["top"][0]["score"] <= 1.0


# --- linear transfer -------------------------------------------------------------------------

def test_windows_tile_short_clips_and_end_at_the_clip_end():
    w = Windows(seconds=1.0, hop_seconds=0.4)
    assert w.cut(np.arange(22050 * 2, dtype=np.float32)).shape == (4, 22050)  # starts 0, 0.4, 0.8, 1.0 s
    short = w.cut(np.arange(1000, dtype=np.float32))
    assert short.shape == (1, 22050) and short[0, 1000] == 0 and short[0, 2999] == 999


def test_linear_labeler_file_exports_matches_torch_and_runs_live(world_run, tmp_path):
    """apps.transfer on a world ESC-50 folder writes the labeler; ONNX Runtime agrees with PyTorch on
    real audio; avlive runs it on the synthetic source and on a video file."""
    from models.datasets.from_world import write_esc50_world
    from models.io.media import write_av_file

    _, run, _, _ = world_run
    esc = write_esc50_world(tmp_path / "esc", range(5), clips_per_seed=2, clip_seconds=3.0)
    labeler = tmp_path / "esc-conv7.pt"
    done = _run("-m", "apps.transfer", str(run), "--data", str(esc.root), "--layer", "conv7,pool5", "--threads", "1",
                "--C", "0.1", "--supervised-epochs", "1", "--write-labeler", str(labeler), cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert any(line.startswith("soundnet conv7") for line in lines) and any(line.startswith("log-mel") for line in lines)
    assert any(line.startswith("supervised conv7 (1 ep)") for line in lines)
    assert "10 clips" in done.stdout and labeler.is_file()

    model = load_linear_labeler(labeler)
    onnx = tmp_path / "esc.onnx"
    report = export_onnx(model.module, model.metadata, model.example_inputs, onnx, dynamic_axes=model.dynamic_axes)
    audio = Scene(BENCH, 200000).render_audio(0, model.metadata.inputs[0].shape[1], 22050)[None].astype(np.float32)
    with torch.no_grad():
        expected = model.module(torch.from_numpy(audio)).numpy()
        exact = copy.deepcopy(model.module).double()(torch.from_numpy(audio).double()).numpy()
    with OnnxRuntimeRunner(onnx, threads=1) as runner:
        got = runner.infer({"audio": audio})["probs"]
    # float32 rounding alone moves these probabilities by `spread` (PyTorch float32 against float64);
    # ONNX Runtime rounds in another order (measured: ONNX Runtime vs PyTorch 7.0e-6, spread 2.3e-6,
    # i.e. 3 spreads), so it must stay within 10 spreads of PyTorch; the 1e-7 floor is about two
    # float32 ulps at 1.0 (6e-8), for a spread that happens to round to nothing
    spread = float(np.abs(expected - exact).max())
    np.testing.assert_allclose(got, expected, atol=10 * spread + 1e-7)
    assert report.metadata.labels == model.metadata.labels

    video = tmp_path / "scene.mp4"
    scene = Scene(BENCH, 200001)
    write_av_file(video, (scene.render_frame(i)[0] for i in range(150)), scene.render_audio(0, 5 * 22050, 22050),
                  fps=30, sample_rate=22050)
    for source in ("synthetic:200000", str(video)):
        out = tmp_path / "live.jsonl"
        _run("-m", "apps.avlive", "--source", source, "--duration", "4", "--no-realtime", "--headless", "--threads",
             "1", "--labeler", str(labeler), "--localizer", "none", "--jsonl", str(out), cwd=tmp_path)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) >= 3 and all(r["top"] for r in lines)
        assert {t["label"] for r in lines for t in r["top"]} <= set(model.metadata.labels)


# --- a teacher from a user's ResNet/VGG weights file -----------------------------------------

def test_torchvision_layouts_have_torchvision_sizes_and_keys():
    # torchvision's resnet18 / resnet50 / vgg11: 122 / 320 / 22 state-dict entries and
    # 11,689,512 / 25,557,032 / 132,863,336 parameters (their published sizes)
    r18, r50 = ResNet((2, 2, 2, 2), False, 1000), ResNet((3, 4, 6, 3), True, 1000)
    vgg11 = VGG([(3, 64, True), (64, 128, True), (128, 256, False), (256, 256, True), (256, 512, False),
                 (512, 512, True), (512, 512, False), (512, 512, True)], False, 4096, 1000)
    for net, entries, params in ((r18, 122, 11_689_512), (r50, 320, 25_557_032), (vgg11, 22, 132_863_336)):
        assert len(net.state_dict()) == entries and parameter_count(net) == params
    assert {"layer2.0.downsample.0.weight", "layer4.1.bn2.running_var", "fc.bias"} <= set(r18.state_dict())
    assert {"features.3.weight", "features.18.bias", "classifier.6.weight"} <= set(vgg11.state_dict())
    for net, name in ((r18, "resnet18"), (r50, "resnet50"), (vgg11, "vgg11")):
        rebuilt, found = classifier_from_state_dict(net.state_dict())
        assert found == name and type(rebuilt) is type(net)


def test_a_weights_file_teaches_the_student(tmp_path):
    torch.manual_seed(0)
    teacher_net = ResNet((1, 1, 1, 1), False, 5)  # a 5-class ResNet-10 in torchvision's layout
    path = tmp_path / "teacher.pth"
    torch.save({"state_dict": teacher_net.state_dict()}, path)
    teacher = StateDictTeacher(path)
    frames = np.stack([Scene(BENCH, 200000).render_frame(i)[0] for i in (0, 30)])
    post = teacher.posteriors(frames)
    assert teacher.name.startswith("resnet10-") and teacher.labels == tuple(f"class {k}" for k in range(5))
    # float32 softmax over 5 classes: the sums measured exactly 1.0 here (worst-case rounding of a
    # 5-term float32 sum is ~3e-7); 1e-5 only says "a distribution", not the softmax's precision
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-5)
    scene_path = tmp_path / "scenes.pth"
    torch.save(ResNet((1, 1, 1, 1), False, 3).state_dict(), scene_path)  # a 3-class "scene" teacher
    done = _run("-m", "models.train", "--recipe", "soundnet-lite", "--out", str(tmp_path / "run"), *TINY_WORLD,
                "epochs=1", "items_per_epoch=4", f"teacher={path}", f"scene_teacher={scene_path}",
                f"cache={tmp_path / 'cache'}", cwd=tmp_path)
    (first,) = _epoch_counters(done.stderr)
    assert first["forwards"] == 2 * 12 and first["frames"] == 2 * 12  # each teacher once per output step
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["labels"] == list(teacher.labels) and meta["outputs"][0]["shape"] == ["batch", 5]
    assert meta["extra"]["scene_labels"] == ["class 0", "class 1", "class 2"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert state["objects.weight"].shape[0] == 5 and state["scenes.weight"].shape[0] == 3
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert evals[-1]["scene_kl"] > 0
    try:
        build_teacher(str(tmp_path / "missing.pth"))
    except ValueError as e:
        assert "no such weights file" in str(e)


def test_transfer_reads_a_dcase_scene_folder_with_folds_by_location(tmp_path):
    """A TAU-layout scene folder (meta.csv: filename, scene_label, identifier): folds keep each
    recording location on one side, and apps.transfer runs on it."""
    import soundfile

    from apps.transfer import read_scene_folder

    audio_dir = tmp_path / "scenes" / "audio"
    audio_dir.mkdir(parents=True)
    rows = ["filename\tscene_label\tidentifier\tsource_label"]
    for k, seed in enumerate(range(200000, 200008)):  # 8 locations, 2 clips each, two "scenes"
        sound = Scene(BENCH, seed).render_audio(0, 2 * 22050, 22050)
        for take in range(2):
            name = f"audio/{'park' if k % 2 else 'street'}-loc{k}-{take}.wav"
            soundfile.write(tmp_path / "scenes" / name, sound[take * 22050:(take + 1) * 22050], 22050, subtype="PCM_16")
            rows.append(f"{name}\t{'park' if k % 2 else 'street'}\tloc{k}\ta")
    (tmp_path / "scenes" / "meta.csv").write_text("\n".join(rows) + "\n")
    clips, targets, folds, names = read_scene_folder(tmp_path / "scenes", 4)
    assert names == ["park", "street"] and len(clips) == 16 and sorted(set(folds.tolist())) == [1, 2, 3, 4]
    location = [r.split("\t")[2] for r in rows[1:]]
    assert all(len({f for f, p in zip(folds, location) if p == place}) == 1 for place in set(location))
    done = _run("-m", "apps.transfer", "soundnet-lite", "--data", str(tmp_path / "scenes"), "--layer", "pool5",
                "--threads", "1", "--C", "0.1", cwd=tmp_path)
    assert "2 classes, 16 clips" in done.stdout and any(line.startswith("log-mel") for line in done.stdout.splitlines())
