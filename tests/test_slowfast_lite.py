"""slowfast-lite: budget, end-of-window multi-label targets, a short training run."""
from __future__ import annotations

import torch

from models.datasets.world import EndActiveWindows, end_active_targets
from models.slowfast.network import SlowFast, count_macs
from models.slowfast.lite import LITE_FRONTEND, SlowFastLiteConfig, SlowFastLiteRecipe, lite_network_config
from models.core.train_config import apply_overrides
from models.train.loop import train
from models.world import CLASS_NAMES, TINY, Scene


def test_lite_fits_the_budget():
    config = lite_network_config(SlowFastLiteConfig())
    assert config.num_frames == 128 == LITE_FRONTEND.num_frames(20320)
    macs = count_macs(SlowFast(config), torch.zeros(1, 1, 128, 64))
    assert macs <= 0.3e9, f"{macs / 1e9:.3f} G multiply-adds per window"


def test_targets_are_the_classes_sounding_at_the_window_end():
    scene = Scene(TINY, 9)
    events = scene.events_between(0, 120)
    checked = 0
    for e in events[:40]:
        if e.offset - e.onset < 0.3:
            continue
        inside = end_active_targets(scene, e.onset + 0.25, 0.2)
        assert inside[e.class_index] == 1.0
        before = end_active_targets(scene, e.onset + 0.05, 0.2)  # only 0.05 s of the 0.2 s tail
        others = [o for o in events if o.uid != e.uid and o.class_index == e.class_index and o.onset < e.onset + 0.05 and o.offset > e.onset - 0.2]
        if not others:
            assert before[e.class_index] == 0.0
        checked += 1
    assert checked > 10


def test_end_active_windows_are_deterministic_per_address():
    ds = EndActiveWindows(TINY, (1, 2, 3), 10, 1.27, 16000, seed=4)
    a, b = ds[(2, 5)], EndActiveWindows(TINY, (1, 2, 3), 10, 1.27, 16000, seed=4)[(2, 5)]
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["target"], b["target"])
    assert a["audio"].shape == (20320,) and a["target"].shape == (len(CLASS_NAMES),)
    assert not torch.equal(ds[(3, 5)]["audio"], a["audio"])  # a new window every epoch
    fixed = EndActiveWindows(TINY, (1, 2, 3), 10, 1.27, 16000, seed=4, fixed=True)
    assert torch.equal(fixed[(0, 1)]["audio"], fixed[(7, 1)]["audio"])


def test_lite_trains_a_few_steps(tmp_path):
    overrides = ["world=tiny", "width=8", "blocks=1,1,1,1", "batch_size=4", "items_per_epoch=16", "val_items=8",
                 "train_scenes=2", "val_scenes=1", "epochs=1", "num_workers=0", "threads=1", "warmup_steps=0"]
    recipe = SlowFastLiteRecipe(apply_overrides(SlowFastLiteConfig(), overrides))
    figures = train(recipe, tmp_path / "run", argv=["test"])
    assert 0.0 <= figures["mAP"] <= 1.0 and figures["n"] == 8
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    model = recipe.build_model().eval()
    probs = recipe.export_module(model)[0](torch.zeros(2, 20320))
    assert probs.shape == (2, 12) and torch.all((probs > 0) & (probs < 1))
