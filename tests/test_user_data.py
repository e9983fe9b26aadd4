"""Training on your own data: every layout is recognised, each recipe trains on the layouts it
reads and refuses the others in one line, splits are honest, cross-validation and a pretrained
start work, and apps.evaluate scores runs with their own labels."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models.datasets.formats import read_esc50, write_esc50
from models.datasets.from_world import (write_audioset_world, write_desed_world, write_epic_world, write_esc50_world,
                                        write_video_folder_world, write_vggsound_world)
from models.datasets.labelled_sets import (CLIP_LAYOUTS, LAYOUTS, assign_folds, check_layout, detect_layout, detect_layouts,
                                          read_labelled_set)
from models.families import RECIPES
from models.train.__main__ import main as train_main
from models.world import split_seed

REPO = Path(__file__).resolve().parents[1]
SEEDS = [split_seed("train", i) for i in range(5)] + [split_seed("test", i) for i in range(5)]
#: Small, fast settings for the clip recipes (one or two steps).
BASELINE_TINY = ["width=4", "batch_size=2", "threads=1", "num_workers=0", "decode_workers=1", "clip_seconds=2", "warmup_steps=0"]
SLOWFAST_TINY = ["width=8", "blocks=1,1,1,1", "batch_size=2", "threads=1", "num_workers=0", "decode_workers=1",
                 "clip_seconds=2", "warmup_steps=0"]
CLIP_RECIPES = {"baseline": BASELINE_TINY, "slowfast-lite": SLOWFAST_TINY}
#: Cells of the recipe-by-layout table that train in other test files (recipes with heavier data).
TRAINED_ELSEWHERE = {
    ("crnn-lite", "desed"): "tests/test_crnn.py::test_desed_layout_trains",
    ("crnn", "desed"): "tests/test_crnn.py::test_desed_layout_trains",
    ("slowfast-vggsound", "vggsound"): "tests/test_slowfast_recipes.py::test_vggsound_trains_and_evaluates_two_views",
    ("slowfast-epic100", "epic100"): "tests/test_slowfast_recipes.py::test_epic100_finetunes_with_frozen_bn_and_two_heads",
    ("slowfast-epicsounds", "epic_sounds"): "tests/test_slowfast_recipes.py::test_epicsounds_trains_and_evaluates_five_views",
    ("l3", "videos"): "tests/test_l3_recipe.py::test_video_folder_data",
    ("l3-lite", "videos"): "tests/test_l3_recipe.py::test_video_folder_data",
    ("soundnet-lite", "videos"): "tests/test_soundnet.py::test_teacher_student_trains_on_a_video_folder",
    ("soundnet5", "videos"): "tests/test_soundnet.py::test_teacher_student_trains_on_a_video_folder",
    ("soundnet8", "videos"): "tests/test_soundnet.py::test_teacher_student_trains_on_a_video_folder",
    ("avslowfast-folder", "folder"): "tests/test_avslowfast.py::test_folder_per_class_videos_train",
    ("avslowfast-folder", "videos"): "tests/test_avslowfast.py::test_folder_per_class_videos_train",
    ("avslowfast-epic100", "epic100"): "tests/test_avslowfast_epic.py::test_trains_two_steps_through_the_cli",
}


def _write_class_folders(esc_root: Path, out: Path) -> Path:
    """ESC-50's wavs sorted into ``out/<category>/``: the folder-per-class layout."""
    for clip in read_esc50(esc_root / "meta" / "esc50.csv"):
        (out / clip.category).mkdir(parents=True, exist_ok=True)
        shutil.copy(esc_root / "audio" / clip.filename, out / clip.category / clip.filename)
    return out


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """One small generated folder per layout avlive knows."""
    base = tmp_path_factory.mktemp("layouts")
    roots = {"esc50": write_esc50_world(base / "esc50", SEEDS, clips_per_seed=4, clip_seconds=2.0, sample_rate=16_000,
                                        preset="tiny", search_seconds=300).root}
    roots["folder"] = _write_class_folders(roots["esc50"], base / "folder")
    roots["vggsound"] = write_vggsound_world(base / "vggsound", SEEDS[:4] + SEEDS[5:7], clips_per_seed=2, clip_seconds=2, preset="tiny",
                                             search_seconds=300).root
    roots["audioset"] = write_audioset_world(base / "audioset", SEEDS[:6], segment_seconds=2.0, preset="tiny",
                                             search_seconds=300).root
    roots["desed"] = write_desed_world(base / "desed", [split_seed("train", 0), split_seed("val", 0)], clip_seconds=2.0,
                                       preset="tiny", search_seconds=120).root
    epic = write_epic_world(base / "epic100", [split_seed("train", 0), split_seed("val", 0)], video_seconds=6.0,
                            preset="tiny").root
    both = base / "epic_both"  # the real EPIC layout: both annotation sets beside one audio file
    shutil.copytree(epic, both)
    roots["epic100"] = epic
    sounds = base / "epic_sounds"
    sounds.mkdir()
    for f in list(epic.iterdir()):
        if f.name.startswith("EPIC_Sounds"):
            shutil.move(f, sounds / f.name)
        elif f.suffix in (".hdf5", ".h5"):
            shutil.copy(f, sounds / f.name)
    roots["epic_sounds"] = sounds
    roots["epic_both"] = both
    roots["videos"] = write_video_folder_world(base / "videos", [split_seed("train", 0)], clip_seconds=2.0,
                                               preset="tiny").root
    return roots


def test_every_layout_is_recognised(layouts):
    both = layouts["epic_both"]
    assert detect_layouts(both) == ["epic100", "epic_sounds"]
    for recipe in ("slowfast-epic100", "slowfast-epicsounds", "avslowfast-epic100"):
        check_layout(both, recipe, RECIPES.get(recipe).factory.reads)  # each reads its part of the folder
    for name in LAYOUTS:
        root = layouts[name]
        # a folder of videos nested in folders looks like class folders: recipes that read
        # videos take both, and the clip recipes read its folders as classes
        assert detect_layout(root) in ((None, "folder") if name == "videos" else (name,)), name
    assert set(layouts) == set(LAYOUTS) | {"epic_both"}


def test_esc50_folds_split_honestly_and_any_class_subset_reads(layouts, tmp_path):
    root = layouts["esc50"]
    for fold in (1, 3):
        s = read_labelled_set(root, recipe="t", fold=fold)
        assert {c.key.split("/")[0] for c in s.test} == {str(fold)}
        assert str(fold) not in {c.key.split("/")[0] for c in (*s.train, *s.val)}
        sources = lambda index: {c.key.split("/")[1] for c in index}  # noqa: E731
        assert sources(s.train).isdisjoint(sources(s.val)) and sources(s.val).isdisjoint(sources(s.test))
        assert len(s.train) + len(s.val) + len(s.test) == len(read_esc50(root / "meta" / "esc50.csv"))
        assert s.folds == (1, 2, 3, 4, 5) and not s.multi_label
    # a subset with non-contiguous class ids (as ESC-10 is) reads, its classes ordered by id
    subset = tmp_path / "subset"
    shutil.copytree(root, subset)
    clips = [c for c in read_esc50(root / "meta" / "esc50.csv") if c.target in (1, 4, 9)]
    write_esc50(subset / "meta" / "esc50.csv", clips)
    s = read_labelled_set(subset, recipe="t")
    names = {c.target: c.category for c in clips}
    assert s.classes == tuple(names[t] for t in sorted(names)) and len(s.test) == 0


def test_dealt_folds_keep_sources_together_and_balance_classes(layouts):
    s = read_labelled_set(layouts["folder"], recipe="t", fold=2, folds=3)
    assert s.folds == (1, 2, 3) and len(s.test) and "3 folds dealt by source" in s.split
    pool = [*s.train, *s.val, *s.test]
    folds = assign_folds(pool, 3, lambda c: c.key, seed=0)
    counts = np.bincount(folds, minlength=4)[1:]
    assert counts.max() - counts.min() <= 2


def test_own_splits_are_kept(layouts):
    vgg = read_labelled_set(layouts["vggsound"], recipe="t")
    assert len(vgg.test) == 4 and "own test split" in vgg.split  # test.csv
    assert {c.key for c in vgg.val}.isdisjoint({c.key for c in vgg.train})
    desed = read_labelled_set(layouts["desed"], recipe="t")
    assert desed.multi_label and "own validation split" in desed.split
    audioset = read_labelled_set(layouts["audioset"], recipe="t")
    assert audioset.multi_label and len(audioset.test) == 1  # eval_segments.csv: the one test seed
    with pytest.raises(ValueError, match="has its own test split"):
        read_labelled_set(layouts["vggsound"], recipe="t", fold=1)


def _table_cells():
    return [(recipe, layout) for recipe in RECIPES.names() for layout in LAYOUTS]


@pytest.mark.parametrize("recipe,layout", _table_cells())
def test_recipe_by_layout(recipe, layout, layouts, tmp_path, capsys):
    """Each cell of README's table: the recipe trains a step on the layout, or exits 2 with one
    line naming what it reads; cells whose training is heavier are trained in the test named in
    TRAINED_ELSEWHERE (checked to exist)."""
    reads = RECIPES.get(recipe).factory.reads
    if layout in reads:
        if recipe in CLIP_RECIPES:
            rc = train_main(["--recipe", recipe, "--data", str(layouts[layout]), "--out", str(tmp_path / "run"),
                             "max_steps=1", *CLIP_RECIPES[recipe]])
            assert rc == 0
            meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
            assert meta["extra"]["data_layout"] == layout
            assert meta["labels"] == list(read_labelled_set(layouts[layout], recipe=recipe).classes)
            return
        where = TRAINED_ELSEWHERE[(recipe, layout)]
        path, name = where.split("::")
        assert f"def {name}(" in (REPO / path).read_text(), where
        return
    rc = train_main(["--recipe", recipe, "--data", str(layouts[layout]), "--out", str(tmp_path / "run"),
                     *CLIP_RECIPES.get(recipe, [])])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(err) == 1, err
    detected = detect_layout(layouts[layout])
    if not (detected in reads or ("videos" in reads and detected in (None, "folder"))):  # refused by its layout
        assert repr(recipe) in err[0] and (("reads" in err[0]) or ("world only" in err[0])), err[0]
        assert not (tmp_path / "run").exists()  # nothing written for a refused run


@pytest.mark.parametrize("recipe", RECIPES.names())
def test_each_recipe_refuses_unreadable_data_through_the_cli(recipe, layouts, tmp_path):
    reads = RECIPES.get(recipe).factory.reads
    other = next(name for name in ("epic_sounds", "audioset", "esc50") if name not in reads)
    done = subprocess.run([sys.executable, "-m", "models.train", "--recipe", recipe, "--data", str(layouts[other]),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=REPO, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and repr(recipe) in lines[0]


def test_clip_layouts_are_those_the_clip_recipes_read():
    assert set(RECIPES.get("slowfast-lite").factory.reads) == set(CLIP_LAYOUTS)
    assert set(RECIPES.get("baseline").factory.reads) == {"esc50", "folder", "vggsound"}


def test_baseline_is_single_label_and_says_which_recipe_is_not(layouts, tmp_path, capsys):
    rc = train_main(["--recipe", "baseline", "--data", str(layouts["audioset"]), "--out", str(tmp_path / "run"),
                     *BASELINE_TINY])
    assert rc == 2 and "(read by --recipe slowfast-lite)" in capsys.readouterr().err


def test_cross_validation_writes_folds_table_and_confusion(layouts, tmp_path, capsys):
    """Folds dealt by source from a folder-per-class set (two, to keep the test short); every clip
    is tested once, and an interrupted cross-validation continues where it stopped."""
    out = tmp_path / "cv"
    args = ["--recipe", "baseline", "--data", str(layouts["folder"]), "--out", str(out), "cv=2", "folds=2", "max_steps=1",
            *BASELINE_TINY]
    assert train_main(args) == 0
    summary = json.loads((out / "cv.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == [1, 2]
    total = sum(f["test_clips"] for f in summary["folds"])
    assert total == len(read_esc50(layouts["esc50"] / "meta" / "esc50.csv"))  # the folder holds ESC-50's clips
    for f in summary["folds"]:
        for row in ("network", "logmel_probe", "mfcc_probe"):
            assert 0.0 <= f[row]["top1"] <= 1.0
        assert np.array(f["confusion"]).sum() == f["test_clips"]
    assert (out / "confusion.png").stat().st_size > 1000 and "| mean |" in (out / "cv.md").read_text()
    assert "cv: fold 2" in capsys.readouterr().err
    (out / "fold-2" / "test.json").unlink()
    stamp = (out / "fold-1" / "test.json").stat().st_mtime_ns
    assert train_main(args) == 0
    assert (out / "fold-1" / "test.json").stat().st_mtime_ns == stamp and (out / "fold-2" / "test.json").is_file()


def test_init_loads_a_run_of_the_same_recipe_and_resizes_the_head(layouts, tmp_path, capsys):
    from models.core.checkpoint import load_checkpoint

    world = tmp_path / "world"
    assert train_main(["--recipe", "baseline", "--out", str(world), "world=tiny", "train_windows=32", "val_windows=8",
                       "max_steps=1", *BASELINE_TINY]) == 0
    pretrained = load_checkpoint(world / "checkpoints" / "best.pt")["model_state"]
    from models.baseline.recipe import BaselineRecipe
    from models.core.train_config import apply_overrides

    # 3 of the 12 classes: the head is new, everything else comes from the run
    subset = tmp_path / "subset"
    for name in sorted(p.name for p in layouts["folder"].iterdir())[:3]:
        shutil.copytree(layouts["folder"] / name, subset / name)
    recipe = BaselineRecipe(apply_overrides(BaselineRecipe.config_class(), [*BASELINE_TINY, f"init={world}",
                                                                            "backbone_lr_factor=0"]))
    recipe.build_datasets(subset)
    assert len(recipe.labels) == 3
    model = recipe.build_model()
    optimizer = recipe.build_optimizer(model)
    state = model.state_dict()
    for key, value in pretrained.items():
        if key.startswith("head."):
            assert state[key].shape != value.shape
        else:
            assert torch.equal(state[key], value), key
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(not n.startswith("head.") for n in frozen)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 2  # the head's weight and bias
    assert "init: " in capsys.readouterr().err
    other = BaselineRecipe(apply_overrides(BaselineRecipe.config_class(), ["width=8", f"init={world}"]))
    with pytest.raises(ValueError, match="tensors fit this network"):
        other.build_optimizer(other.build_model())
    crnn = RECIPES.get("slowfast-lite").factory
    wrong = crnn(apply_overrides(crnn.config_class(), [f"init={world}"]))
    with pytest.raises(ValueError, match="expected a 'slowfast-lite' run"):
        wrong.build_optimizer(wrong.build_model())


def test_evaluate_scores_a_data_run_with_its_own_labels_and_refuses_others(layouts, tmp_path, capsys):
    from apps.evaluate import main as evaluate_main

    run = tmp_path / "run"
    assert train_main(["--recipe", "baseline", "--data", str(layouts["esc50"]), "--out", str(run), "fold=2",
                       "max_steps=1", *BASELINE_TINY]) == 0
    capsys.readouterr()
    assert evaluate_main([str(run), "--json", str(tmp_path / "f.json")]) == 0  # its own set and fold
    figures = json.loads((tmp_path / "f.json").read_text())["torch"]
    test_clips = len(read_labelled_set(layouts["esc50"], recipe="t", fold=2).test)
    assert figures["n"] == test_clips and 0 <= figures["top1"] <= 1
    # world windows: refused, the labels are the data's (same names, other order and count)
    meta = json.loads((run / "metadata.json").read_text())
    if len(meta["labels"]) != 12:
        assert evaluate_main([str(run), "--data", str(layouts["audioset"])]) == 2
    # data whose classes the model does not name
    other = tmp_path / "other"
    (other / "meow").mkdir(parents=True)
    (other / "purr").mkdir()
    for k, name in enumerate(["meow", "meow", "purr", "purr"]):
        sf.write(other / name / f"{k}.wav", np.zeros(16_000, np.float32), 16_000)
    assert evaluate_main([str(run), "--data", str(other), "--split", "val"]) == 2
    assert "not among the model's" in capsys.readouterr().err


def test_readme_table_is_the_registry_s():
    from models.train.__main__ import layout_table

    assert layout_table() in (REPO / "README.md").read_text()
