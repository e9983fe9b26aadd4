"""python -m apps.eval_clips MODEL --data ESC50_DIR [--folds 5]: clip accuracy of a live labeler
on an ESC-50-layout set, heard the way ``avlive`` hears a microphone.

Each clip is played to the labeler as a stream (a window of silence before it, a second after,
the labeler reset first), hop by hop at its own hop, exactly as the live scheduler calls it
(``apps.tune_labeler.hop_scores``); the clip's class is the one with the highest score at any
hop or frame. Labels are matched by name: every class of the chosen clips must be one of the
labeler's (else one line says which are missing); labeler classes absent from the set still
compete. Prints top-1 and per-class accuracy; ``--json`` writes them.

    python -m apps.eval_clips models/demo/real-sounds --data out/real-sounds/esc50 --folds 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from apps.tune_labeler import hop_scores
from models.datasets.formats.esc50 import read_esc50
from models.io.media import read_audio
from realtime.models import ModelError, inspect_model, open_model
from realtime.scheduler import SchedulerConfig


def clip_scores(labeler, audio: np.ndarray, sample_rate: int, hop_s: float) -> np.ndarray:
    """``(C,)`` the highest score of each class over a clip played as a stream."""
    n = labeler.window.samples
    stream = np.concatenate([np.zeros(n, np.float32), np.asarray(audio, np.float32), np.zeros(sample_rate, np.float32)])
    scores = hop_scores(labeler, stream, sample_rate, hop_s).scores
    return scores.max(axis=0)


def evaluate(model_path: Path, data: Path, folds: set[int] | None, backend: str = "onnxruntime",
             threads: int = 2) -> dict:
    """Figures of one labeler on the set's clips of ``folds`` (None: all)."""
    meta_csv = next((p for p in (data / "meta" / "esc50.csv", data / "esc50.csv") if p.is_file()), None)
    if meta_csv is None:
        raise FileNotFoundError(f"{data}: expected an ESC-50 layout (meta/esc50.csv and audio/)")
    clips = [c for c in read_esc50(meta_csv) if folds is None or c.fold in folds]
    if not clips:
        raise ValueError(f"{data}: no clip in folds {sorted(folds or [])}")
    model = open_model(inspect_model(model_path), "labeler", backend=backend, threads=threads)
    try:
        labeler = model.model
        labels = list(labeler.labels)
        missing = sorted({c.category for c in clips} - set(labels))
        if missing:
            raise ValueError(f"the labeler does not know {len(missing)} of the set's classes ({', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}); its labels: {', '.join(labels[:8])} ...")
        sr = labeler.window.sample_rate
        hop = labeler.window.hop_seconds or SchedulerConfig().hop_s
        hits: dict[str, list[bool]] = {}
        confusions: dict[str, dict[str, int]] = {}
        for clip in clips:
            audio, _ = read_audio(data / "audio" / clip.filename, sample_rate=sr, mono=True)
            guess = labels[int(np.argmax(clip_scores(labeler, audio, sr, hop)))]
            hits.setdefault(clip.category, []).append(guess == clip.category)
            row = confusions.setdefault(clip.category, {})
            row[guess] = row.get(guess, 0) + 1
    finally:
        model.close()
    all_hits = [h for v in hits.values() for h in v]
    return {"clips": len(all_hits), "top1": float(np.mean(all_hits)),
            "per_class": {k: float(np.mean(v)) for k, v in sorted(hits.items())},
            "confusions": confusions, "folds": sorted(folds) if folds else "all"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.eval_clips", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a labeler: run folder, demo folder or .onnx")
    p.add_argument("--data", type=Path, required=True, help="an ESC-50 layout folder")
    p.add_argument("--folds", type=int, nargs="+", default=None, help="folds to score (default: all)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    try:
        figures = evaluate(args.model, args.data, set(args.folds) if args.folds else None, args.backend, args.threads)
    except (FileNotFoundError, ValueError, ModelError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"{figures['clips']} clips (folds {figures['folds']}): top-1 {100 * figures['top1']:.1f} %")
    for name, acc in figures["per_class"].items():
        top_wrong = max(((g, n) for g, n in figures["confusions"][name].items() if g != name), key=lambda x: x[1],
                        default=None)
        print(f"  {name:<18} {100 * acc:5.1f} %" + (f"   most confused with {top_wrong[0]} ({top_wrong[1]})"
                                                   if top_wrong else ""))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
