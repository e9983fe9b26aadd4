"""split_video_folder: split folders, flat folders, list files, and val_fraction wherever no val/ exists."""
from __future__ import annotations

import pytest

from models.datasets.formats import split_video_folder, write_video_folder


def _tree(root, names):
    write_video_folder(root, {n: b"x" for n in names})


def _rels(splits):
    return {k: [f.relpath for f in v] for k, v in splits.items()}


def test_train_and_test_folders_carve_validation_from_train(tmp_path):
    """The issue's failure: train/ + test/ gave 0 validation videos whatever val_fraction was."""
    _tree(tmp_path, [f"train/v{i:02d}.mp4" for i in range(48)] + [f"test/t{i}.mp4" for i in range(5)])
    s = _rels(split_video_folder(tmp_path, val_fraction=0.2))
    assert len(s["test"]) == 5 and all(r.startswith("test/") for r in s["test"])
    assert 3 <= len(s["val"]) <= 20 and all(r.startswith("train/") for r in s["val"])
    assert len(s["train"]) + len(s["val"]) == 48 and not set(s["train"]) & set(s["val"])
    bigger = _rels(split_video_folder(tmp_path, val_fraction=0.5))
    assert len(bigger["val"]) > len(s["val"]) and set(s["val"]) <= set(bigger["val"])  # raising it does something
    assert _rels(split_video_folder(tmp_path, val_fraction=0.2)) == s  # fixed


def test_val_folder_is_used_as_is(tmp_path):
    _tree(tmp_path, ["train/a.mp4", "train/b.mp4", "val/c.mp4", "test/d.mkv", "other/e.mp4"])
    s = _rels(split_video_folder(tmp_path, val_fraction=0.9))
    assert s == {"train": ["other/e.mp4", "train/a.mp4", "train/b.mp4"], "val": ["val/c.mp4"], "test": ["test/d.mkv"]}


def test_flat_folder(tmp_path):
    _tree(tmp_path, [f"clip{i}.mp4" for i in range(40)] + ["sub/x.webm"])
    s = _rels(split_video_folder(tmp_path, val_fraction=0.25))
    assert s["test"] == [] and s["val"] and len(s["train"]) + len(s["val"]) == 41


def test_list_files(tmp_path):
    _tree(tmp_path, ["a/1.mp4", "a/2.mp4", "b/3.mp4", "b/4.mp4", "unlisted.mp4"])
    (tmp_path / "train.txt").write_text("# training\na/1.mp4\na/2.mp4\tlabel\n\nb/3.mp4\n")
    (tmp_path / "test.txt").write_text("b/4.mp4\n")
    s = _rels(split_video_folder(tmp_path, val_fraction=0.0))
    assert s == {"train": ["a/1.mp4", "a/2.mp4", "b/3.mp4"], "val": [], "test": ["b/4.mp4"]}
    (tmp_path / "val.txt").write_text("a/2.mp4\n")
    assert _rels(split_video_folder(tmp_path, val_fraction=0.5))["val"] == ["a/2.mp4"]
    (tmp_path / "test.txt").write_text("b/missing.mp4\n")
    with pytest.raises(ValueError, match="missing.mp4"):
        split_video_folder(tmp_path)


def test_l3_recipe_refuses_too_few_in_one_line(tmp_path):
    from models.l3.recipe import L3Recipe, L3TrainConfig

    _tree(tmp_path, ["train/a.mp4", "test/b.mp4"])
    with pytest.raises(ValueError, match=r"found 1 and 0 \(1 test\) of 2.*val_fraction"):
        L3Recipe(L3TrainConfig(size="tiny")).sources(tmp_path)
