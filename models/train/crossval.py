"""Cross-validation of a clip recipe over a set's folds: ``python -m models.train ... cv=K``.

For each fold k = 1..K the recipe trains with ``fold=k`` into ``OUT/fold-k`` (validation carved
from the other folds' clips, ``best.pt`` chosen on it, fold k never seen), then its best
checkpoint scores fold k's clips. Beside it, in the same folds, two probes that need no network:
logistic regression on the per-band mean and standard deviation of the log-mel (and of its MFCCs),
fitted on the fold's training and validation clips.

Written to OUT: ``cv.json`` (per fold: the network's and the probes' top-1 and mAP, per-class
accuracy; the means), ``cv.md`` (the same as tables) and ``confusion.png`` (the network's
confusion matrix summed over the folds). A fold whose ``fold-k/test.json`` exists is not
retrained, so an interrupted cross-validation continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.core.atomic import atomic_write_text
from models.core.checkpoint import BEST, load_checkpoint
from models.datasets.user_clips import clip_figures
from models.evaluation.metrics import confusion_matrix, per_class_accuracy

__all__ = ["cross_validate", "probe_features"]

#: The probes' front end: 64 log-mel bands at 16 kHz, 25 ms windows, 10 ms hop.
PROBE_LOGMEL = FrontEndConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, center=True, power=2.0,
                              n_mels=64, mel_scale="htk", mel_norm=None, log_offset=1e-6)


def probe_features(audio: np.ndarray, lengths: np.ndarray, mfcc: int = 0) -> np.ndarray:
    """Per-band mean and standard deviation over each clip's decoded frames: (N, 2 × bands).

    Args:
        audio: (N, samples) at 16 kHz.
        lengths: (N,) valid samples per clip.
        mfcc: 0 for the 64 log-mel bands, else the first ``mfcc`` DCT-II coefficients of them.
    """
    from scipy.fft import dct

    front = FrontEnd(PROBE_LOGMEL)
    out = []
    with torch.inference_mode():
        for wave, n in zip(audio, lengths):
            n = max(int(n), PROBE_LOGMEL.win_length)
            x = front(torch.from_numpy(np.ascontiguousarray(wave[:n], np.float32))[None])[0].double().numpy()  # (T, 64)
            if mfcc:
                x = dct(x, type=2, norm="ortho", axis=1)[:, :mfcc]
            out.append(np.concatenate([x.mean(0), x.std(0)]))
    return np.stack(out)


def _fit_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities (N_test, K) of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    probe.fit(x_train, y_train)
    probs = np.zeros((len(x_test), num_classes))
    probs[:, probe.classes_] = probe.predict_proba(x_test)
    return probs


def _test_fold(recipe, out: Path, data: Path) -> dict:
    """Score ``out``'s best checkpoint on its test fold, and the probes on the same fold
    (``recipe`` is the one that trained it: its decoded training and validation clips are reused)."""
    config = recipe.config
    train_set, val_set = recipe.user.decoded or recipe.build_datasets(data)
    ckpt = load_checkpoint(out / "checkpoints" / BEST)
    recipe.restore(ckpt["metadata"])
    model = recipe.build_model()
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    test_set = recipe.user.test_dataset()
    if test_set is None:
        raise ValueError(f"fold={config.fold}: the split has no test clips")
    loader = DataLoader(test_set, batch_size=16, num_workers=0)
    with torch.inference_mode():
        probs, targets = recipe.user.scores(lambda wave: recipe.window_probabilities(model, wave), loader)
    classes = recipe.user.set.classes
    if targets.ndim == 2:
        targets = targets.argmax(1)
    result = {"fold": config.fold, "test_clips": int(len(targets)), "classes": list(classes),
              "network": clip_figures(probs, targets, False),
              "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class_accuracy(targets, probs.argmax(1), len(classes))],
              "confusion": confusion_matrix(targets, probs.argmax(1), len(classes)).tolist()}
    fit = [train_set.clips, val_set.clips]
    y_fit = np.concatenate([ds.targets.numpy() if ds.targets.ndim == 1 else ds.targets.numpy().argmax(1) for ds in (train_set, val_set)])
    test_clips = test_set.clips
    for name, mfcc in (("logmel_probe", 0), ("mfcc_probe", 20)):
        x_fit = np.concatenate([probe_features(c.audio, c.lengths, mfcc) for c in fit])
        x_test = probe_features(test_clips.audio, test_clips.lengths, mfcc)
        result[name] = clip_figures(_fit_probe(x_fit, y_fit, x_test, len(classes)), targets, False)
    return result


def plot_confusion(matrix: np.ndarray, classes, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix / np.maximum(1, matrix.sum(1, keepdims=True))
    size = max(5.0, 0.42 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90)
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _table(folds: list[dict]) -> str:
    rows = ["| fold | test clips | network top-1 | network mAP | log-mel probe top-1 | MFCC probe top-1 |",
            "|---|---|---|---|---|---|"]
    for f in folds:
        rows.append(f"| {f['fold']} | {f['test_clips']} | {100 * f['network']['top1']:.1f} % | {f['network']['mAP']:.3f} | "
                    f"{100 * f['logmel_probe']['top1']:.1f} % | {100 * f['mfcc_probe']['top1']:.1f} % |")
    mean = {k: float(np.mean([f[k]["top1"] for f in folds])) for k in ("network", "logmel_probe", "mfcc_probe")}
    rows.append(f"| mean | {sum(f['test_clips'] for f in folds)} | {100 * mean['network']:.1f} % | "
                f"{np.mean([f['network']['mAP'] for f in folds]):.3f} | {100 * mean['logmel_probe']:.1f} % | "
                f"{100 * mean['mfcc_probe']:.1f} % |")
    classes = folds[0]["classes"]
    rows += ["", "| class | " + " | ".join(f"fold {f['fold']}" for f in folds) + " | mean |",
             "|---|" + "---|" * (len(folds) + 1)]
    for k, name in enumerate(classes):
        accs = [f["per_class_accuracy"][k] for f in folds]
        shown = [("–" if a is None else f"{100 * a:.0f} %") for a in accs]
        valid = [a for a in accs if a is not None]
        rows.append(f"| {name} | " + " | ".join(shown) + f" | {100 * np.mean(valid):.0f} % |" if valid else
                    f"| {name} | " + " | ".join(shown) + " | – |")
    return "\n".join(rows) + "\n"


def cross_validate(recipe_cls, config, out: Path, data: Path, train_fn, argv: list[str]) -> dict:
    """Train and score fold 1..``config.cv`` (see the module); returns what ``cv.json`` holds."""
    if data is None:
        raise ValueError("cv: cross-validation needs --data (a set with folds, or one to deal folds from)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folds = []
    for k in range(1, config.cv + 1):
        fold_cfg = dataclasses.replace(config, fold=k, cv=0)
        fold_out = out / f"fold-{k}"
        done = fold_out / "test.json"
        if not done.is_file():
            print(f"cv: fold {k} of {config.cv} → {fold_out}", file=sys.stderr)
            resume = (fold_out / "checkpoints" / "last.pt").is_file()
            recipe = recipe_cls(fold_cfg)
            train_fn(recipe, fold_out, data=data, resume=resume, argv=argv)
            atomic_write_text(done, json.dumps(_test_fold(recipe, fold_out, data), indent=1) + "\n")
        folds.append(json.loads(done.read_text()))
        f = folds[-1]
        print(f"cv: fold {k}: network top-1 {100 * f['network']['top1']:.1f} %, log-mel probe "
              f"{100 * f['logmel_probe']['top1']:.1f} %, MFCC probe {100 * f['mfcc_probe']['top1']:.1f} %", file=sys.stderr)
    summary = {"recipe": recipe_cls.name, "data": str(data), "folds": folds,
               "mean": {k: {m: float(np.mean([f[k][m] for f in folds])) for m in ("top1", "mAP")}
                        for k in ("network", "logmel_probe", "mfcc_probe")}}
    atomic_write_text(out / "cv.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "cv.md", _table(folds))
    matrix = np.sum([np.array(f["confusion"]) for f in folds], axis=0)
    plot_confusion(matrix, folds[0]["classes"], out / "confusion.png",
                    f"{recipe_cls.name}: {config.cv}-fold confusion ({int(matrix.sum())} test clips)")
    print(_table(folds), end="")
    print(f"cv: wrote {out / 'cv.json'}, {out / 'cv.md'} and {out / 'confusion.png'}", file=sys.stderr)
    return summary
