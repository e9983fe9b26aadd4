"""python -m apps.transfer RUN --data ESC50_DIR --layer conv7: linear transfer of a SoundNet layer to
labelled sounds, side by side with the same SVM on log-mel statistics.

RUN is a run folder or checkpoint of a SoundNet recipe (``python -m models.train --recipe
soundnet-lite``), or a network name (``soundnet8``, ``soundnet5``, ``soundnet-lite``) for an
untrained network with the authors' initialisation (a floor for what training adds). ESC50_DIR
is an ESC-50 layout (``meta/esc50.csv`` or ``esc50.csv``, clips in ``audio/``; ``--esc10`` keeps
the ESC-10 clips) or a DCASE acoustic-scene folder in the TAU Urban Acoustic Scenes layout
(``meta.csv``: tab-separated ``filename  scene_label  identifier ...``, file names relative to
the folder). A scene folder has no folds of its own that fit cross-validation (its
``evaluation_setup`` has one train/evaluate split), so its clips are put into ``--scene-folds``
folds by recording location (``identifier``; the clip's own name without one): a location's
clips never sit on both sides of a split. For each test fold (the dataset's own folds), a one-vs-rest linear SVM
(models/soundnet/transfer.py) is trained on the windows of the other folds' clips, C chosen by
leave-one-fold-out cross-validation on those folds, and a test clip's class is the argmax of its
windows' mean decision value. Printed: classes, clips, chance, per-fold and mean accuracy of each
layer and of the log-mel statistics (and, with ``--supervised-epochs``, of the same network trained
from scratch on each split's training clips: the paper's supervised comparison).

``--write-labeler OUT.pt`` also fits the first layer's SVM on every clip and writes it with the
network as one labeler file: ``avlive --labeler OUT.pt`` runs it, ``python -m models.export
OUT.pt`` writes its ONNX.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from models.datasets.formats.esc50 import read_esc50
from models.io.media import read_audio
from models.soundnet.network import SAMPLE_RATE, SoundNet
from models.soundnet.supervised import cross_validate_supervised
from models.soundnet.transfer import (
    DEFAULT_CS,
    Windows,
    cross_validate,
    fit_svm,
    layer_features,
    logmel_statistics,
    save_linear_labeler,
)


def load_network(source: str) -> tuple[SoundNet, str]:
    """A trained SoundNet from a run folder or checkpoint, or an untrained one by network name."""
    from models.families import NETWORKS, load_trained

    if not Path(source).exists():
        if source in NETWORKS and source.startswith("soundnet"):
            return NETWORKS.create(source).eval(), f"untrained {source}"
        raise FileNotFoundError(f"{source}: expected a SoundNet run folder, checkpoint or network name "
                                f"(soundnet8, soundnet5, soundnet-lite)")
    _, model, metadata = load_trained(source)
    if metadata.get("family") != "soundnet" or not isinstance(model, SoundNet):
        raise ValueError(f"{source}: expected a SoundNet run, found a {metadata.get('family')!r} model")
    return model.eval(), str(source)


def read_esc50_folder(root: Path, esc10: bool = False):
    """``(clips (N,) float32 arrays at 22,050 Hz, targets (N,), folds (N,), class names)``; targets
    renumbered 0..K-1 in the order of the dataset's class ids."""
    meta = next((p for p in (root / "meta" / "esc50.csv", root / "esc50.csv") if p.is_file()), None)
    if meta is None:
        raise FileNotFoundError(f"{root}: expected an ESC-50 layout (meta/esc50.csv or esc50.csv), found neither")
    records = [r for r in read_esc50(meta) if r.esc10 or not esc10]
    if not records:
        raise ValueError(f"{meta}: no clips{' marked esc10' if esc10 else ''}")
    ids = sorted({r.target for r in records})
    names = {r.target: r.category for r in records}
    audio = []
    for r in records:
        samples, _ = read_audio(root / "audio" / r.filename, sample_rate=SAMPLE_RATE, mono=True)
        audio.append(samples)
    targets = np.array([ids.index(r.target) for r in records])
    return audio, targets, np.array([r.fold for r in records]), [names[i] for i in ids]


def read_scene_folder(root: Path, n_folds: int = 4):
    """A DCASE acoustic-scene folder (``meta.csv``): ``(clips at 22,050 Hz, targets, folds 1..n,
    scene names)``; scenes sorted by name, locations dealt to folds in sorted order."""
    meta = root / "meta.csv"
    lines = [line.rstrip("\r").split("\t") for line in meta.read_text().splitlines() if line.strip()]
    header = lines[0] if lines else []
    if "filename" not in header or "scene_label" not in header:
        raise ValueError(f"{meta}: expected a tab-separated header with filename and scene_label, found {header}")
    rows = [dict(zip(header, line)) for line in lines[1:]]
    if not rows:
        raise ValueError(f"{meta}: no clips")
    names = sorted({r["scene_label"] for r in rows})
    places = sorted({r.get("identifier") or r["filename"] for r in rows})
    if len(places) < n_folds:
        raise ValueError(f"{meta}: {len(places)} recording locations cannot fill {n_folds} folds (--scene-folds)")
    fold_of = {place: 1 + i % n_folds for i, place in enumerate(places)}
    audio = [read_audio(root / r["filename"], sample_rate=SAMPLE_RATE, mono=True)[0] for r in rows]
    targets = np.array([names.index(r["scene_label"]) for r in rows])
    folds = np.array([fold_of[r.get("identifier") or r["filename"]] for r in rows])
    return audio, targets, folds, names


def read_labelled_folder(root: Path, esc10: bool = False, scene_folds: int = 4):
    """An ESC-50 layout or a DCASE scene folder, whichever ``root`` holds."""
    if (root / "meta.csv").is_file() and not (root / "meta" / "esc50.csv").is_file():
        if esc10:
            raise ValueError(f"--esc10: {root} is a DCASE scene folder, not ESC-50")
        return read_scene_folder(root, scene_folds)
    return read_esc50_folder(root, esc10)


def _c(value: float) -> str:
    return f"{value:g}" if np.isfinite(value) else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.transfer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a SoundNet run folder or checkpoint, or a network name (untrained)")
    parser.add_argument("--data", type=Path, required=True,
                        help="an ESC-50 layout folder, or a DCASE acoustic-scene folder (meta.csv)")
    parser.add_argument("--scene-folds", type=int, default=4, help="folds of a scene folder, by recording location")
    parser.add_argument("--layer", default="conv7", help="layer(s), comma-separated, e.g. pool5,conv6,conv7")
    parser.add_argument("--esc10", action="store_true", help="only the clips marked esc10")
    parser.add_argument("--window", type=float, default=2.0, help="window seconds (default 2)")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default 0.5)")
    parser.add_argument("--C", default=",".join(f"{c:g}" for c in DEFAULT_CS), help="SVM C candidates")
    parser.add_argument("--supervised-epochs", type=int, default=0, metavar="N",
                        help="also train the same network from scratch on each split's training clips for N epochs "
                             "(the paper's supervised comparison; first layer, no teacher)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-labeler", type=Path, default=None, metavar="OUT.pt",
                        help="also fit the first layer's SVM on every clip and write the labeler file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        net, what = load_network(args.run)
        layers = [name.strip() for name in args.layer.split(",") if name.strip()]
        for name in layers:
            if name not in net.config.layer_names():
                raise ValueError(f"--layer: expected names of {', '.join(net.config.layer_names())}, found {name!r}")
        Cs = tuple(float(c) for c in args.C.split(","))
        windows = Windows(args.window, args.hop)
        clips, targets, folds, names = read_labelled_folder(args.data, args.esc10, args.scene_folds)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    k = len(names)
    majority = np.bincount(targets).max() / len(targets)
    print(f"data {args.data}{' (ESC-10)' if args.esc10 else ''}: {k} classes, {len(clips)} clips, folds "
          f"{sorted(set(folds.tolist()))}; chance {100 / k:.1f} % (majority class {100 * majority:.1f} %)")
    print(f"network {what} ({net.config.name}); windows {windows.seconds:g} s every {windows.hop_seconds:g} s; "
          f"C from {Cs} by leave-one-fold-out on the training folds")
    started = time.perf_counter()
    features = {f"soundnet {name}": layer_features(net, clips, name, windows) for name in layers}
    features["log-mel mean+std"] = logmel_statistics(clips, windows)
    print(f"features in {time.perf_counter() - started:.1f} s")
    results = {}
    for label, feats in features.items():
        results[label] = cross_validate(feats, targets, folds, k, Cs)
    if args.supervised_epochs > 0:
        started = time.perf_counter()
        accuracy = cross_validate_supervised(net.config, layers[0], clips, targets, folds, k, windows,
                                             args.supervised_epochs)
        results[f"supervised {layers[0]} ({args.supervised_epochs} ep)"] = {f: (a, float("nan"))
                                                                            for f, a in accuracy.items()}
        print(f"supervised networks trained in {time.perf_counter() - started:.0f} s")
    fold_ids = sorted(set(folds.tolist()))
    width = max(len(label) for label in results)
    print(f"{'features':<{width}}  " + "  ".join(f"fold {f} (C)   " for f in fold_ids) + "  mean")
    for label, per_fold in results.items():
        cells = "  ".join(f"{100 * per_fold[f][0]:5.1f} ({_c(per_fold[f][1]):<5})" for f in fold_ids)
        mean = 100 * np.mean([per_fold[f][0] for f in fold_ids])
        print(f"{label:<{width}}  {cells}  {mean:5.1f} %")
    if args.write_labeler is not None:
        first = f"soundnet {layers[0]}"
        svm = fit_svm(features[first], targets, folds, k, Cs)
        path = save_linear_labeler(args.write_labeler, net, layers[0], svm, names, windows, source=what)
        print(f"wrote {path} (layer {layers[0]}, C {svm.C:g}): avlive --labeler {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
