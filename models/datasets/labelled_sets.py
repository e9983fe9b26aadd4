"""A user's labelled clip folder, recognised by its layout and split honestly.

The clip recipes (``baseline``, ``slowfast-lite``) train on any folder here whose layout is one
of :data:`CLIP_LAYOUTS`; :func:`read_labelled_set` recognises it, reads its annotation files with
the format readers (models/datasets/formats) and returns a :class:`LabelledSet`: the class
names, whether the labels are multi-label, and three :class:`~models.datasets.clips.ClipIndex`
splits.

The splits follow one rule in every layout:

* **test**: the set's own test split where it has one (VGG-Sound ``test.csv``, AudioSet
  ``eval_segments.csv``, a ``test/`` folder), or fold ``fold`` of the set's folds (ESC-50's
  ``fold`` column; for layouts without folds, :func:`assign_folds` deals the clips into ``folds``
  class-stratified folds by source). Never seen in training or selection.
* **validation**: the set's own validation split where it has one (``val/`` folder, DESED
  ``metadata/validation``), else carved from the training clips: about ``val_fraction`` of each
  class, whole sources at a time (ESC-50 ``src_file``, the YouTube id, the file), so no
  recording sits on both sides. ``best.pt`` is chosen on it.
* **train**: the rest.

Example::

    s = read_labelled_set(Path("ESC-50-master"), fold=1)
    print(s.describe())    # esc50: 38 classes; 1,200 train / 200 validation / 400 test clips ...
    decoded = s.train.decode(16_000, 5.0)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from models.datasets.clip_decode import ClipSpec
from models.datasets.clips import ClipIndex
from models.datasets.desed_layout import find_desed_files, looks_like_desed
from models.datasets.formats import (AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, read_audioset_class_labels, read_audioset_segments,
                                     read_dcase_strong, read_dcase_weak, read_esc50, read_video_folder,
                                     read_vggsound_csv, read_vggsound_split_csv)

__all__ = ["CLIP_LAYOUTS", "LAYOUTS", "LabelledSet", "assign_folds", "carve_validation", "check_layout", "detect_layout",
           "detect_layouts", "read_labelled_set",
           "refuse_layout"]

#: The layouts the clip recipes read, with what marks each one.
CLIP_LAYOUTS: dict[str, str] = {
    "esc50": "ESC-50: meta/esc50.csv (or esc50.csv) + audio/",
    "folder": "folder per class: ROOT/<class>/<audio or video> (optionally under train/ val/ test/)",
    "vggsound": "VGG-Sound: train.csv + test.csv (or vggsound.csv) + the clips in audio/, video/, wav/ or ROOT",
    "audioset": "AudioSet: balanced_train_segments.csv (+ eval_segments.csv) + class_labels_indices.csv + audio/",
    "desed": "DESED/DCASE: metadata/train/weak.tsv or synthetic*.tsv + metadata/validation/validation.tsv + audio/",
}
#: Every layout a recipe may read (``Recipe.reads``): the clip layouts and the others.
LAYOUTS: dict[str, str] = {
    **CLIP_LAYOUTS,
    "epic100": "EPIC-KITCHENS-100: EPIC_100_train.csv + EPIC_100_validation.csv + class csvs + the audio HDF5",
    "epic_sounds": "EPIC-SOUNDS: EPIC_Sounds_train.csv + EPIC_Sounds_validation.csv + the audio HDF5",
    "videos": "any folder of videos with sound (flat, train/ val/ test/ folders, or train.txt/val.txt/test.txt lists)",
}
MEDIA_EXTENSIONS = tuple(VIDEO_EXTENSIONS) + tuple(AUDIO_EXTENSIONS)


@dataclass(frozen=True)
class LabelledSet:
    """A labelled clip set, split.

    Attributes:
        layout: A key of :data:`CLIP_LAYOUTS`.
        root: The folder.
        classes: Class names; a label's id is its position.
        multi_label: Whether a clip may carry several labels (AudioSet, DESED).
        train, val, test: The splits (``test`` may be empty).
        folds: The folds the set can be cross-validated over (``cv=K``).
        split: How the splits were made, in words.
    """

    layout: str
    root: Path
    classes: tuple[str, ...]
    multi_label: bool
    train: ClipIndex
    val: ClipIndex
    test: ClipIndex
    folds: tuple[int, ...]
    split: str

    def describe(self) -> str:
        kind = "multi-label" if self.multi_label else "single-label"
        return (f"{self.layout}: {len(self.classes)} classes ({kind}); {len(self.train):,} train / "
                f"{len(self.val):,} validation / {len(self.test):,} test clips ({self.split})")


# --------------------------------------------------------------------------------------------
# recognising a layout


def _esc50_csv(root: Path) -> Path | None:
    return next((p for p in (root / "meta" / "esc50.csv", root / "esc50.csv") if p.is_file()), None)


def _class_folders(root: Path) -> bool:
    """Whether ``root`` (or its train/ folder) holds class folders with media files."""
    base = root / "train" if (root / "train").is_dir() else root
    for sub in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else ():
        if any(f.suffix.lower() in MEDIA_EXTENSIONS for f in sub.rglob("*") if f.is_file()):
            return True
    return False


def detect_layouts(root: Path) -> list[str]:
    """Every layout ``root`` holds (keys of :data:`LAYOUTS` other than ``videos``, which any
    folder with videos is), in the order :func:`detect_layout` prefers them; a real EPIC folder
    holds both the EPIC-KITCHENS-100 and the EPIC-SOUNDS annotations."""
    root = Path(root)
    found = []
    if _esc50_csv(root):
        found.append("esc50")
    if (root / "balanced_train_segments.csv").is_file() or (root / "eval_segments.csv").is_file():
        found.append("audioset")
    if looks_like_desed(root):
        found.append("desed")
    if ((root / "train.csv").is_file() and (root / "test.csv").is_file()) or (root / "vggsound.csv").is_file():
        found.append("vggsound")
    if (root / "EPIC_100_train.csv").is_file():
        found.append("epic100")
    if (root / "EPIC_Sounds_train.csv").is_file():
        found.append("epic_sounds")
    if not found and root.is_dir() and _class_folders(root):
        found.append("folder")
    return found


def detect_layout(root: Path) -> str | None:
    """The layout of ``root`` (the first of :func:`detect_layouts`), or None."""
    found = detect_layouts(root)
    return found[0] if found else None


def refuse_layout(root: Path, recipe: str, reads: Sequence[str], found: str | None, readers: Sequence[str] = ()) -> ValueError:
    """The one-line error for ``--data`` a recipe cannot read: what it reads, what was found,
    and the recipes (``readers``) that read what was found."""
    what = "no layout avlive knows" if found is None else LAYOUTS[found]
    formats = "; ".join(LAYOUTS[k] for k in reads)
    hint = f" (read by --recipe {', '.join(readers)})" if readers else ""
    return ValueError(f"--data {root}: recipe {recipe!r} reads {formats}; found {what}{hint}")


def check_layout(root: Path, recipe: str, reads: Sequence[str], readers_of: Callable[[str], Sequence[str]] | None = None) -> None:
    """Refuse ``root`` (:func:`refuse_layout`) unless its layout is one of ``reads``; a recipe
    that reads ``videos`` takes any folder its own reader can list. ``readers_of(layout)`` names
    the recipes that read a layout, for the error.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: the layout is not one the recipe reads.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder; recipe {recipe!r} reads "
                                f"{'; '.join(LAYOUTS[k] for k in reads)}")
    layouts = detect_layouts(root)
    if any(name in reads for name in layouts) or ("videos" in reads and layouts in ([], ["folder"])):
        return
    found = layouts[0] if layouts else None
    raise refuse_layout(root, recipe, reads, found, readers_of(found) if readers_of and found else ())


# --------------------------------------------------------------------------------------------
# splitting


def _source_groups(clips: Sequence[ClipSpec], source: Callable[[ClipSpec], str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault(source(c), []).append(i)
    return groups


def assign_folds(clips: Sequence[ClipSpec], folds: int, source: Callable[[ClipSpec], str], seed: int = 0) -> list[int]:
    """Fold 1..``folds`` per clip: whole sources at a time, balanced per class (by each source's
    first clip's first label), in a shuffled order drawn from ``seed``."""
    if folds < 2:
        raise ValueError(f"folds: expected >= 2, found {folds}")
    groups = _source_groups(clips, source)
    by_class: dict[str, list[str]] = {}
    for key, rows in groups.items():
        labels = clips[rows[0]].labels
        by_class.setdefault(labels[0] if labels else "", []).append(key)
    rng = np.random.default_rng(seed)
    out = [0] * len(clips)
    load = np.zeros(folds)
    for name in sorted(by_class):
        keys = sorted(by_class[name])
        rng.shuffle(keys)
        counts = np.zeros(folds)
        for key in keys:  # the fold with the fewest clips of this class, then the fewest overall
            f = int(np.lexsort((load, counts))[0])
            for i in groups[key]:
                out[i] = f + 1
            counts[f] += len(groups[key])
            load[f] += len(groups[key])
    return out


def carve_validation(labels: Sequence[str], sources: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train rows, validation rows) of clips with these first labels and sources: about
    ``fraction`` of each class's clips, whole sources at a time, at least one source of every
    class that has two or more, drawn from ``seed`` (when no class has two sources: about
    ``fraction`` of all sources, at least one)."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(sources):
        groups.setdefault(key, []).append(i)
    by_class: dict[str, list[str]] = {}
    for key, rows in groups.items():
        by_class.setdefault(labels[rows[0]], []).append(key)
    rng = np.random.default_rng([seed, 7])
    val: list[int] = []
    for name in sorted(by_class):
        keys = sorted(by_class[name])
        if len(keys) < 2:
            continue
        rng.shuffle(keys)
        total = sum(len(groups[k]) for k in keys)
        taken = 0
        for key in keys[:-1]:
            if taken and taken + len(groups[key]) > fraction * total:
                break
            val.extend(groups[key])
            taken += len(groups[key])
    if not val and len(groups) >= 2:  # no class has two sources (small multi-label sets): any sources
        keys = sorted(groups)
        rng.shuffle(keys)
        for key in keys[:max(1, round(fraction * len(keys)))]:
            val.extend(groups[key])
    chosen = set(val)
    return [i for i in range(len(labels)) if i not in chosen], sorted(val)


def _split(layout: str, root: Path, classes: Sequence[str], multi: bool, pool: list[ClipSpec], pool_folds: list[int] | None,
           own_val: list[ClipSpec] | None, own_test: list[ClipSpec] | None, *, fold: int, folds: int, val_fraction: float,
           seed: int, source: Callable[[ClipSpec], str]) -> LabelledSet:
    """Apply the module's split rule to ``pool`` (the clips not in the set's own val/test)."""
    notes = []
    fold_ids = pool_folds
    if fold and own_test:
        raise ValueError(f"fold={fold}: {root} has its own test split; cross-validation folds are for sets without one "
                         f"(leave fold and cv at 0)")
    if fold and fold_ids is None:
        fold_ids = assign_folds(pool, folds, source, seed)
        notes.append(f"{folds} folds dealt by source")
    available = tuple(sorted(set(fold_ids))) if fold_ids is not None else ()
    if fold:
        if fold not in available:
            raise ValueError(f"fold={fold}: {root} has folds {list(available)}")
        test = [c for c, f in zip(pool, fold_ids) if f == fold]
        pool = [c for c, f in zip(pool, fold_ids) if f != fold]
        notes.append(f"test = fold {fold}")
    else:
        test = list(own_test or [])
        notes.append("test = the set's own test split" if own_test else "no test split")
    if own_val:
        val, train = list(own_val), pool
        notes.append("validation = the set's own validation split")
    else:
        train_rows, val_rows = carve_validation([c.labels[0] if c.labels else "" for c in pool], [source(c) for c in pool],
                                                val_fraction, seed)
        train, val = [pool[i] for i in train_rows], [pool[i] for i in val_rows]
        notes.append(f"validation = {val_fraction:.0%} of the training clips by source")
    if not train or not val:
        raise ValueError(f"--data {root}: too few clips to split ({len(train)} train, {len(val)} validation); "
                         f"a class needs clips from two or more sources")
    return LabelledSet(layout, root, tuple(classes), multi, ClipIndex(tuple(train)), ClipIndex(tuple(val)),
                       ClipIndex(tuple(test)), available if fold_ids is not None else tuple(range(1, folds + 1)),
                       "; ".join(notes))


# --------------------------------------------------------------------------------------------
# the layouts


def _read_esc50(root: Path, **kw) -> LabelledSet:
    records = read_esc50(_esc50_csv(root))
    audio = root / "audio" if (root / "audio").is_dir() else root
    names: dict[int, str] = {}
    for r in records:
        if names.setdefault(r.target, r.category) != r.category:
            raise ValueError(f"{_esc50_csv(root)}: class id {r.target} is both {names[r.target]!r} and {r.category!r}")
    classes = [names[t] for t in sorted(names)]
    pool = [ClipSpec(audio / r.filename, (r.category,), key=f"{r.fold}/{r.src_file}/{r.filename}") for r in records]
    return _split("esc50", root, classes, False, pool, [r.fold for r in records], None, None,
                  source=lambda c: c.key.split("/")[1], **kw)


def _read_folder(root: Path, **kw) -> LabelledSet:
    def listed(base: Path) -> list[tuple[str, Path]]:
        return [(f.relpath.split("/")[0], f.path) for f in read_video_folder(base, include_audio=True) if "/" in f.relpath]

    splits = {s: listed(root / s) for s in ("train", "val", "test") if (root / s).is_dir()}
    rows = splits.get("train") if "train" in splits else listed(root)
    classes = sorted({name for part in ([rows] + [splits.get(s, []) for s in ("val", "test")]) for name, _ in part})

    def specs(part) -> list[ClipSpec]:
        return [ClipSpec(path, (name,), key=os.fspath(path.relative_to(root))) for name, path in part]

    return _split("folder", root, classes, False, specs(rows), None, specs(splits["val"]) if "val" in splits else None,
                  specs(splits["test"]) if "test" in splits else None, source=lambda c: c.key, **kw)


def _vggsound_folder(root: Path, stems: Sequence[str]) -> Path:
    for sub in ("audio", "video", "wav", ""):
        folder = root / sub if sub else root
        if any((folder / f"{s}{ext}").is_file() for s in stems[:50] for ext in (".wav", ".mp4")):
            return folder
    raise FileNotFoundError(f"--data {root}: none of the first clips of the list ({stems[0]}.wav or .mp4, ...) is in "
                            f"audio/, video/, wav/ or the folder itself")


def _read_vggsound(root: Path, **kw) -> LabelledSet:
    if (root / "train.csv").is_file():
        train = read_vggsound_split_csv(root / "train.csv", "train")
        test = read_vggsound_split_csv(root / "test.csv", "test")
    else:
        clips = read_vggsound_csv(root / "vggsound.csv")
        train, test = [c for c in clips if c.split == "train"], [c for c in clips if c.split == "test"]
    folder = _vggsound_folder(root, [Path(c.filename).stem for c in train + test])

    def spec(c) -> ClipSpec:
        stem = Path(c.filename).stem
        wav = folder / f"{stem}.wav"
        return ClipSpec(wav if wav.is_file() else folder / c.filename, (c.label,), key=c.ytid)

    classes = sorted({c.label for c in train + test})
    return _split("vggsound", root, classes, False, [spec(c) for c in train], None, None, [spec(c) for c in test] or None,
                  source=lambda c: c.key, **kw)


def _read_audioset(root: Path, **kw) -> LabelledSet:
    index = {c.mid: c.display_name for c in read_audioset_class_labels(root / "class_labels_indices.csv")}
    audio = root / "audio" if (root / "audio").is_dir() else root

    def specs(name: str) -> list[ClipSpec]:
        path = root / name
        if not path.is_file():
            return []
        out = []
        for s in read_audioset_segments(path):
            labels = tuple(index[m] for m in s.positive_labels if m in index)
            out.append(ClipSpec(audio / f"Y{s.ytid}_{s.start_seconds:.3f}_{s.end_seconds:.3f}.wav", labels, key=s.ytid))
        return out

    train, test = specs("balanced_train_segments.csv"), specs("eval_segments.csv")
    seen = {label for c in train + test for label in c.labels}
    classes = [name for name in dict.fromkeys(index.values()) if name in seen]
    return _split("audioset", root, classes, True, train, None, None, test or None, source=lambda c: c.key, **kw)


def _read_desed(root: Path, **kw) -> LabelledSet:
    """Weak clips and strong soundscapes as clip tags (the classes present); validation.tsv is
    the validation split."""
    files = find_desed_files(root)

    def tagged(pair: tuple[Path, Path]) -> list[ClipSpec]:
        tsv, audio = pair
        strong = read_dcase_strong(tsv)
        return [ClipSpec(audio / f, tuple(dict.fromkeys(e.label for e in strong.events_for(f))), key=f) for f in strong.files]

    pool = []
    if files.weak:
        tsv, audio = files.weak
        pool += [ClipSpec(audio / c.filename, tuple(c.labels), key=c.filename) for c in read_dcase_weak(tsv)]
    if files.strong:
        pool += tagged(files.strong)
    val = tagged(files.validation)
    classes = sorted({label for c in pool + (val or []) for label in c.labels})
    return _split("desed", root, classes, True, pool, None, val, None, source=lambda c: c.key, **kw)


_READERS: dict[str, Callable[..., LabelledSet]] = {
    "esc50": _read_esc50, "folder": _read_folder, "vggsound": _read_vggsound, "audioset": _read_audioset,
    "desed": _read_desed,
}


def read_labelled_set(root: Path, *, recipe: str, reads: Sequence[str] = tuple(CLIP_LAYOUTS), fold: int = 0,
                      folds: int = 5, val_fraction: float = 0.15, seed: int = 0) -> LabelledSet:
    """Recognise ``root``'s layout, read it and split it (the module's rule).

    Args:
        root: The ``--data`` folder.
        recipe: The recipe's name (for the error).
        reads: The layouts the recipe reads.
        fold: 0: the set's own test split (or none); k: fold k is the test split.
        folds: How many folds to deal for sets without folds of their own.
        val_fraction: The share of each class's training clips held out for validation where
            the set has no validation split of its own.
        seed: Seeds the dealing of folds and the carving of validation.

    Raises:
        ValueError: The folder's layout is not one ``reads`` lists (one line: what the recipe
            reads and what was found), or a split comes out empty.
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    layouts = detect_layouts(root)
    layout = next((name for name in layouts if name in reads), None)
    if layout is None:
        raise refuse_layout(root, recipe, reads, layouts[0] if layouts else None)
    return _READERS[layout](root, fold=fold, folds=folds, val_fraction=val_fraction, seed=seed)
