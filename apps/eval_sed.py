"""Sound-event detection figures of CRNN runs on unseen world scenes: one table row per run.

    python -m apps.eval_sed runs/crnn-lite                          # 3 test scenes x 150 s
    python -m apps.eval_sed runs/crnn-mt runs/crnn-sup --seeds 5 --seconds 300 --json out.json

Each run's deployed network (the student, or the mean teacher with ``deploy=teacher``) scores
the clips of its training length (``clip_seconds``) that tile the first ``--seconds`` of test
scenes ``200000 ...`` (seeds the trainer never sees), offline: tagging micro-F1, segment-based F1
(1 s), event-based F1 (200 ms onset collar, offset max(200 ms, 20 %)), micro and macro, and
PSDS1/PSDS2 from the frame probabilities (:mod:`models.crnn.evaluation`). The live figures of the
same network (streaming, real-time pace, onset latency) are ``python -m apps.bench_live``'s.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader


def evaluate_run(run: Path, seeds: int, seconds: float, batch_size: int) -> dict:
    from models.crnn.recipe import CRNNRecipe
    from models.families import load_trained
    from models.world import split_seed

    recipe, model, _ = load_trained(run)
    if not isinstance(recipe, CRNNRecipe):
        raise SystemExit(f"{run}: expected a CRNN run (recipe crnn-lite or crnn), found recipe {recipe.name!r}")
    c = recipe.config
    # a fused run's clips carry its embeddings of the test scenes (computed once, then cached)
    clips = recipe.world_clips([split_seed("test", i) for i in range(seeds)], ["strong"] * seeds, seconds,
                               fixed=True, what="the test scenes")
    loader = DataLoader(clips, batch_size=batch_size, collate_fn=recipe.collate)
    figures = recipe.figures(model.deployed(), model.frontend, loader, with_psds=True)
    return {"run": str(run), "deploy": c.deploy, "mean_teacher": c.mean_teacher, "fused": c.fuse or "-",
            "scenes": {"strong": c.strong_scenes, "weak": c.weak_scenes, "unlabelled": c.unlabelled_scenes}, **figures}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.eval_sed", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="CRNN run folders")
    p.add_argument("--seeds", type=int, default=3, help="test scenes 200000 ... (default 3)")
    p.add_argument("--seconds", type=float, default=150.0, help="seconds of each scene (default 150)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [evaluate_run(run, args.seeds, args.seconds, args.batch_size) for run in args.runs]
    print(f"{int(rows[0]['clips'])} clips per run from {args.seeds} test scenes x {args.seconds:g} s")
    header = f"{'run':<28} {'network':<8} {'fused':<26} {'tagging':>8} {'segment':>8} {'event':>7} {'ev.macro':>8} {'PSDS1':>6} {'PSDS2':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{Path(r['run']).name:<28} {r['deploy']:<8} {r['fused']:<26} {r['tagging_f1']:8.3f} {r['segment_f1']:8.3f} "
              f"{r['event_f1']:7.3f} {r['event_f1_macro']:8.3f} {r['psds1']:6.3f} {r['psds2']:6.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
