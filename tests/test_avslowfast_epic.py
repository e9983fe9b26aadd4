"""``avslowfast-epic100`` on the world written in the EPIC-KITCHENS-100 layout with RGB frames: the
reader (pictures and audio where the segment says, missing and corrupt jpgs skipped and counted,
the MP4 alternative), two training steps through the CLI entry point, the two-head export
wrapper, and the refusal of a folder without pictures."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch

from models.avslowfast.epic import EpicClips, frame_number
from models.avslowfast.epic_recipe import AVSlowFastEpicConfig, AVSlowFastEpicRecipe
from models.core.train_config import apply_overrides
from models.datasets.formats import EpicAudioHDF5, read_epic100_annotations, read_epic100_video_info
from models.datasets.formats.epic import EPIC_RGB_FRAME
from models.datasets.from_world import write_epic_pictures, write_epic_world
from models.io.decode_pool import ClipSkippedWarning
from models.world import Scene, get_preset, split_seed

TINY_EPIC = ["size=test", "batch_size=4", "epochs=1", "max_steps=2", "num_workers=0", "threads=1", "warmup_steps=0",
             "decode_workers=0"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def epic_world(tmp_path_factory):
    """Two training videos and one validation video of 20 s, 96 x 96 frames at 15 fps."""
    world = write_epic_world(tmp_path_factory.mktemp("epic") / "epic", [split_seed("train", 0), split_seed("train", 1),
                             split_seed("val", 0)], video_seconds=20, preset="tiny")
    write_epic_pictures(world, preset="tiny")
    return world


def _config(world, *extra):
    return apply_overrides(AVSlowFastEpicConfig(), [*TINY_EPIC, f"num_verbs={len(world.verbs)}",
                                                    f"num_nouns={len(world.nouns)}", *extra])


def _clips(root, split, train, **kw):
    videos = {v.video_id: v for v in read_epic100_video_info(root / "EPIC_100_video_info.csv")}
    rows = read_epic100_annotations(root / f"EPIC_100_{split}.csv")
    spec = AVSlowFastEpicConfig(size="test").clip()
    return EpicClips(root, rows, videos, EpicAudioHDF5(root / "EPIC-KITCHENS-100_audio.hdf5"), spec, train=train, **kw)


def test_reader_takes_the_segments_pictures_and_audio(epic_world):
    import soxr

    clips = _clips(epic_world.root, "validation", train=False)
    assert clips.report.count == 0 and len(clips) == sum(n.video_id == "P02_01" for n in epic_world.narrations)
    spec, (narration, end, _) = clips.spec, clips.items[0]
    # validation: the audio window centred on the segment, the pictures ending with it
    assert end == pytest.approx((narration.start_timestamp + narration.stop_timestamp + spec.audio_seconds) / 2)
    item = clips[(3, 0)]
    assert item["frames"].shape == (3, 8, 32, 32) and item["audio"].shape == (spec.audio_samples,)
    assert int(item["verb"]) == narration.verb_class and int(item["noun"]) == narration.noun_class
    # the pictures are the scene's frames nearest the clip's instants (through jpg and a resize)
    scene = Scene(get_preset("tiny"), epic_world.videos[2].seed)
    numbers = frame_number(spec.frame_times(end), 15.0, 300)
    from models.avslowfast.data import preprocess_clip

    truth = preprocess_clip(np.stack([scene.render_frame(int(n) - 1)[0] for n in numbers]), 32)
    assert float(np.abs(item["frames"].numpy() - truth).mean()) < 0.03
    # the audio is the 24 kHz recording resampled, cut where the window is
    whole = soxr.resample(EpicAudioHDF5(epic_world.audio_hdf5).read("P02_01"), 24000, 16000, quality="HQ")
    first = round((end - spec.audio_seconds) * 16000)
    # measured max |Δ| 3.3e-8 (float32 rounding of the same soxr resampling): bound 1e-6
    np.testing.assert_allclose(item["audio"].numpy()[100:-100], whole[first + 100:first + spec.audio_samples - 100],
                               atol=1e-6)


def test_missing_and_corrupt_frames_skip_their_segments(epic_world, tmp_path):
    root = tmp_path / "epic"
    shutil.copytree(epic_world.root, root)
    rows = [n for n in read_epic100_annotations(root / "EPIC_100_train.csv") if n.video_id == "P01_01"]
    gone, broken = rows[0], rows[-1]
    names = {"participant": "P01", "video_id": "P01_01"}
    (root / EPIC_RGB_FRAME.format(number=gone.start_frame + 1, **names)).unlink()
    (root / EPIC_RGB_FRAME.format(number=broken.stop_frame - 1, **names)).write_bytes(b"not a jpeg")
    with pytest.warns(ClipSkippedWarning):
        clips = _clips(root, "train", train=True)
    reasons = dict(clips.report.skipped)
    assert reasons[gone.narration_id].startswith("missing:") and f"frame_{gone.start_frame + 1:010d}" in reasons[
        gone.narration_id]
    assert "not a readable jpg" in reasons[broken.narration_id]
    # skipped, not substituted: the other segments stay, each exactly once
    total = len(read_epic100_annotations(root / "EPIC_100_train.csv"))
    assert len(clips) + clips.report.count == total and clips.report.n_ok == len(clips)
    assert {r.narration_id for r, _, _ in clips.items}.isdisjoint(reasons)


def test_videos_instead_of_frames(epic_world, tmp_path):
    root = tmp_path / "epic"
    shutil.copytree(epic_world.root, root, ignore=shutil.ignore_patterns("rgb_frames"))
    write_epic_pictures(dataclasses.replace(epic_world, root=root), layout="videos", preset="tiny")
    from_videos = _clips(root, "validation", train=False, frames_from="videos")
    from_frames = _clips(epic_world.root, "validation", train=False, frames_from="rgb_frames")
    assert len(from_videos) == len(from_frames) and from_videos.report.count == 0
    for i in range(len(from_frames)):  # the same pictures (two lossy codecs apart)
        assert float((from_videos[i]["frames"] - from_frames[i]["frames"]).abs().mean()) < 0.05


def test_trains_two_steps_through_the_cli(epic_world, tmp_path):
    from models.train.__main__ import main

    run = tmp_path / "run"
    overrides = [*TINY_EPIC, f"num_verbs={len(epic_world.verbs)}", f"num_nouns={len(epic_world.nouns)}"]
    assert main(["--recipe", "avslowfast-epic100", "--data", str(epic_world.root), "--out", str(run), *overrides]) == 0
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    figures = [r for r in evals if r["kind"] == "eval"][-1]
    assert {"action_top1", "verb_top1", "noun_top1", "action_top5"} <= set(figures)
    assert all(0.0 <= figures[k] <= 1.0 for k in ("action_top1", "verb_top1", "noun_top1"))
    assert figures["action_top1"] <= min(figures["verb_top1"], figures["noun_top1"])
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["extra"]["heads"] == [len(epic_world.verbs), len(epic_world.nouns)]
    assert meta["labels"][0] == f"verb:{epic_world.verbs[0].key}" and meta["labels"][-1].startswith("noun:")
    assert [i["name"] for i in meta["inputs"]] == ["frames", "audio"]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_loss_is_two_cross_entropies_and_the_export_gives_two_softmaxes(epic_world):
    recipe = AVSlowFastEpicRecipe(_config(epic_world))
    train, _ = recipe.build_datasets(epic_world.root)
    batch = torch.utils.data.default_collate([train[(0, i)] for i in range(4)])
    torch.manual_seed(0)
    model = recipe.build_model()
    loss = recipe.loss(model, batch)
    terms = recipe.last_terms
    # the loss is the float32 sum of the two terms (measured relative difference 4.9e-8)
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(terms["ce_verb"] + terms["ce_noun"], rel=1e-6)
    # untrained heads: each cross-entropy is near log(classes) (seed 0: 2.43 against log 10 = 2.30)
    assert terms["ce_verb"] == pytest.approx(math.log(len(epic_world.verbs)), abs=0.5)
    module, example, _ = recipe.export_module(model)
    probs = module(*example.values())
    v = len(epic_world.verbs)
    assert probs.shape == (2, v + len(epic_world.nouns))
    torch.testing.assert_close(probs[:, :v].sum(1), torch.ones(2))
    torch.testing.assert_close(probs[:, v:].sum(1), torch.ones(2))


def test_refuses_a_folder_without_pictures(epic_world, tmp_path, capsys):
    from models.train.__main__ import main

    root = tmp_path / "epic"
    shutil.copytree(epic_world.root, root, ignore=shutil.ignore_patterns("P0*"))
    overrides = [*TINY_EPIC, f"num_verbs={len(epic_world.verbs)}", f"num_nouns={len(epic_world.nouns)}"]
    assert main(["--recipe", "avslowfast-epic100", "--data", str(root), "--out", str(tmp_path / "run"), *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: --data {root}: no rgb_frames or videos for any of the 2 videos")
    assert "rgb_frames/P01_01/frame_0000000001.jpg" in err[-1] and "videos/P01_01.MP4" in err[-1]


def test_decoder_processes_give_the_same_clips(epic_world):
    """``decode_workers`` > 0 (the default) decodes in the crash-contained pool, to the same pictures."""
    pooled = _clips(epic_world.root, "validation", train=False, workers=1)
    here = _clips(epic_world.root, "validation", train=False, workers=0)
    assert len(pooled) == len(here) and pooled.video_report.count == 0
    assert all(torch.equal(pooled[i]["frames"], here[i]["frames"]) for i in range(len(here)))
