"""Audiovisual SlowFast: shapes at every fusion point, paper sizes against pytorchvideo, DropPathway,
the synchronisation loss, the recipes through the trainer, export and a live run."""
from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import torch
from conftest import python_cmd, subprocess_env

from models.avslowfast.network import PYTORCHVIDEO_8X8, VARIANTS, AVSlowFast
from models.avslowfast.recipe import (
    AudioOnlyLiteRecipe,
    AVSlowFastLiteConfig,
    FolderRecipe,
    SyncPretrainLiteRecipe,
    VisualSlowFastLiteRecipe,
)
from models.avslowfast.sync import (
    DropPathway,
    SyncConfig,
    choose_negatives,
    contrastive_terms,
    silent_mask,
    stage_weights,
    sync_loss,
)
from models.core.train_config import apply_overrides
from models.slowfast.network import count_macs
from models.train.loop import train

TINY = VARIANTS["avslowfast-test"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(cfg, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, cfg.fast_frames, cfg.image_size, cfg.image_size, generator=g),
            torch.randn(n, 1, cfg.audio_frames, cfg.audio_mels, generator=g))


# --------------------------------------------------------------------------------- network


def test_shapes_at_every_fusion_point():
    cfg = TINY  # width 8, Slow 2 frames, alpha 4, 32x32 pictures, 32x16 log-mel, laterals after res3/res4
    trace: list = []
    maps, taps = AVSlowFast(cfg).forward_maps(*_inputs(cfg), taps=True, trace=trace)
    shapes = dict(trace)
    w, wf, wa, s, ts, tf = cfg.width, cfg.fast_width, cfg.audio_width, cfg.image_size, cfg.slow_frames, cfg.fast_frames
    # no lateral after the stem and res2: Slow keeps its own channels
    assert shapes["fuse0"] == (2, w, ts, s // 4, s // 4)
    assert shapes["fuse1"] == (2, 4 * w, ts, s // 4, s // 4)
    assert shapes["res2_audio"] == (2, 4 * wa, cfg.audio_frames, cfg.audio_mels)  # the audio stem does not stride
    # after res3: Slow 8w + F->S 2 x 8wf channels; the audio lateral matches and is broadcast over H, W
    fused3 = 8 * w + 2 * 8 * wf
    assert shapes["afs2"] == (2, fused3, ts, 1, 1) and shapes["fuse2"] == (2, fused3, ts, s // 8, s // 8)
    assert shapes["res3_audio"] == (2, 8 * wa, cfg.audio_frames // 2, cfg.audio_mels // 2)
    fused4 = 16 * w + 2 * 16 * wf
    assert shapes["afs3"] == (2, fused4, ts, 1, 1) and shapes["fuse3"] == (2, fused4, ts, s // 16, s // 16)
    assert "afs0" not in shapes and "afs1" not in shapes
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "slow": (2, 32 * w, ts, s // 32, s // 32), "fast": (2, 32 * wf, tf, s // 32, s // 32),
        "audio": (2, 32 * wa, cfg.audio_frames // 8, cfg.audio_mels // 8)}
    assert [tuple(v.shape) for v in taps.visual] == [(2, fused3), (2, fused4), (2, 32 * (w + wf))]
    assert [tuple(a.shape) for a in taps.audio] == [(2, fused3), (2, fused4), (2, 32 * wa)]
    assert taps.active_fusion == 2


def test_paper_size_matches_pytorchvideo():
    """Parameters and multiply-adds of pytorchvideo's ``create_audio_visual_slowfast`` (8x8 R50) and of
    the same built for 4x16, counted in a scratch venv with the same Conv/Linear hook (README)."""
    fr, lm = torch.zeros(1, 3, 32, 224, 224), torch.zeros(1, 1, 128, 80)
    for cfg, params, macs in ((PYTORCHVIDEO_8X8, 42_321_800, 53_236_102_144),
                              (dataclasses.replace(PYTORCHVIDEO_8X8, slow_frames=4, alpha=8, fusion_kernel=5),
                               42_235_528, 30_561_870_336)):
        model = AVSlowFast(cfg)
        assert sum(p.numel() for p in model.parameters()) == params
        assert count_macs(model, fr, lm) == macs
        trace: list = []  # pytorchvideo's FuseAudioToFastSlow prints the same fused Slow shapes
        model.to("meta").forward_maps(fr.to("meta"), lm.to("meta"), trace=trace)
        t = cfg.slow_frames
        assert [shape for name, shape in trace if name.startswith("fuse")] == [
            (1, 80, t, 56, 56), (1, 320, t, 56, 56), (1, 640, t, 28, 28), (1, 1280, t, 14, 14)]
    visual = AVSlowFast(dataclasses.replace(PYTORCHVIDEO_8X8, pathways="visual"))  # pytorchvideo create_slowfast
    assert sum(p.numel() for p in visual.parameters()) == 34_566_488
    assert count_macs(visual, fr, None) == 50_308_583_424


def test_one_modality_networks_and_bad_inputs():
    for pathways, dim in (("visual", 32 * (TINY.width + TINY.fast_width)), ("audio", 32 * TINY.audio_width)):
        cfg = dataclasses.replace(TINY, pathways=pathways, sync_heads=False)
        fr, lm = _inputs(cfg)
        model = AVSlowFast(cfg).eval()
        feats = model.forward_features(fr if pathways == "visual" else None, lm if pathways == "audio" else None)
        assert feats.shape == (2, dim) and not any(n.startswith(("s3_fuse_afs", "s4_fuse_afs")) for n, _ in
                                                   model.named_modules())
    with pytest.raises(ValueError, match="expected frames"):
        AVSlowFast(TINY)(torch.zeros(1, 3, 5, 32, 32), torch.zeros(1, 1, 32, 16))
    with pytest.raises(ValueError, match="audio_frames"):
        dataclasses.replace(TINY, audio_frames=36)


# --------------------------------------------------------------------------------- DropPathway


def test_drop_pathway_rate_over_many_iterations():
    n = 20_000
    for rate in (0.8, 0.3):
        drop = DropPathway(rate, seed=4)
        dropped = sum(not drop.audio_laterals() for _ in range(n))
        sigma = (rate * (1 - rate) / n) ** 0.5  # binomial: 0.0028 at 0.8
        assert abs(dropped / n - rate) < 4 * sigma
    assert all(DropPathway(0.0).audio_laterals() for _ in range(100))


def test_dropped_laterals_keep_audio_out_of_the_visual_pathways():
    model = AVSlowFast(dataclasses.replace(TINY, sync_heads=False)).eval()
    fr, lm = _inputs(TINY)
    other = torch.randn_like(lm)
    split = 32 * (TINY.width + TINY.fast_width)  # visual part of the pooled features
    with torch.no_grad():
        a, b = model.forward_features(fr, lm, audio_laterals=False), model.forward_features(fr, other, audio_laterals=False)
        c = model.forward_features(fr, other)
    torch.testing.assert_close(a[:, :split], b[:, :split])  # vision does not see audio
    assert not torch.allclose(a[:, split:], b[:, split:])  # the audio pathway still feeds the head
    assert not torch.allclose(b[:, :split], c[:, :split])  # with the laterals on, it does


# --------------------------------------------------------------------------------- synchronisation


def test_stage_rule_masks_and_negative_schedule():
    assert stage_weights(2) == (1.0, 0.0, 0.0)  # laterals after res3: only the res3 term counts
    assert stage_weights(3) == (1.0, 1.0, 0.0)
    assert stage_weights(None) == (1.0, 1.0, 1.0)  # DropPathway: no audio reached vision, all count
    v = torch.nn.functional.normalize(torch.randn(4, 8), dim=1) * 0.5
    zero = contrastive_terms(v, v, -v, torch.ones(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool), 0.99)
    assert float(zero) == 0.0  # aligned equal, misaligned opposite (distance 1 > margin)
    masked = contrastive_terms(v, -v, v, torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool), 0.99)
    assert float(masked) == 0.0
    silent = torch.full((2, 1, 32, 16), -3.0)
    silent[1] += torch.randn(1, 32, 16)
    assert silent_mask(silent, 0.01).tolist() == [True, False]
    logmel, hard = torch.randn(64, 1, 4, 4), torch.randn(64, 1, 4, 4)
    config = SyncConfig(mix_epoch=2)
    g = torch.Generator().manual_seed(0)
    neg, is_hard = choose_negatives(logmel, hard, 1, config, g)
    assert not is_hard.any() and not any(torch.equal(neg[i], logmel[i]) for i in range(64))  # easy: other clips
    _, is_hard = choose_negatives(logmel, hard, 2, config, g)
    assert 0.05 < is_hard.float().mean() < 0.5  # afterwards 25 % hard


def _sync_batch(n: int, g: torch.Generator, cfg):
    """Clips of 4 kinds: the pictures' colour and the log-mel's bright band both tell the kind
    (like the world's objects and their sounds); clip i has kind i % 4."""
    kinds = torch.arange(n) % 4
    colours = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
    frames = colours[kinds][:, :, None, None, None] * 0.5 + 0.3 * torch.randn(
        n, 3, cfg.fast_frames, cfg.image_size, cfg.image_size, generator=g)
    logmel = 0.3 * torch.randn(n, 1, cfg.audio_frames, cfg.audio_mels, generator=g)
    for i, k in enumerate(kinds.tolist()):
        logmel[i, 0, :, 4 * k:4 * k + 4] += 2.0
    return frames, logmel


def test_sync_loss_separates_aligned_from_misaligned_after_short_training():
    torch.manual_seed(0)
    cfg = TINY
    model = AVSlowFast(cfg)
    config = SyncConfig()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)

    def distances(frames, logmel):
        _, taps = model.forward_maps(frames, logmel, taps=True)
        vs, a_pos = model.sync_embeddings(taps)
        _, a_neg = model.sync_embeddings(taps._replace(audio=model.audio_taps(torch.roll(logmel, 1, 0))))
        return (vs[0] - a_pos[0]).norm(dim=1), (vs[0] - a_neg[0]).norm(dim=1)  # res3: the term that counts

    model.eval()
    with torch.no_grad():
        pos0, neg0 = distances(*_sync_batch(32, torch.Generator().manual_seed(99), cfg))
    model.train()
    for _ in range(60):
        frames, logmel = _sync_batch(16, g, cfg)
        _, taps = model.forward_maps(frames, logmel, taps=True)
        loss = sync_loss(model, taps, logmel, torch.roll(logmel, 1, 0), config)  # rolled by one: another kind
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pos, neg = distances(*_sync_batch(32, torch.Generator().manual_seed(99), cfg))
    # measured (seed 0): untrained, aligned 0.711 and misaligned 0.710 apart on average (no separation);
    # after 60 steps 0.217 and 0.756, misaligned farther for 84 % of the clips (100 steps: 0.165, 0.793, 91 %)
    assert abs(float(pos0.mean() - neg0.mean())) < 0.1
    assert float(neg.mean() - pos.mean()) > 0.4
    assert float((neg > pos).float().mean()) > 0.75


# --------------------------------------------------------------------------------- recipes, export, live

TINY_RUN = ["size=test", "world=tiny", "train_scenes=2", "items_per_epoch=8", "val_items=8", "val_scenes=1",
            "batch_size=4", "epochs=1", "max_steps=2", "num_workers=0", "threads=1", "warmup_steps=0"]


def _run(*args, cwd, timeout=600):
    done = subprocess.run(python_cmd(*args), check=False, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("recipe_cls", [VisualSlowFastLiteRecipe, AudioOnlyLiteRecipe, SyncPretrainLiteRecipe])
def test_ablation_recipes_train_two_steps(tmp_path, recipe_cls, _private_world_cache):
    """The one-modality rows and sync pretraining through the trainer, in-process (the CLI is the
    avslowfast-lite test's)."""
    run = tmp_path / "run"
    config = apply_overrides(AVSlowFastLiteConfig(), TINY_RUN)
    figures = train(recipe_cls(config), run, argv=["python", "-m", "models.train", "--recipe", recipe_cls.name, *TINY_RUN])
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["family"] == "avslowfast" and len(meta["labels"]) == 12 and 0.0 <= figures["mAP"] <= 1.0
    if recipe_cls is SyncPretrainLiteRecipe:  # no labels: the figure is the synchronisation's
        assert [i["name"] for i in meta["inputs"]] == ["frames", "audio"] and 0.0 <= figures["avs_acc"] <= 1.0
        return
    visual = recipe_cls is VisualSlowFastLiteRecipe
    assert [i["name"] for i in meta["inputs"]] == (["frames"] if visual else ["audio"])
    assert meta["extra"]["pathways"] == ("visual" if visual else "audio")


def test_avslowfast_trains_with_drop_pathway_and_sync_exports_and_runs_live(tmp_path):
    run = tmp_path / "avsf"
    _run("-m", "models.train", "--recipe", "avslowfast-lite", "--out", str(run), *TINY_RUN, "drop_pathway=0.8",
         "sync=true", cwd=tmp_path)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert any(k.startswith("net.sync_visual2") for k in state)
    done = _run("-m", "models.export", str(run), cwd=tmp_path)
    assert "real inputs" in done.stdout
    sidecar = json.loads((run / "model.onnx.json").read_text())
    assert [i["name"] for i in sidecar["inputs"]] == ["frames", "audio"]
    # ORT vs PyTorch measured 6e-8 on random, low-passed scene and real inputs (tiny network)
    assert max(sidecar["extra"]["onnx_export"]["max_abs_diff"].values()) < 1e-5
    out = tmp_path / "live.jsonl"
    _run("-m", "apps.avlive", "--source", "synthetic:200000", "--duration", "4", "--no-realtime", "--headless",
         "--threads", "1", "--labeler", str(run / "model.onnx"), "--localizer", "none", "--hop", "0.08",
         "--jsonl", str(out), cwd=tmp_path)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 45  # 4 s in hops of 0.08 s
    assert lines[-1]["counters"]["missing_frames"] == 0  # every run got its 8-frame clip
    assert all(r["top"] and r["top"][0]["model"] == "avsf" for r in lines[5:])
    assert all(0.0 <= t["score"] <= 1.0 for r in lines for t in r["top"])


def test_folder_per_class_videos_train(tmp_path, _private_world_cache):
    """``avslowfast-folder`` on world clips written as mp4 files and sorted into class folders, and
    sync pretraining on the same videos."""
    from models.avslowfast.folder import folder_splits
    from models.datasets.from_world import write_vggsound_world
    from models.world import split_seed

    world = write_vggsound_world(tmp_path / "vgg", [split_seed("train", 0), split_seed("test", 0)], clips_per_seed=2,
                                 clip_seconds=2, preset="tiny", search_seconds=120.0)
    root = tmp_path / "folder"
    for clip in world.clips:
        target = root / ("train" if clip.split == "train" else "val") / clip.label / clip.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        (world.video_dir / clip.filename).rename(target)
    classes, train_rows, val_rows = folder_splits(root)
    assert classes == tuple(sorted({c.label for c in world.clips})) and len(train_rows) == len(val_rows) == 2
    overrides = [*TINY_RUN, f"num_classes={len(classes)}", "batch_size=2", "decode_workers=0"]
    recipe = FolderRecipe(apply_overrides(AVSlowFastLiteConfig(), overrides))
    figures = train(recipe, tmp_path / "run", data=root, argv=["test"])
    assert 0.0 <= figures["mAP"] <= 1.0 and figures["n"] == 2
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert tuple(meta["labels"]) == classes and meta["outputs"][0]["shape"][1] == len(classes)
    with pytest.raises(ValueError, match="num_classes"):
        FolderRecipe(apply_overrides(AVSlowFastLiteConfig(), [*TINY_RUN, "num_classes=99"])).build_datasets(root)
    # self-supervised pretraining on the same videos, labels unused: the synchronisation loss alone
    pretrain = FolderRecipe(apply_overrides(AVSlowFastLiteConfig(), [*TINY_RUN, "batch_size=2", "sync=true",
                                                                      "supervised=false", "decode_workers=0"]))
    figures = train(pretrain, tmp_path / "pretrain", data=root, argv=["test"])
    assert 0.0 <= figures["avs_acc"] <= 1.0
