"""Evaluate a trained L³-Net on unseen bench scenes, or on your own videos: correspondence, localization, silence.

    python -m apps.eval_l3 runs/l3-lite --seeds 3                    # report + runs/l3-lite/eval_l3.json
    python -m apps.eval_l3 runs/l3-lite --write-threshold            # choose the threshold on validation
                                                                     # scenes, store it, then evaluate
    python -m apps.eval_l3 runs/l3-lite/l3.pt --json /tmp/l3.json    # the live localizer's checkpoint

    python -m apps.eval_l3 runs/l3-vid --data DIR --write-threshold  # your videos: threshold on DIR's
                                                                     # val videos, figures on its test videos
    python -m apps.eval_l3 runs/l3-vid --data DIR --split val        # figures on the validation videos

With ``--data DIR`` the figures come from the videos of DIR, split as ``--recipe l3 --data DIR``
splits them (train/ val/ test/ folders, train.txt/val.txt/test.txt lists, or ``--val-fraction``
of a flat folder), with localization truth from box sidecars (``NAME.boxes.json`` beside
``NAME.mp4``; the format is in models/datasets/formats/video_boxes.py): AVC accuracy and AUC,
pointing game against two chance levels (the sounding box's mean share of the frame, and
1 / objects), cIoU@0.5, cIoU AUC and the share of no-source hops below the threshold, for the
split and per row (the first folder under the split: test/seen/, test/unseen/). The threshold
is then chosen on DIR's validation videos (definitions in models/l3/video_eval.py), not on
world scenes; one stored from DIR's validation videos (``--write-threshold`` earlier) is reused.

SOURCE is a run folder of ``python -m models.train --recipe l3`` (its best checkpoint), one of
its checkpoints, or an ``l3.pt`` file written by :func:`models.l3.network.save_checkpoint`.

Prints (definitions in models/l3_eval.py): 1. AVC accuracy on decidable pairs, on all pairs
beside the class oracle's, and on same-video negatives; 2. pointing game, cIoU@0.5 and cIoU AUC
on localization hops, and pointing with mismatched audio against its chance level; 3. the
fraction of off-screen/silent hops whose peak score is below the threshold; 4. linear probes on
L³ audio embeddings and on log-mel statistics; plus what the energy floor keeps and plain
wall-clock timings of each stage.

The threshold is, in order: ``--threshold``; with ``--write-threshold`` the one chosen now on
validation scenes (then written into the run's metadata, its checkpoints and ``RUN/l3.pt``, the
file the live localizer loads); the stored one when it was chosen on validation scenes;
otherwise one chosen now on validation scenes and not written.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# The minimum sizes for the report's figures.
MIN_SEEDS, MIN_LOC_HOPS, MIN_LOC_EVENTS, MIN_OFFSCREEN_HOPS = 3, 500, 100, 200


def load_model(source: Path):
    """``(model, stored threshold or None, threshold source, run folder or None)`` from a run
    folder, an avlive checkpoint or an ``l3.pt`` file."""
    from models.l3.network import L3Net, load_checkpoint
    from models.core.checkpoint import CheckpointError, find_checkpoint
    from models.families import load_trained

    if source.is_file():
        try:
            is_l3 = _is_l3_file(source)
        except Exception as e:  # noqa: BLE001 - torch raises several types for foreign files
            raise ValueError(f"{source}: not a checkpoint ({type(e).__name__})") from e
        if is_l3:
            model, threshold = load_checkpoint(source)
            return model, threshold, "l3.pt" if threshold is not None else "default", None
    try:
        recipe, model, metadata = load_trained(source)
    except CheckpointError as e:
        raise ValueError(str(e)) from e
    if not isinstance(model, L3Net):
        raise ValueError(f"{source}: expected an l3 run, found recipe {recipe.name!r}")
    extra = metadata.get("extra", {})
    ckpt = find_checkpoint(source)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    return model, extra.get("threshold"), extra.get("threshold_source", "default"), run


def _is_l3_file(path: Path) -> bool:
    """Whether ``path`` is an ``l3.pt`` file of :func:`models.l3.network.save_checkpoint` (not an avlive checkpoint)."""
    if not path.is_file():
        return False
    data = torch.load(path, map_location="cpu", weights_only=True)
    return isinstance(data, dict) and data.get("format") != "avlive-checkpoint" and "model_state" in data


def _persist_threshold(args, run, model, threshold: float, info: dict, chosen_on: str | None = None) -> str:
    """Write the chosen threshold where the model came from (an ``l3.pt`` file, or the run's
    checkpoints and export); returns the written paths, comma-separated."""
    from models.l3.evaluation import write_threshold

    if run is None and _is_l3_file(args.source):
        from models.l3.network import save_checkpoint

        save_checkpoint(args.source, model.cpu(), threshold)
        written = [args.source]
    else:
        kwargs = {"chosen_on": chosen_on} if chosen_on else {}
        written = write_threshold(args.source, threshold, model.cpu(), info, **kwargs)
    model.to(args.device)
    return ", ".join(str(p) for p in written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.eval_l3", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="run folder, avlive checkpoint or l3.pt")
    parser.add_argument("--seeds", type=int, default=3, help="test scenes (default: %(default)s, the first test seeds)")
    parser.add_argument("--scene-seconds", type=float, default=600.0, help="seconds of each scene (default: %(default)s)")
    parser.add_argument("--hop-seconds", type=float, default=0.25, help="spacing of the hops scanned (default: %(default)s)")
    parser.add_argument("--pairs", type=int, default=1000, help="AVC pairs (default: %(default)s)")
    parser.add_argument("--same-video-pairs", type=int, default=300, help="same-video negatives (default: %(default)s)")
    parser.add_argument("--loc-hops", type=int, default=600, help="localization hops at most (default: %(default)s)")
    parser.add_argument("--hops-per-event", type=int, default=8, help="localization hops per event at most (default: %(default)s)")
    parser.add_argument("--offscreen-hops", type=int, default=300, help="off-screen/silent hops at most (default: %(default)s)")
    parser.add_argument("--probe-windows", type=int, default=2000, help="train and test windows of each probe; 0 skips the probes (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=None, help="use this threshold")
    parser.add_argument("--write-threshold", action="store_true", help="choose the threshold on validation scenes and store it with the run")
    parser.add_argument("--threshold-seeds", type=int, default=3, help="validation scenes for the threshold (default: %(default)s)")
    parser.add_argument("--threshold-seconds", type=float, default=300.0, help="seconds of each validation scene (default: %(default)s)")
    parser.add_argument("--world", default="bench", help="world preset (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--render-workers", type=int, default=2, help="processes rendering world audio (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, help="evaluate on this folder of videos (with box sidecars) instead of the world")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="--data: the split scored (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=2.0, help="--data: frames scored per second of video (default: %(default)s)")
    parser.add_argument("--video-seconds", type=float, default=60.0, help="--data: seconds read per video (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="--data without val/: share of training videos that validate (default: the run's val_fraction, else 0.1)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (default: RUN/eval_l3.json)")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.threads < 1 or args.batch_size < 1 or args.threshold_seeds < 1:
        parser.error("expected --seeds >= 2, --threads >= 1, --batch-size >= 1 and --threshold-seeds >= 1")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold: expected a probability in [0, 1], found {args.threshold}")

    torch.set_num_threads(args.threads)
    if args.data is not None:
        try:
            model, stored, stored_source, run = load_model(args.source)
            return _run_data(args, model.to(args.device).eval(), stored, stored_source, run)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    from models.l3.evaluation import L3EvalConfig
    from models.world import get_preset, split_seed

    try:
        world = get_preset(args.world)
        model, stored, stored_source, run = load_model(args.source)
        config = L3EvalConfig(
            seeds=tuple(split_seed("test", i) for i in range(args.seeds)), world=world, scene_seconds=args.scene_seconds,
            hop_seconds=args.hop_seconds, pairs=args.pairs, same_video_pairs=args.same_video_pairs, loc_hops=args.loc_hops,
            max_hops_per_event=args.hops_per_event, offscreen_hops=args.offscreen_hops, probe_train=args.probe_windows,
            probe_test=args.probe_windows, batch_size=args.batch_size, render_workers=args.render_workers)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = model.to(args.device).eval()
    try:
        return _run(args, model, stored, stored_source, run, config)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args, model, stored, stored_source, run, config) -> int:
    """Threshold, evaluation, report and JSON (after the model is loaded)."""
    from models.l3.evaluation import choose_threshold, evaluate_l3, format_report
    from models.world import split_seed

    world = config.world
    started = time.perf_counter()
    threshold_info: dict = {}
    if args.threshold is not None:
        threshold, how = args.threshold, "given on the command line"
    elif args.write_threshold or stored_source not in ("validation", "l3.pt"):
        seeds = [split_seed("val", i) for i in range(args.threshold_seeds)]
        print(f"choosing the threshold on validation seeds {seeds} ...", file=sys.stderr)
        threshold = choose_threshold(model, seeds, world=world, scene_seconds=args.threshold_seconds,
                                     batch_size=args.batch_size, render_workers=args.render_workers, details=threshold_info)
        how = (f"chosen on validation seeds {seeds}: {threshold_info['rule']}; there "
               f"{100 * threshold_info['offscreen_below']:.1f}% of {threshold_info['n_offscreen']} off-screen/silent hops below, "
               f"{100 * threshold_info['onscreen_above']:.1f}% of {threshold_info['n_onscreen']} on-screen hops at/above")
        if args.write_threshold:
            how += "; written to " + _persist_threshold(args, run, model, threshold, threshold_info)
        else:
            how += " (not stored: pass --write-threshold)"
    else:
        threshold, how = float(stored), f"stored with the model ({stored_source})"
    print(f"threshold {threshold:.4f}: {how}", file=sys.stderr)
    print("evaluating ...", file=sys.stderr)
    results = evaluate_l3(model, threshold, config, log=lambda m: print(m, file=sys.stderr))
    results["threshold_how"] = how
    results["threshold_info"] = threshold_info
    results["source"] = str(args.source)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(format_report(results))
    loc, off = results["localization"], results["offscreen"]
    short = []
    if args.seeds < MIN_SEEDS:
        short.append(f"{args.seeds} test seeds (< {MIN_SEEDS})")
    if loc["n_hops"] < MIN_LOC_HOPS or loc["n_events"] < MIN_LOC_EVENTS:
        short.append(f"{loc['n_hops']} localization hops from {loc['n_events']} events (< {MIN_LOC_HOPS} from {MIN_LOC_EVENTS})")
    if off["n_hops"] < MIN_OFFSCREEN_HOPS:
        short.append(f"{off['n_hops']} off-screen/silent hops (< {MIN_OFFSCREEN_HOPS})")
    if short:
        print("note: below the issue's minimum sizes: " + "; ".join(short) + " (more --seeds or --scene-seconds)")
    folder = run if run is not None else (args.source.parent if args.source.is_file() else args.source)
    out = args.json or folder / "eval_l3.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"total {results['total_s']:.0f} s; figures written to {out}")
    return 0


def _run_data(args, model, stored, stored_source, run) -> int:
    """``--data``: threshold on the folder's validation videos, figures on ``--split``, report and JSON."""
    from models.l3.video_eval import choose_video_threshold, evaluate_videos, format_video_report, load_videos

    started = time.perf_counter()
    val_fraction = args.val_fraction
    if val_fraction is None:  # carve validation videos as the run did
        config_file = run / "config.json" if run is not None else None
        stored_config = json.loads(config_file.read_text()).get("config", {}) if config_file and config_file.is_file() else {}
        val_fraction = float(stored_config.get("val_fraction", 0.1))

    def videos(split: str):
        print(f"decoding the {split} videos of {args.data} ...", file=sys.stderr)
        return load_videos(args.data, split, model.config.image_size, fps=args.fps, seconds=args.video_seconds,
                           val_fraction=val_fraction, workers=max(1, args.render_workers))

    info: dict = {}
    if args.threshold is not None:
        threshold, how = args.threshold, "given on the command line"
    elif args.write_threshold or stored_source != "data-validation":
        threshold = choose_video_threshold(model, videos("val"), batch_size=args.batch_size, details=info)
        info["data"] = str(args.data)
        how = (f"chosen on the validation videos of {args.data}: {info['rule']}; there {100 * info['offscreen_below']:.1f}% "
               f"of {info['n_offscreen']} no-source hops below, {100 * info['onscreen_above']:.1f}% of {info['n_onscreen']} "
               f"sounding-box hops at/above")
        if args.write_threshold:
            how += "; written to " + _persist_threshold(args, run, model, threshold, info, chosen_on="data-validation")
        else:
            how += " (not stored: pass --write-threshold)"
    else:
        threshold, how = float(stored), "stored with the model (chosen on validation videos)"
    print(f"threshold {threshold:.4f}: {how}", file=sys.stderr)
    split_videos = videos(args.split)
    results = evaluate_videos(model, split_videos, threshold, pairs=args.pairs, batch_size=args.batch_size,
                              log=lambda m: print(m, file=sys.stderr))
    results.update({"threshold_how": how, "threshold_info": info, "source": str(args.source), "data": str(args.data),
                    "split": args.split, "total_s": round(time.perf_counter() - started, 1)})
    print(f"{args.split} videos of {args.data}")
    print(format_video_report(results))
    folder = run if run is not None else (args.source.parent if args.source.is_file() else args.source)
    out = args.json or folder / f"eval_l3_data_{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for row in results["rows"].values():
        for part in row.values():
            if isinstance(part, dict):
                part.pop("_scores", None)
    out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"total {results['total_s']:.0f} s; figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
