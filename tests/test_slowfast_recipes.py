"""models.slowfast.recipes and models.audio.specaugment: the reference Slow-Fast recipes train for two
steps and evaluate multi-view on world data written in each dataset's own layout; EPIC-100 with
both heads, fine-tuned from a .pyth with frozen BN statistics; SpecAugment's sampling."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.datasets.from_world import WORLD_NOUNS, WORLD_VERBS, write_epic_world, write_vggsound_world
from models.slowfast.network import EPIC_CLIP, VGGSOUND_CLIP, SlowFast, SlowFastConfig
from models.slowfast.pyth import CheckpointMismatch, save_pyth
from models.slowfast.clips import clip_start
from models.slowfast.epic import Epic100Recipe, EpicSoundsRecipe
from models.slowfast.recipes import UNFROZEN_BN
from models.slowfast.vggsound import VggSoundRecipe
from models.audio.specaugment import SpecAugmentConfig, spec_augment, time_warp
from models.core.checkpoint import load_checkpoint
from models.core.train_config import apply_overrides
from models.train.loop import train
from models.world import CLASS_NAMES, TINY, split_seed

TRAIN = [split_seed("train", i) for i in range(2)]
VAL = [split_seed("val", 0)]
TEST = [split_seed("test", 0)]
# Tiny network, two steps, one thread; the world's EPIC class csvs list 10 verbs and 12 nouns.
COMMON = ["max_steps=2", "num_workers=0", "threads=1", "width=8", "blocks=1,1,1,1", "batch_size=2"]
WORLD_EPIC100 = [f"num_verbs={len(WORLD_VERBS)}", f"num_nouns={len(WORLD_NOUNS)}"]
TINY_BODY = dict(width=8, blocks=(1, 1, 1, 1))


def _recipe(cls, *overrides: str):
    return cls(apply_overrides(cls.config_class(), [*COMMON, *overrides]))


def _train(recipe, out: Path, data: Path):
    """Train; returns (figures, the losses of every step, the datasets the recipe built)."""
    losses: list[float] = []
    built: dict = {}
    loss_fn, build = recipe.loss, recipe.build_datasets

    def recording_loss(model, batch):
        value = loss_fn(model, batch)
        losses.append(float(value.detach()))
        return value

    def recording_build(data):
        built["sets"] = build(data)
        return built["sets"]

    recipe.loss, recipe.build_datasets = recording_loss, recording_build
    figures = train(recipe, out, data=data, argv=["pytest"])
    return figures, losses, built["sets"]


def _check_run(out: Path, figures: dict, losses: list[float], primary: str) -> dict:
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "checkpoints" / "best.pt").is_file()
    assert math.isfinite(figures[primary])
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["train_state"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model_state"].values() if v.is_floating_point())
    return state


def _tiny_vgg_pyth(path: Path, seed: int = 1) -> SlowFast:
    """A tiny VGG-shaped (309-class, 512-frame) network with non-trivial BN statistics, as .pyth."""
    torch.manual_seed(seed)
    model = SlowFast(SlowFastConfig(num_classes=(309,), num_frames=512, **TINY_BODY))
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            m.num_batches_tracked.fill_(123)
            m.weight.data.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=gen))
    save_pyth(path, model, epoch=49)
    return model


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (the machine is shared); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def vgg_root(tmp_path_factory) -> Path:
    """VGG-Sound layout: 4 train + 2 test mp4 clips of 6 s (longer than the 5.119 s clip)."""
    world = write_vggsound_world(tmp_path_factory.mktemp("vggsound"), TRAIN + TEST, clips_per_seed=2, clip_seconds=6,
                                 preset=TINY, search_seconds=300)
    assert sum(c.split == "train" for c in world.clips) == 4
    return world.root


@pytest.fixture(scope="module")
def epic(tmp_path_factory):
    """EPIC-100 + EPIC-SOUNDS layout: two 12 s train videos and one validation video, one HDF5."""
    world = write_epic_world(tmp_path_factory.mktemp("epic"), TRAIN + VAL, video_seconds=12.0, preset=TINY)
    train_ids = {v.video_id for v in world.videos if v.split == "train"}
    assert sum(n.video_id in train_ids for n in world.narrations) >= 4
    return world


# ------------------------------------------------------------------------------------------ SpecAugment


def test_specaugment_limits_mean_and_determinism():
    spec = torch.randn(1, 400, 128, generator=torch.Generator().manual_seed(0)) - 5.0
    seen_warp = seen_masks = 0
    for seed in range(40):
        out, params = spec_augment(spec, np.random.default_rng([seed, 3, 7]), return_params=True)
        assert out.shape == spec.shape
        again, params2 = spec_augment(spec, np.random.default_rng([seed, 3, 7]), return_params=True)
        assert torch.equal(out, again) and params == params2  # deterministic per seed
        warped = spec
        if params.warp_centre is not None and params.warp_shift:
            seen_warp += 1
            assert 5 <= params.warp_centre < 395 and -5 <= params.warp_shift < 5
            warped = time_warp(spec, params.warp_centre, params.warp_shift)
        kinds = [m.axis for m in params.masks]
        assert kinds == sorted(kinds)  # frequency masks first ("freq" < "time")
        assert kinds.count("freq") <= 2 and kinds.count("time") <= 2
        for i, m in enumerate(params.masks):
            limit, size = (27, 128) if m.axis == "freq" else (25, 400)
            assert 0 <= m.start <= m.stop <= size and m.width < limit
            cells = out[0, :, m.start:m.stop] if m.axis == "freq" else out[0, m.start:m.stop, :]
            later = params.masks[i + 1:]
            if m.width and not later:
                assert torch.all(cells == m.value)  # the last mask is intact
            if m.width:
                seen_masks += 1
        if params.masks:  # the first mask's value is the mean of the (warped) spectrogram
            assert params.masks[0].value == pytest.approx(float(warped.mean()), rel=1e-5)
        # cells outside every mask are the warped spectrogram's
        keep = torch.ones(400, 128, dtype=torch.bool)
        for m in params.masks:
            if m.axis == "freq":
                keep[:, m.start:m.stop] = False
            else:
                keep[m.start:m.stop, :] = False
        assert torch.allclose(out[0][keep], warped[0][keep])
    assert seen_warp > 20 and seen_masks > 60
    a = spec_augment(spec, np.random.default_rng(1))
    b = spec_augment(spec, np.random.default_rng(2))
    assert not torch.equal(a, b)
    off = spec_augment(spec, np.random.default_rng(1), SpecAugmentConfig(time_warp=0, freq_masks=0, time_masks=0))
    assert torch.equal(off, spec)


def test_time_warp_moves_centre_and_keeps_ends():
    spec = torch.arange(50 * 3, dtype=torch.float64).reshape(1, 50, 3)
    for centre, shift in ((20, 4), (20, -5), (6, -5), (44, 4)):
        out = time_warp(spec, centre, shift)
        assert torch.equal(out[0, centre + shift], spec[0, centre])
        assert torch.equal(out[0, 0], spec[0, 0]) and torch.equal(out[0, -1], spec[0, -1])
        assert torch.all(out[0, 1:, 0] >= out[0, :-1, 0])  # monotone resampling of time
    with pytest.raises(ValueError, match="centre"):
        time_warp(spec, 0, 1)


# ------------------------------------------------------------------------------------------ pieces


def test_clip_starts_follow_the_reference():
    clip = EPIC_CLIP  # 47 975 samples used; the reference's clip size is 47 976
    assert clip_start(30_000, clip, view=3, views=10) == 0  # short: used whole
    n = 47_976 + 900
    starts = [clip_start(n, clip, view=k, views=10) for k in range(10)]
    assert starts == [int(x) for x in np.linspace(0, 900, 10)] and starts[-1] == 900
    rng = np.random.default_rng(0)
    assert all(0 <= clip_start(n, clip, rng=rng) <= 900 for _ in range(50))
    assert VGGSOUND_CLIP.clip_samples == 81_903 and VGGSOUND_CLIP.num_frames == 512


def test_step_schedule_and_sgd_groups():
    recipe = _recipe(VggSoundRecipe, "num_classes=12")
    factor = recipe.lr_lambda(steps_per_epoch=10, total_steps=500)
    assert [factor(s) for s in (0, 299, 300, 399, 400, 499)] == [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    epic = Epic100Recipe(Epic100Recipe.config_class()).lr_lambda(10, 300)
    assert [epic(s) for s in (199, 200, 250)] == [1.0, 0.1, 0.01]
    model = recipe.build_model()
    opt = recipe.build_optimizer(model)
    assert isinstance(opt, torch.optim.SGD)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert decay["nesterov"] and decay["momentum"] == 0.9 and decay["lr"] == 0.01
    bn_params = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert {id(p) for p in no_decay["params"]} == bn_params
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="lr_steps"):
        apply_overrides(recipe.config, ["lr_steps=5,10"]).validate()


def test_finetune_init_reinitialises_the_head(tmp_path):
    source = _tiny_vgg_pyth(tmp_path / "vgg.pyth")
    recipe = _recipe(VggSoundRecipe, "num_classes=12", f"init_checkpoint={tmp_path / 'vgg.pyth'}")
    model = recipe.build_model()
    recipe.build_optimizer(model)  # the trainer's entry point: loads init_checkpoint
    got, want = model.state_dict(), source.state_dict()
    body = [k for k in want if not k.startswith("head.")]
    assert body and all(torch.equal(got[k], want[k]) for k in body)
    w = model.head.projection.weight
    assert w.shape == (12, source.config.feature_dim) and torch.all(model.head.projection.bias == 0)
    assert 0.005 < float(w.detach().std()) < 0.02  # N(0, 0.01), fresh
    # a same-size head is re-initialised too
    same = _recipe(VggSoundRecipe, "num_classes=309", f"init_checkpoint={tmp_path / 'vgg.pyth'}")
    m309 = same.build_model()
    same.load_init_checkpoint(m309)
    assert not torch.equal(m309.head.projection.weight, source.head.projection.weight)
    wide = _recipe(VggSoundRecipe, "num_classes=12", "width=16", f"init_checkpoint={tmp_path / 'vgg.pyth'}")
    with pytest.raises(CheckpointMismatch, match="width 8"):
        wide.build_optimizer(wide.build_model())


# ------------------------------------------------------------------------------------------ VGG-Sound


def test_vggsound_trains_and_evaluates_two_views(vgg_root, tmp_path):
    recipe = _recipe(VggSoundRecipe, "num_classes=12", "decode_workers=1")
    figures, losses, (train_set, val_set) = _train(recipe, tmp_path / "run", vgg_root)
    _check_run(tmp_path / "run", figures, losses, "top1")
    assert set(figures) == {"top1", "top5", "mAP", "AUC", "dprime", "views", "items"}
    # validation is carved from train.csv's 4 clips by YouTube id; test.csv's 2 clips stay unseen
    assert figures["views"] == 2 and figures["items"] == len(val_set) >= 1
    assert len(train_set) + len(val_set) == 4
    assert 0 <= figures["top1"] <= figures["top5"] <= 1
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["family"] == "slowfast" and meta["labels"] == sorted(CLASS_NAMES)  # stat.csv, sorted
    assert meta["sample_rate"] == 16_000 and meta["window_seconds"] == pytest.approx(81_903 / 16_000)
    assert meta["frontend"]["hop_length"] == 160 and meta["frontend"]["n_fft"] == 2048
    assert meta["inputs"][0]["shape"] == ["batch", 81_903] and meta["outputs"][0]["shape"] == ["batch", 12]
    # items: a random 512-frame clip per (epoch, index), augmented; two distinct test views
    a, b = train_set[(0, 1)], train_set[(1, 1)]
    assert a["spec"].shape == (1, 512, 128) and torch.equal(a["spec"], train_set[(0, 1)]["spec"])
    assert not torch.equal(a["spec"], b["spec"])
    views = val_set[0]["spec"]
    assert views.shape == (2, 1, 512, 128) and not torch.equal(views[0], views[1])  # 6 s files: delta > 0
    # export module: waveform in, probabilities out
    model = recipe.build_model()
    module, example, axes = recipe.export_module(model)
    with torch.no_grad():
        probs = module(example["audio"])
    assert probs.shape == (2, 12) and torch.allclose(probs.sum(1), torch.ones(2), atol=1e-5)
    assert axes == {"audio": {0: "batch"}}


def test_vggsound_errors_name_the_missing_pieces(vgg_root, tmp_path):
    recipe = _recipe(VggSoundRecipe)
    with pytest.raises(ValueError, match="needs --data"):
        recipe.build_datasets(None)
    with pytest.raises(FileNotFoundError, match=r"train\.csv.*test\.csv"):
        recipe.build_datasets(tmp_path)
    (tmp_path / "train.csv").write_bytes((vgg_root / "train.csv").read_bytes())
    (tmp_path / "test.csv").write_bytes((vgg_root / "test.csv").read_bytes())
    (tmp_path / "stat.csv").write_bytes((vgg_root / "stat.csv").read_bytes())
    with pytest.raises(ValueError, match="pass num_classes=12"):
        recipe.build_datasets(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no clip .*\.wav or .*\.mp4"):
        _recipe(VggSoundRecipe, "num_classes=12").build_datasets(tmp_path)


# ------------------------------------------------------------------------------------------ EPIC-100


def test_epic100_finetunes_with_frozen_bn_and_two_heads(epic, tmp_path):
    source = _tiny_vgg_pyth(tmp_path / "vgg.pyth").state_dict()
    recipe = _recipe(Epic100Recipe, *WORLD_EPIC100, f"init_checkpoint={tmp_path / 'vgg.pyth'}")
    figures, losses, (train_set, val_set) = _train(recipe, tmp_path / "run", epic.root)
    state = _check_run(tmp_path / "run", figures, losses, "action_top1")
    assert set(figures) == {f"{t}_top{k}" for t in ("verb", "noun", "action") for k in (1, 5)} | {"views", "items"}
    assert figures["views"] == 10 and figures["items"] == len(val_set) > 0
    assert figures["action_top1"] <= min(figures["verb_top1"], figures["noun_top1"])
    trained = state["model_state"]
    bn = sorted({k.rsplit(".", 1)[0] for k in trained if k.endswith("running_mean")})
    frozen = [n for n in bn if n not in UNFROZEN_BN]
    assert set(UNFROZEN_BN) <= set(bn) and len(frozen) > 10
    for name in frozen:  # statistics untouched: still the .pyth's
        for stat in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(trained[f"{name}.{stat}"], source[f"{name}.{stat}"]), f"{name}.{stat} changed"
    for name in UNFROZEN_BN:  # the stems and the first lateral keep learning statistics
        assert not torch.equal(trained[f"{name}.running_mean"], source[f"{name}.running_mean"])
        assert int(trained[f"{name}.num_batches_tracked"]) == 123 + 2
    # frozen layers' affine parameters still train; the body started from the checkpoint
    name = frozen[0]
    assert not torch.equal(trained[f"{name}.weight"], source[f"{name}.weight"])
    conv = "s2.pathway0_res0.branch2.a.weight"
    assert (trained[conv] - source[conv]).abs().max() < 0.05
    assert trained["head.projection_verb.weight"].shape[0] == len(WORLD_VERBS)
    assert trained["head.projection_noun.weight"].shape[0] == len(WORLD_NOUNS)

    model = recipe.build_model()
    model.load_state_dict(trained)
    recipe.set_train_mode(model)
    modes = {n: m.training for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert model.training and all(modes[n] for n in UNFROZEN_BN) and not any(modes[n] for n in frozen)
    model.eval()
    with torch.no_grad():
        verb, noun = model(val_set[0]["spec"][:2])
    assert verb.shape == (2, len(WORLD_VERBS)) and noun.shape == (2, len(WORLD_NOUNS))
    assert torch.allclose(verb.sum(1), torch.ones(2), atol=1e-5)
    assert train_set[(0, 0)]["spec"].shape == (1, 400, 128) and val_set[0]["spec"].shape == (10, 1, 400, 128)
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["labels"] == [f"verb:{v}" for v in WORLD_VERBS] + [f"noun:{n}" for n in WORLD_NOUNS]
    assert meta["sample_rate"] == 24_000 and meta["outputs"][0]["shape"] == ["batch", 22]
    module, example, _ = recipe.export_module(model)
    with torch.no_grad():
        probs = module(example["audio"])
    assert probs.shape == (2, 22) and torch.allclose(probs[:, :10].sum(1), torch.ones(2), atol=1e-5)


def test_epic100_errors_name_the_file_and_layout(epic, tmp_path):
    with pytest.raises(ValueError, match=r"EPIC_100_verb_classes\.csv lists 10 classes.*pass num_verbs=10"):
        _recipe(Epic100Recipe).build_datasets(epic.root)
    (tmp_path / "EPIC_100_verb_classes.csv").write_bytes(epic.verb_classes.read_bytes())
    (tmp_path / "EPIC_100_noun_classes.csv").write_bytes(epic.noun_classes.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"EPIC-KITCHENS-100_audio\.hdf5: no such file.*EPIC_100_train\.csv"):
        _recipe(Epic100Recipe, *WORLD_EPIC100).build_datasets(tmp_path)
    (tmp_path / "EPIC-KITCHENS-100_audio.hdf5").symlink_to(epic.audio_hdf5)
    with pytest.raises(FileNotFoundError, match=r"EPIC_100_train\.csv: no such file; expected --data to hold"):
        _recipe(Epic100Recipe, *WORLD_EPIC100).build_datasets(tmp_path)


# ------------------------------------------------------------------------------------------ EPIC-SOUNDS


def test_epicsounds_trains_and_evaluates_five_views(epic, tmp_path):
    recipe = _recipe(EpicSoundsRecipe)  # the reference's 44 classes; the world's ids are 0..11
    figures, losses, (_, val_set) = _train(recipe, tmp_path / "run", epic.root)
    state = _check_run(tmp_path / "run", figures, losses, "top1")
    assert set(figures) == {"top1", "top5", "mca", "mAP", "AUC", "views", "items"}
    assert figures["views"] == 5 and figures["items"] == len(val_set) > 0
    assert state["model_state"]["head.projection.weight"].shape[0] == 44
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    labels = meta["labels"]
    assert len(labels) == 44 and len(set(labels)) == 44
    for seg in epic.sound_segments:  # ids the csvs use are named by their class column
        if seg.class_id is not None:
            assert labels[seg.class_id] == seg.class_name
    # BN statistics frozen here too (no init checkpoint: still the initial 0 / 1)
    assert torch.all(state["model_state"]["s3.pathway0_res0.branch2.a_bn.running_mean"] == 0)
    assert torch.any(state["model_state"]["s1.pathway0_stem.bn.running_mean"] != 0)
