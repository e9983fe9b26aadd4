"""apps.build_stamp_videos on a small stand-in stamp tree (pictures and sounds made here), then
apps.eval_l3 --data on what it wrote: splits by sound, sidecars, SOURCES.tsv, determinism, the
threshold chosen on the validation videos and the two test rows."""
from __future__ import annotations

import json

import numpy as np
import pytest

SMALL = ["--size", "32", "--fps", "2", "--seconds", "3", "--single-per-stamp", "1", "--train-scenes", "2",
         "--val-scenes", "3", "--test-scenes", "4", "--val-share", "0.25", "--test-share", "0.35", "--offscreen-share", "0.3"]
COPYRIGHT = "Format: x\n\nFiles: *\nCopyright: 2002 Someone\nLicense: GPL-2\n\nFiles: food/*\nCopyright: 2010 Other\nLicense: CC0\n"


def _stand_in(root):
    """12 stamps in 2 folders (two share a sound, as a letter's filled and outlined forms), one
    picture without a sound and an animals/ stamp (both left out)."""
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    names = [f"{'food' if i % 2 else 'town'}/thing{i}" for i in range(11)] + ["town/thing0_outline", "animals/cat", "town/mute"]
    for i, name in enumerate(names):
        path = root / (name + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        rgba = np.zeros((20, 16, 4), np.uint8)
        rgba[2:18, 3:13, :3] = rng.integers(0, 255, 3)
        rgba[2:18, 3:13, 3] = 255
        Image.fromarray(rgba, "RGBA").save(path)
        if name == "town/mute":
            continue
        seed = 0 if name == "town/thing0_outline" else i
        tone = np.sin(2 * np.pi * (200 + 50 * seed) * np.arange(8000) / 8000).astype(np.float32) * 0.5
        sf.write(root / (name + ".ogg"), tone, 8000, format="OGG", subtype="VORBIS")
    (root / "copyright").write_text(COPYRIGHT)


@pytest.fixture(scope="module")
def stamp_set(tmp_path_factory):
    from apps.build_stamp_videos import main

    base = tmp_path_factory.mktemp("stamps")
    _stand_in(base / "tree")
    args = [str(base / "out"), "--stamps", str(base / "tree"), "--copyright", str(base / "tree" / "copyright"), *SMALL]
    assert main(args) == 0
    return base, args


def test_layout_splits_and_sources(stamp_set):
    from models.datasets.formats import split_video_folder
    from models.datasets.formats.video_boxes import read_source_boxes

    base, _ = stamp_set
    out = base / "out"
    stamps = [line.split("\t") for line in (out / "STAMPS.tsv").read_text().splitlines()[1:]]
    names = {s[0] for s in stamps}
    assert "animals/cat" not in names and "town/mute" not in names and len(names) == 12
    split_of = {s[0]: s[1] for s in stamps}
    assert split_of["town/thing0"] == split_of["town/thing0_outline"]  # one sound, one side
    assert {s[1] for s in stamps} == {"train", "val", "test"}
    splits = split_video_folder(out)
    assert {f.relpath.split("/")[1] for f in splits["test"]} == {"seen", "unseen"}
    assert len(splits["val"]) and all(f.relpath.startswith("val/") for f in splits["val"])
    rows = [line.split("\t") for line in (out / "SOURCES.tsv").read_text().splitlines()]
    assert rows[0] == ["file", "role", "package", "package_file", "copyright", "license"]
    by_file = {}
    for r in rows[1:]:
        by_file.setdefault(r[0], []).append(r)
        assert r[5] == ("CC0" if "/stamps/food/" in r[3] else "GPL-2")
    for f in splits["train"] + splits["val"] + splits["test"]:
        assert f.relpath in by_file and read_source_boxes(f.path) is not None
    for f in splits["test"]:
        used = {r[3].rsplit("/stamps/", 1)[1].rsplit(".", 1)[0] for r in by_file[f.relpath]}
        want = "train" if "/seen/" in f.relpath else "test"
        assert {split_of[u] for u in used} == {want}, f.relpath
        shown = [r for r in by_file[f.relpath] if r[1] != "heard off screen"]
        assert len(shown) >= 2 * 3  # >= 3 stamps on screen, png + ogg each


def test_deterministic(stamp_set, tmp_path):
    from apps.build_stamp_videos import main

    base, args = stamp_set
    again = [str(tmp_path / "again")] + args[1:]
    assert main(again) == 0
    for name in ("SOURCES.tsv", "STAMPS.tsv", "test/unseen/scene-0001.boxes.json", "val/scenes/scene-0000.boxes.json"):
        assert (tmp_path / "again" / name).read_text() == (base / "out" / name).read_text()


def test_eval_l3_data(stamp_set, capsys):
    import torch

    from apps.eval_l3 import main
    from models.l3.network import L3_TINY, L3Net, load_checkpoint, save_checkpoint

    base, _ = stamp_set
    torch.manual_seed(0)
    ckpt = base / "l3.pt"
    save_checkpoint(ckpt, L3Net(L3_TINY).eval())
    rc = main([str(ckpt), "--data", str(base / "out"), "--write-threshold", "--threads", "1", "--pairs", "8",
               "--render-workers", "1", "--json", str(base / "eval.json")])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "chosen on the validation videos" in printed.err
    r = json.loads((base / "eval.json").read_text())
    assert set(r["rows"]) == {"all", "seen", "unseen"} and r["split"] == "test"
    for row in r["rows"].values():
        loc = row["localization"]
        assert loc["n_hops"] > 0 and 0 <= loc["pointing"] <= 1 and 0 < loc["chance_area"] < 1
        assert 1 / 4 <= loc["chance_objects"] <= 1 / 3 and row["avc"]["n_pairs"] == 8 and row["no_source"]["n_hops"] > 0
        assert 0 <= loc["pointing_mismatched"] <= 1
    assert "unseen" in printed.out and "chance(area)" in printed.out
    _, threshold = load_checkpoint(ckpt)
    assert threshold == pytest.approx(r["threshold"])
