"""Reference ``.pyth`` checkpoints: a fixture built here from the key grammar of
shared/REFERENCE.md 1.5 and saved with plain ``torch.save`` (not avlive's saver) loads, re-saves
to the same tensors, refuses mismatches and pickled code; label files; the live factory."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from models.families import NETWORKS
from models.datasets.formats.epic_sounds import read_epic_sounds
from models.datasets.formats.vggsound import read_vggsound_stat
from models.core.live import Labeler
from realtime.models import inspect_model, open_model
from models.slowfast.pyth import (CheckpointMismatch, UnsafeCheckpointError, build_model, infer_variant,
                                        labels_for, load_labels, load_state, read_pyth, save_pyth)

from test_slowfast import random_state, reference_shapes  # tests/ is on sys.path (rootdir-relative import)

DATA = Path(__file__).parent / "data" / "real"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class NotAllowed:
    """A class a weights-only load must refuse to rebuild."""

    def __init__(self) -> None:
        self.payload = "would run on unpickling"


def sgd_state(num_params: int = 3) -> dict:
    """A real ``torch.optim.SGD`` state dict (momentum buffers after one step)."""
    params = [torch.nn.Parameter(torch.randn(4, 3)) for _ in range(num_params)]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    sum(p.square().sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


def reference_cfg_yaml(arch: str, heads: tuple[int, ...], sample_rate: int, frames: int) -> str:
    """A cfg.dump()-style YAML string with the reference's keys."""
    return yaml.safe_dump({
        "MODEL": {"ARCH": arch, "MODEL_NAME": "SlowFast" if arch == "slowfast" else "ResNet",
                  "NUM_CLASSES": list(heads), "DROPOUT_RATE": 0.5},
        "AUDIO_DATA": {"SAMPLING_RATE": sample_rate, "NUM_FRAMES": frames, "CLIP_SECS": 5.119},
        "SLOWFAST": {"ALPHA": 4, "BETA_INV": 8, "FUSION_CONV_CHANNEL_RATIO": 2, "FUSION_KERNEL_SZ": 7},
        "RESNET": {"DEPTH": 50, "WIDTH_PER_GROUP": 64},
    })


def write_reference_pyth(path: Path, arch: str = "slowfast", heads: tuple[int, ...] = (309,), width: int = 64,
                         blocks: tuple[int, ...] = (3, 4, 6, 3), prefix: str = "", seed: int = 0,
                         extra: dict | None = None) -> "OrderedDict[str, torch.Tensor]":
    """Save a reference-layout .pyth with plain torch.save; return its model_state."""
    state = random_state(reference_shapes(arch, heads, width, blocks), seed)
    data = {"epoch": 49, "model_state": OrderedDict((prefix + k, v) for k, v in state.items()),
            "optimizer_state": sgd_state(), "cfg": reference_cfg_yaml(arch, heads, 16000, 512)}
    data.update(extra or {})
    torch.save(data, path)
    return state


@pytest.fixture(scope="module")
def vgg_pyth(tmp_path_factory):
    """A full-size SlowFast VGG-Sound .pyth (309 classes, 662 tensors)."""
    path = tmp_path_factory.mktemp("pyth") / "SLOWFAST_VGG.pyth"
    state = write_reference_pyth(path)
    return path, state


def test_reference_file_loads(vgg_pyth, tmp_path):
    path, state = vgg_pyth
    ckpt = read_pyth(path)
    assert ckpt.epoch == 49 and ckpt.cfg_dict["MODEL"]["NUM_CLASSES"] == [309]
    assert list(ckpt.model_state) == list(state) and len(state) == 662
    assert ckpt.optimizer_state["param_groups"][0]["momentum"] == 0.9
    v = ckpt.variant
    assert (v.arch, v.num_classes, v.width, v.depth, v.blocks, v.dataset) == \
        ("slowfast", (309,), 64, 50, (3, 4, 6, 3), "vggsound")
    model = build_model(ckpt)
    assert not model.training and model.config.num_frames == 512
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_resave_round_trip(vgg_pyth, tmp_path):
    path, state = vgg_pyth
    model = build_model(path)
    out = save_pyth(tmp_path / "copy.pyth", model, epoch=7, optimizer_state=sgd_state())
    raw = torch.load(out, map_location="cpu", weights_only=True)  # the layout itself, read plainly
    assert set(raw) == {"epoch", "model_state", "optimizer_state", "cfg"} and raw["epoch"] == 7
    assert list(raw["model_state"]) == list(state)
    for key, value in state.items():
        assert torch.equal(raw["model_state"][key], value), key
    cfg = yaml.safe_load(raw["cfg"])
    assert cfg["MODEL"]["NUM_CLASSES"] == [309] and cfg["MODEL"]["ARCH"] == "slowfast"
    assert cfg["AUDIO_DATA"]["SAMPLING_RATE"] == 16000 and cfg["AUDIO_DATA"]["NUM_FRAMES"] == 512
    assert cfg["SLOWFAST"]["ALPHA"] == 4 and cfg["AVLIVE"]["frontend"]["hop_length"] == 160
    assert read_pyth(out).variant == read_pyth(path).variant
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic write left nothing behind


def test_ddp_prefix_is_stripped(tmp_path):
    path = tmp_path / "ddp.pyth"
    state = write_reference_pyth(path, heads=(44,), width=8, blocks=(1, 1, 1, 1), prefix="module.")
    ckpt = read_pyth(path)
    assert all(not k.startswith("module.") for k in ckpt.model_state)
    model = build_model(ckpt)
    assert model.config.num_classes == (44,) and model.config.blocks == (1, 1, 1, 1)
    assert torch.equal(model.state_dict()["head.projection.weight"], state["head.projection.weight"])


def test_head_mismatch_and_finetune(vgg_pyth):
    path, state = vgg_pyth
    ckpt = read_pyth(path)
    model = NETWORKS.create("slowfast-epicsounds")
    with pytest.raises(CheckpointMismatch, match="head.projection: checkpoint has 309 classes, model expects 44 classes"):
        load_state(model, ckpt.model_state)
    epic100 = NETWORKS.create("slowfast-epic100")
    with pytest.raises(CheckpointMismatch, match=r"checkpoint has 309 classes, model expects verb\+noun heads of 97\+300"):
        load_state(epic100, ckpt.model_state)

    torch.manual_seed(0)
    report = load_state(model, ckpt.model_state, finetune=True)
    assert set(report.reinitialised) == {"head.projection.weight", "head.projection.bias"}
    sd = model.state_dict()
    for key in ("s1.pathway0_stem.conv.weight", "s3_fuse.bn.running_var", "s5.pathway1_res2.branch2.c_bn.weight"):
        assert torch.equal(sd[key], state[key])
    assert sd["head.projection.weight"].shape == (44, 2304) and torch.all(sd["head.projection.bias"] == 0)
    assert sd["head.projection.weight"].std().item() == pytest.approx(0.01, rel=0.1)


def test_other_mismatches_name_the_keys(tmp_path):
    state = random_state(reference_shapes("slowfast", (5,), 8, (1, 1, 1, 1)), seed=3)
    model = NETWORKS.create("slowfast-test")
    load_state(model, state)  # the grammar at width 8 fits the tiny preset exactly
    missing = OrderedDict((k, v) for k, v in state.items() if k != "s3_fuse.bn.running_mean")
    with pytest.raises(CheckpointMismatch, match=r"missing: s3_fuse.bn.running_mean"):
        load_state(model, missing)
    extra = OrderedDict(state, **{"s2.pathway0_res0.branch2.d.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatch, match=r"unexpected: s2.pathway0_res0.branch2.d.weight"):
        load_state(model, extra)
    bad = OrderedDict(state)
    bad["s2_fuse.conv_f2s.weight"] = torch.zeros(8, 4, 5, 1)
    with pytest.raises(CheckpointMismatch, match=r"shape mismatch: s2_fuse.conv_f2s.weight \(checkpoint \(8, 4, 5, 1\)"):
        load_state(model, bad)


def test_pickled_class_is_refused(tmp_path):
    path = tmp_path / "unsafe.pyth"
    write_reference_pyth(path, heads=(5,), width=8, blocks=(1, 1, 1, 1), extra={"cfg": NotAllowed()})
    with pytest.raises(UnsafeCheckpointError) as err:
        read_pyth(path)
    message = str(err.value)
    assert "NotAllowed" in message and "trust" in message and "re-save" in message
    with pytest.raises(FileNotFoundError):
        read_pyth(tmp_path / "absent.pyth")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointMismatch, match="expected a .pyth dict"):
        read_pyth(tmp_path / "other.pt")


@pytest.mark.parametrize("arch,heads,width,expected_width,frames", [
    ("slow", (309,), 64, 64, 128), ("fast", (97, 300), 8, 64, 400), ("slowfast", (97, 300), 64, 64, 400)])
def test_infer_variant(arch, heads, width, expected_width, frames):
    shapes = reference_shapes(arch, heads, width)
    state = OrderedDict((k, torch.empty(s)) for k, s in shapes.items())
    v = infer_variant(state)
    assert (v.arch, v.num_classes, v.width, v.depth) == (arch, heads, expected_width, 50)
    cfg = v.config()
    assert cfg.arch == arch and cfg.num_frames == frames  # the dataset's clip for this pathway
    with pytest.raises(CheckpointMismatch, match="not a Slow-Fast state dict"):
        infer_variant({"conv.weight": torch.zeros(1)})


def test_label_files():
    verbs, nouns = load_labels("epic100_verbs"), load_labels("epic100_nouns")
    vgg, sounds = load_labels("vggsound"), load_labels("epic_sounds")
    assert (len(verbs), len(nouns), len(vgg), len(sounds)) == (97, 300, 309, 44)
    assert verbs[:4] == ("take", "put", "wash", "open") and verbs[96] == "unfreeze"
    assert nouns[:3] == ("tap", "spoon", "plate") and nouns[299] == "extract:vanilla"
    assert vgg == tuple(sorted(c.label for c in read_vggsound_stat(DATA / "stat.csv")))
    assert vgg[0] == "air conditioning noise" and "bird chirping, tweeting" in vgg
    assert sounds[0] == "metal-only collision" and sounds[13] == "background" and sounds[41] == "spray"
    assert sounds[27] == "plastic / wood collision" and sounds[43] == "drink / eat"
    for seg in read_epic_sounds(DATA / "EPIC_Sounds_validation.csv"):  # the 26 classes of the slice agree
        assert sounds[seg.class_id] == seg.class_name
    assert len(set(sounds)) == 44 and len(set(vgg)) == 309
    assert labels_for((97, 300))[0] == "verb:take" and labels_for((97, 300))[97] == "noun:tap"
    with pytest.raises(ValueError, match="pass the labels explicitly"):
        labels_for((12,))


def test_pyth_opens_live_with_torch_and_onnxruntime(tmp_path):
    """A .pyth file is a live labeler in one step: torch runs it directly, onnxruntime through an
    export cached beside it (made once, reused), and both give the same scores."""
    path = tmp_path / "SLOWFAST_EPIC_SOUNDS_tiny.pyth"
    write_reference_pyth(path, heads=(44,), width=8, blocks=(1, 1, 1, 1))
    source = inspect_model(path)
    assert source.kind == "slowfast-pyth" and source.task == "labeler"
    audio = np.random.default_rng(0).standard_normal(47_975).astype(np.float32)
    scores = {}
    for backend in ("torch", "onnxruntime"):
        live = open_model(source, "labeler", backend=backend, threads=1)
        try:
            labeler = live.model
            assert isinstance(labeler, Labeler) and labeler.labels == load_labels("epic_sounds")
            assert labeler.window.sample_rate == 24_000 and labeler.window.samples == 47_975
            scores[backend] = labeler(audio)
        finally:
            live.close()
        assert scores[backend].shape == (44,) and scores[backend].dtype == np.float32
        assert scores[backend].sum() == pytest.approx(1, abs=1e-5)
    cached = sorted((tmp_path / ".avlive-cache").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].with_suffix(".onnx.json").is_file()
    # the export's own verification bound (models.export.onnx: 1e-4 + 1e-4 * |value|)
    np.testing.assert_allclose(scores["onnxruntime"], scores["torch"], rtol=1e-4, atol=1e-4)
    mtime = cached[0].stat().st_mtime_ns
    open_model(source, "labeler", backend="onnxruntime", threads=1).close()
    assert cached[0].stat().st_mtime_ns == mtime  # reused, not exported again
