"""Best-on-validation selection over seeds: ``best_of=N`` trains N runs and keeps the best.

``python -m models.train --recipe crnn-lite --out runs/crnn best_of=3`` trains seeds ``seed``,
``seed + 1`` and ``seed + 2`` (``seed`` is the config's, 0 by default) into ``runs/crnn/seed-<s>/``,
each a complete run folder: a killed one is resumed, a finished one reused. Then ``runs/crnn``
becomes the run of the seed whose best validation figure (the recipe's primary metric, the one
its ``checkpoints/best.pt`` was kept for) is highest: that seed's checkpoints, config, metadata,
metrics and curve are copied there (each file atomically), so export, evaluation and avlive take
``runs/crnn`` as any run. ``runs/crnn/seeds.json`` lists every seed's best figure, the step it
was reached at, and the choice. (The DCASE task-4 baseline reports its best of several seeds the
same way: the seed is picked on validation data, never on the test set.)
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Callable

from models.core.atomic import atomic_path, atomic_write_text
from models.core.checkpoint import BEST, LAST, load_checkpoint

__all__ = ["COPIED", "best_of_seeds", "seed_folder"]

#: What the chosen seed's folder gives the run folder.
COPIED = (f"checkpoints/{BEST}", f"checkpoints/{LAST}", "config.json", "metadata.json", "metrics.jsonl", "curve.png")
#: Written into a seed's folder once its training has ended.
DONE = "done.json"


def seed_folder(out: Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def _best_of_run(folder: Path) -> tuple[float, int]:
    """(best validation figure, its step) of a finished run folder, from its best checkpoint."""
    path = folder / "checkpoints" / BEST
    if not path.is_file():
        raise ValueError(f"{folder}: the run kept no {BEST} (no validation figure was ever finite), so it cannot be "
                         f"compared with the other seeds")
    data = load_checkpoint(path)
    return float(data["train_state"]["best"]), int(data["train_state"]["step"])


def _copy_atomically(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def best_of_seeds(recipe_cls, config, out: Path, data: Path | None, train_fn: Callable, argv: list[str]) -> dict:
    """Train ``config.best_of`` seeds and make ``out`` the best one's run (see the module); returns ``seeds.json``'s content."""
    out = Path(out)
    primary = recipe_cls.primary_metric
    rows = []
    for k in range(config.best_of):
        seed = config.seed + k
        folder = seed_folder(out, seed)
        if not (folder / DONE).is_file():
            resume = (folder / "checkpoints" / LAST).is_file()
            print(f"best_of: seed {seed} ({k + 1} of {config.best_of}) → {folder}" + (" (resuming)" if resume else ""),
                  file=sys.stderr)
            train_fn(recipe_cls(dataclasses.replace(config, seed=seed, best_of=1)), folder, data=data, resume=resume,
                     argv=argv)
            atomic_write_text(folder / DONE, json.dumps({"seed": seed}) + "\n")
        best, step = _best_of_run(folder)
        rows.append({"seed": seed, "folder": folder.name, primary: best, "step": step})
        print(f"best_of: seed {seed}: best validation {primary} {best:.4f} at step {step}", file=sys.stderr)
    chosen = max(rows, key=lambda r: r[primary])  # the first seed wins a tie
    folder = seed_folder(out, chosen["seed"])
    for name in COPIED:
        if (folder / name).is_file():
            _copy_atomically(folder / name, out / name)
    summary = {"recipe": recipe_cls.name, "primary_metric": primary, "seeds": rows, "chosen": chosen["seed"]}
    atomic_write_text(out / "seeds.json", json.dumps(summary, indent=1) + "\n")
    print(f"best_of: seed {chosen['seed']} is the run in {out} (validation {primary} {chosen[primary]:.4f}; "
          + ", ".join(f"seed {r['seed']}: {r[primary]:.4f}" for r in rows) + ")", file=sys.stderr)
    return summary
