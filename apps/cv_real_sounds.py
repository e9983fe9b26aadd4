"""python -m apps.cv_real_sounds OUT: 5-fold cross-validation of the real-sound demo labeler's
recipe, beside a linear SVM on log-mel statistics in the same folds.

The real-sound demo labeler (``models/demo/real-sounds``) is one CRNN ``lite`` run: trained on
soundscapes of folds 1-3 of ``apps.build_real_sounds``, its checkpoint chosen on fold 4, scored on
fold 5. This program repeats that recipe once for each held-out fold K:

1. soundscapes with fold K held out, fold K-1 (round the circle) for validation and the other three
   for training (``apps.build_real_sounds --eval-fold K``), in ``OUT/fold-K/desed``;
2. ``python -m models.train --recipe crnn-lite`` on them into ``OUT/fold-K/run`` with the shipped
   labeler's settings (``clip_seconds=5 epochs=55 tail_weight=0``, any ``KEY=VALUE`` given after the options) and
   ``max_steps=--steps``, its best checkpoint
   chosen on the validation soundscapes (event F1);
3. ``python -m models.export`` of that run, then its clip accuracy on fold K's ESC-50 clips, each
   clip played as a stream the way ``avlive`` hears a microphone (``apps.eval_clips``: the class
   with the highest score at any frame; rolling-label settings play no part).

The SVM row is ``apps.transfer``'s log-mel mean+std one-vs-rest linear SVM (2 s windows every
0.5 s, C by leave-one-fold-out on the training folds), trained on the four other folds' clips.

A fold whose figures are written is not done again; a killed training continues with
``--resume``. Written: ``OUT/esc50`` (the clips), ``OUT/cv.json``, ``OUT/cv.md`` (per fold, mean,
per class) and ``OUT/confusion.png`` (the CRNN's clip guesses, all folds pooled).

    python -m apps.cv_real_sounds out/cv-real-sounds
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from apps.build_real_sounds import (
    add_package_options,
    bed_audio,
    collect,
    fetch_packages,
    write_esc50_part,
    write_soundscapes,
)
from apps.eval_clips import evaluate as clip_accuracy
from apps.transfer import read_esc50_folder

FOLDS = (1, 2, 3, 4, 5)


def _atomic_json(path: Path, value) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def _run(argv: list[str]) -> None:
    print("$ " + " ".join(argv), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, *argv], check=True)


def best_validation(run: Path, metric: str = "event_f1") -> dict:
    """The evaluation record with the best ``metric`` in a run's metrics.jsonl, and the last step."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in records if r.get("kind") == "eval" and metric in r]
    if not evals:
        raise ValueError(f"{run}: no evaluation with {metric} in metrics.jsonl")
    best = max(evals, key=lambda r: r[metric])
    return {"step": best["step"], "last_step": max(r.get("step", 0) for r in records), metric: best[metric],
            **{k: best[k] for k in ("segment_f1",) if k in best}}


def train_fold(out: Path, fold: int, steps: int, threads: int, clip_seconds: float,
               overrides: list[str] = ()) -> dict:
    """Train, export and score one held-out fold; returns its figures (written to fold-K/figures.json)."""
    fold_dir = out / f"fold-{fold}"
    run = fold_dir / "run"
    started = time.perf_counter()
    train = ["-m", "models.train", "--recipe", "crnn-lite", "--data", str(fold_dir / "desed"), "--out", str(run),
             f"clip_seconds={clip_seconds:g}", "epochs=55", "tail_weight=0", f"max_steps={steps}", f"threads={threads}", *overrides]
    if (run / "config.json").is_file():
        train.append("--resume")
    _run(train)
    _run(["-m", "models.export", str(run)])
    figures = clip_accuracy(run / "model.onnx", out / "esc50", {fold}, threads=threads)
    figures.update(fold=fold, steps=steps, validation=best_validation(run),
                   seconds=round(time.perf_counter() - started, 1))
    _atomic_json(fold_dir / "figures.json", figures)
    return figures


def svm_by_fold(esc50: Path) -> dict[int, float]:
    """Top-1 of the log-mel mean+std linear SVM for each test fold (apps.transfer's row)."""
    from models.soundnet.transfer import DEFAULT_CS, Windows, cross_validate, logmel_statistics

    clips, targets, folds, names = read_esc50_folder(esc50)
    features = logmel_statistics(clips, Windows(2.0, 0.5))
    return {int(f): float(acc) for f, (acc, _c) in cross_validate(features, targets, folds, len(names), DEFAULT_CS).items()}


def table(figures: list[dict], svm: dict[int, float], classes: list[str]) -> str:
    rows = ["| held-out fold | clips | CRNN top-1 | SVM top-1 | validation fold: best event F1 (step of steps) |",
            "|---|---|---|---|---|"]
    for f in figures:
        v = f["validation"]
        rows.append(f"| {f['fold']} | {f['clips']} | {100 * f['top1']:.1f} % | {100 * svm[f['fold']]:.1f} % | "
                    f"{v['event_f1']:.3f} ({v['step']} of {v['last_step']}) |")
    crnn = np.mean([f["top1"] for f in figures])
    pooled = sum(f["top1"] * f["clips"] for f in figures) / sum(f["clips"] for f in figures)
    rows.append(f"| mean | {sum(f['clips'] for f in figures)} | {100 * crnn:.1f} % (pooled {100 * pooled:.1f} %) | "
                f"{100 * np.mean([svm[f['fold']] for f in figures]):.1f} % | |")
    rows += ["", "| class (CRNN) | " + " | ".join(f"fold {f['fold']}" for f in figures) + " | pooled |",
             "|---|" + "---|" * (len(figures) + 1)]
    for name in classes:
        cells, hits, total = [], 0, 0
        for f in figures:
            row = f["confusions"].get(name, {})
            n = sum(row.values())
            cells.append(f"{100 * row.get(name, 0) / n:.0f} %" if n else "–")
            hits, total = hits + row.get(name, 0), total + n
        rows.append(f"| {name} | " + " | ".join(cells) + (f" | {100 * hits / total:.0f} % |" if total else " | – |"))
    return "\n".join(rows) + "\n"


def confusion_matrix(figures: list[dict], classes: list[str]) -> np.ndarray:
    """``(C, C)`` counts of (true, guessed) clips over all folds."""
    index = {name: k for k, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), np.int64)
    for f in figures:
        for true, guesses in f["confusions"].items():
            for guess, n in guesses.items():
                matrix[index[true], index[guess]] += n
    return matrix


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.cv_real_sounds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder for the clips, the five folds' soundscapes and runs, and the tables")
    add_package_options(p)
    p.add_argument("--folds", type=int, nargs="+", default=list(FOLDS), choices=FOLDS, help="held-out folds to run")
    p.add_argument("--steps", type=int, default=800,
                   help="training steps per fold (default 800, about 20 min on 2 cores; the shipped labeler "
                        "trained 2200 and kept step 1200)")
    p.add_argument("--soundscapes", type=int, nargs=3, default=(960, 96, 96), metavar=("TRAIN", "VAL", "EVAL"))
    p.add_argument("--seconds", type=float, default=5.0, help="soundscape length (default 5 s, as shipped)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="more crnn-lite settings for every fold's training (e.g. batch_size=16)")
    args = p.parse_intermixed_args(argv)
    try:
        roots = fetch_packages(args.cache, args.debs)
        classes, sounds, _left_out = collect(roots, 40, 8, 5)
        if not classes:
            raise ValueError("no class has enough sounds; are the packages extracted? (see --cache)")
        esc50 = args.out / "esc50"
        if not (esc50 / "meta" / "esc50.csv").is_file():
            write_esc50_part(esc50, classes, sounds)
        beds = None
        figures = []
        for fold in args.folds:
            done = args.out / f"fold-{fold}" / "figures.json"
            if done.is_file():
                figures.append(json.loads(done.read_text()))
                if figures[-1].get("steps") != args.steps:
                    raise ValueError(f"{done.parent} was trained for {figures[-1].get('steps')} steps, not --steps "
                                     f"{args.steps}: give that count, or another OUT")
                print(f"fold {fold}: done before, top-1 {100 * figures[-1]['top1']:.1f} %", file=sys.stderr)
                continue
            desed = args.out / f"fold-{fold}" / "desed"
            if not (desed / "metadata" / "eval" / "eval.tsv").is_file():
                beds = beds or bed_audio(roots)
                counts = dict(zip(("train", "validation", "eval"), args.soundscapes))
                write_soundscapes(desed, classes, sounds, beds, counts, max_events=3, seed=0, seconds=args.seconds,
                                  eval_fold=fold)  # the builder's defaults: fold 5's set is the shipped one
            figures.append(train_fold(args.out, fold, args.steps, args.threads, args.seconds, args.overrides))
            print(f"fold {fold}: top-1 {100 * figures[-1]['top1']:.1f} % on {figures[-1]['clips']} clips", file=sys.stderr)
        svm = svm_by_fold(esc50)
    except subprocess.CalledProcessError as e:
        print(f"error: {' '.join(e.cmd[1:4])} ... exited with {e.returncode}; its message is above", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    names = [c.name for c in classes]
    text = table(figures, svm, names)
    (args.out / "cv.md").write_text(text, encoding="utf-8")
    _atomic_json(args.out / "cv.json", {"steps": args.steps, "folds": figures, "svm_top1": svm})
    from models.train.crossval import plot_confusion

    plot_confusion(confusion_matrix(figures, names), names, args.out / "confusion.png",
                   f"real-sound CRNN, clips of held-out folds {', '.join(map(str, args.folds))}")
    print(text)
    print(f"wrote {args.out}/cv.md, cv.json and confusion.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
