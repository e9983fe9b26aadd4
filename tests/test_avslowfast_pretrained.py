"""``init=RUN``: a supervised AVSlowFast run starts from the backbone of a sync-pretrained run
(heads skipped), and a checkpoint that does not fit is refused with what was expected and found."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.avslowfast.network import VARIANTS
from models.avslowfast.pretrained import InitError, backbone_keys
from models.avslowfast.recipe import (
    AVSlowFastClassifier,
    AVSlowFastLiteConfig,
    AVSlowFastLiteRecipe,
    SyncPretrainLiteRecipe,
)
from models.core.checkpoint import load_checkpoint, save_checkpoint
from models.core.train_config import apply_overrides
from models.train.loop import train

TINY_RUN = ["size=test", "world=tiny", "train_scenes=2", "items_per_epoch=8", "val_items=8", "val_scenes=1",
            "batch_size=4", "epochs=1", "max_steps=2", "num_workers=0", "threads=1", "warmup_steps=0"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, _private_world_cache):
    """A run of ``avslowfast-sync-lite`` (2 steps, tiny network)."""
    run = tmp_path_factory.mktemp("sync") / "run"
    train(SyncPretrainLiteRecipe(apply_overrides(AVSlowFastLiteConfig(), TINY_RUN)), run, argv=["test"])
    return run


def test_supervised_run_starts_from_the_sync_backbone(pretrained, capsys):
    recipe = AVSlowFastLiteRecipe(apply_overrides(AVSlowFastLiteConfig(), [*TINY_RUN, f"init={pretrained}"]))
    model = recipe.build_model()
    recipe.build_optimizer(model)  # the trainer's call, before the first step
    saved = load_checkpoint(pretrained / "checkpoints" / "best.pt")["model_state"]
    mine = model.state_dict()
    keys = backbone_keys(mine)
    assert len(keys) > 50 and all(torch.equal(mine[k], saved[k]) for k in keys)
    assert not any(k.startswith("net.sync_") for k in mine)  # the supervised network has no AVS heads
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"init: loaded {len(keys)} backbone tensors from {pretrained}")
    assert "net.projection" in line and "net.sync_visual2" in line


def test_epic_run_starts_from_the_sync_backbone(pretrained):
    """Another head size (verbs + nouns): the backbone loads, the head keeps its own shape."""
    from models.avslowfast.epic_recipe import AVSlowFastEpicConfig, AVSlowFastEpicRecipe

    recipe = AVSlowFastEpicRecipe(apply_overrides(AVSlowFastEpicConfig(), ["size=test", "num_verbs=3", "num_nouns=4",
                                                                          f"init={pretrained}"]))
    model = recipe.build_model()
    recipe.build_optimizer(model)
    saved = load_checkpoint(pretrained / "checkpoints" / "best.pt")["model_state"]
    assert all(torch.equal(t, saved[k]) for k, t in model.state_dict().items() if k in backbone_keys(saved))
    assert model.net.projection.weight.shape[0] == 7


def _checkpoint(path, network, family="avslowfast"):
    model = AVSlowFastClassifier(network)
    save_checkpoint(path, recipe="avslowfast-lite", config={}, model_state=model.state_dict(),
                    metadata={"family": family, "extra": {"network": dataclasses.asdict(network)}})
    return path


def test_checkpoints_that_do_not_fit_are_refused(tmp_path):
    def recipe(init):
        return AVSlowFastLiteRecipe(apply_overrides(AVSlowFastLiteConfig(), [*TINY_RUN, f"init={init}"]))

    tiny = dataclasses.replace(VARIANTS["avslowfast-test"], num_classes=12, sync_heads=False)
    other_family = _checkpoint(tmp_path / "crnn.pt", tiny, family="crnn")
    with pytest.raises(InitError, match="expected a checkpoint of the avslowfast family .* found family 'crnn'"):
        recipe(other_family).build_optimizer(recipe(other_family).build_model())
    wider = _checkpoint(tmp_path / "lite.pt", dataclasses.replace(VARIANTS["avslowfast-lite"], num_classes=12))
    with pytest.raises(InitError, match=r"width.* differ.*expected pathways='av', width=8.*found pathways='av', width=16"):
        recipe(wider).build_optimizer(recipe(wider).build_model())
    # without a network description the tensors themselves are compared
    data = torch.load(wider, weights_only=True)
    data["metadata"]["extra"] = {}
    torch.save(data, tmp_path / "bare.pt")
    with pytest.raises(InitError, match="of other shapes"):
        recipe(tmp_path / "bare.pt").build_optimizer(recipe(tmp_path / "bare.pt").build_model())
    # a visual-only run takes an audio-visual backbone, the audio pathway left out
    visual = AVSlowFastLiteRecipe(apply_overrides(AVSlowFastLiteConfig(), [*TINY_RUN, "pathways=visual", "drop_pathway=0",
                                                                           f"init={_checkpoint(tmp_path / 'av.pt', tiny)}"]))
    visual.build_optimizer(visual.build_model())
